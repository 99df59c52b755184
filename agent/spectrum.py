"""Dynamic localization: which functions the failing targets execute, ranked by Ochiai.

After the plain reproduction, the target files' failing tests and some passing tests of the same files
run once more in the sandbox under a function-level tracer (sys.monitoring on Python 3.12+, a call-only
sys.settrace before), started through `python -c` so no file is written into the worktree. The verdict
always comes from the plain run; this run has its own time cap and any failure leaves the static
summary to carry on alone.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import NamedTuple

from sandbox.base import Sandbox
from sandbox.pytest_runs import TestRun, selector_file

MARK = "@@agent-spectrum@@"
MAX_PASSING = 40       # passing tests of the target files traced beside the failing ones
MAX_FAILING = 20
MAX_EXECUTED = 60      # ranked definitions kept
CAP_MIN, CAP_FACTOR = 20.0, 1.0  # time cap: max(CAP_MIN, CAP_FACTOR x the plain reproduction), <= timeout

# Runs inside the sandbox's Python as `python -c BOOT <pytest args>`: pytest plus a tracing plugin.
# Records, per test node, the code objects whose file lies under the working directory (the repo).
BOOT = r'''
import json, os, sys, threading, time
ROOT = os.path.realpath(os.getcwd()) + os.sep
MARK = "@@agent-spectrum@@"
CAP = float(sys.argv.pop(1))
FAILING = set(json.loads(sys.argv.pop(1)))
T0 = time.monotonic()
import pytest
cov, outcome, cur = {}, {}, [None]
if hasattr(sys, "monitoring"):
    mon = sys.monitoring
    TOOL = next((i for i in (4, 3, 2, 5) if mon.get_tool(i) is None), None)
else:
    mon = TOOL = None
if TOOL is not None:
    mon.use_tool_id(TOOL, "agent-spectrum")
    def _start(code, offset):
        s = cur[0]
        if s is not None:
            s.add(code)
        return mon.DISABLE
    mon.register_callback(TOOL, mon.events.PY_START, _start)
    def begin(s):
        cur[0] = s
        mon.restart_events()
        mon.set_events(TOOL, mon.events.PY_START)
    def end():
        mon.set_events(TOOL, 0)
        cur[0] = None
else:
    def _trace(frame, event, arg):
        s = cur[0]
        if s is not None:
            s.add(frame.f_code)
        return None
    def begin(s):
        cur[0] = s
        threading.settrace(_trace)
        sys.settrace(_trace)
    def end():
        sys.settrace(None)
        threading.settrace(None)
        cur[0] = None
class _Plugin:
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        # passing tests first: code run once at import time lands on them, not on the failing ones
        items[:] = [i for i in items if i.nodeid not in FAILING] + [i for i in items if i.nodeid in FAILING]
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        if time.monotonic() - T0 > CAP:
            yield
            return
        s = cov.setdefault(item.nodeid, set())
        begin(s)
        try:
            yield
        finally:
            end()
    def pytest_runtest_logreport(self, report):
        if report.failed:
            outcome[report.nodeid] = "failed"
        elif report.when == "call" and report.passed:
            outcome.setdefault(report.nodeid, "passed")
code = pytest.main(sys.argv[1:], plugins=[_Plugin()])
funcs, index, out = [], {}, {}
for node, codes in cov.items():
    ids = []
    for c in codes:
        f = c.co_filename
        if not f.startswith(ROOT) or "site-packages" in f:
            continue
        key = (f[len(ROOT):].replace(os.sep, "/"), c.co_firstlineno, getattr(c, "co_qualname", c.co_name))
        if key not in index:
            index[key] = len(funcs)
            funcs.append(list(key))
        ids.append(index[key])
    out[node] = sorted(ids)
TRACER = "sys.monitoring" if TOOL is not None else "settrace"
sys.stdout.write("\n" + MARK + json.dumps({"funcs": funcs, "cov": out, "outcome": outcome, "tracer": TRACER})
                 + "\n")
sys.stdout.flush()
sys.exit(int(code))
'''


class Executed(NamedTuple):
    """One definition the failing tests ran: where it starts, its name, its Ochiai score."""

    path: str
    line: int
    name: str
    score: float


def trace_argv(failing: list[str], passing: list[str], test_command: list[str], cap: float) -> list[str] | None:
    """`python -c BOOT CAP FAILING <pytest args> nodes`, or None when the command is not `python -m pytest`."""
    if len(test_command) < 3 or test_command[1:3] != ["-m", "pytest"]:
        return None
    return [test_command[0], "-c", BOOT, f"{cap:.0f}", json.dumps(failing), *test_command[3:], "-q", "--tb=no",
            "-p", "no:cacheprovider", *failing, *passing]


def pick_nodes(baseline: TestRun, targets: list[str]) -> tuple[list[str], list[str]]:
    """(failing target nodes, passing nodes of the same files) from the plain reproduction."""
    failing = [n for n in sorted(baseline.outcomes) if baseline.outcomes[n] in ("failed", "error")
               and any(baseline.matching(t).get(n) for t in targets)]
    files = {selector_file(t) for t in targets}
    passing = [n for n in sorted(baseline.outcomes) if baseline.outcomes[n] == "passed"
               and selector_file(n) in files]
    usable = [n for n in failing if " " not in n][:MAX_FAILING]
    return usable, [n for n in passing if " " not in n][:MAX_PASSING]


def parse(output: str) -> dict | None:
    at = output.rfind(MARK)
    if at < 0:
        return None
    line = output[at + len(MARK):].split("\n", 1)[0]
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) and {"funcs", "cov", "outcome"} <= data.keys() else None


def ochiai(data: dict, failing: list[str], is_candidate: Callable[[str], bool]) -> list[Executed]:
    """Definitions the failing nodes executed, best first: ef / sqrt(F * (ef + ep))."""
    outcome, cov, funcs = data["outcome"], data["cov"], data["funcs"]
    fail_nodes = [n for n in cov if outcome.get(n) == "failed" and n in set(failing)]
    pass_nodes = [n for n in cov if outcome.get(n) == "passed" and n not in set(failing)]
    if not fail_nodes:
        return []
    ef: dict[int, int] = {}
    ep: dict[int, int] = {}
    for n in fail_nodes:
        for i in cov[n]:
            ef[i] = ef.get(i, 0) + 1
    for n in pass_nodes:
        for i in cov[n]:
            if i in ef:
                ep[i] = ep.get(i, 0) + 1
    total = len(fail_nodes)
    ranked = []
    for i, e in ef.items():
        path, line, name = funcs[i]
        if not is_candidate(path) or str(name).rsplit(".", 1)[-1].startswith("<"):  # module, comprehension
            continue
        ranked.append(Executed(path, int(line), str(name), round(e / math.sqrt(total * (e + ep.get(i, 0))), 4)))
    ranked.sort(key=lambda x: (-x.score, x.path, x.line))
    return ranked[:MAX_EXECUTED]


def executed_definitions(sandbox: Sandbox, baseline: TestRun, targets: list[str], test_command: list[str],
                         timeout: float, log: Callable[[str], None] = lambda _: None) -> list[Executed]:
    """The ranked definitions the failing targets execute, or [] when tracing is not possible."""
    from agent.summary.pyenv import is_auxiliary, is_test_path

    try:
        failing, passing = pick_nodes(baseline, targets)
        cap = min(timeout, max(CAP_MIN, CAP_FACTOR * baseline.duration))
        argv = trace_argv(failing, passing, test_command, cap) if failing else None
        if argv is None:
            return []
        started = time.monotonic()
        result = sandbox.exec(argv, cap + 10)
        data = parse(result.output)
        if data is None:
            log(f"trace: no spectrum ({'timed out' if result.timed_out else f'exit {result.exit_code}'});"
                " the summary is static only")
            return []
        ranked = ochiai(data, failing, lambda p: not is_test_path(p) and not is_auxiliary(p))
        log(f"trace: {len(ranked)} executed definitions ranked in {time.monotonic() - started:.1f}s "
            f"via {data.get('tracer', 'an unknown tracer')} ({len(failing)} failing, {len(passing)} passing tests)")
        return ranked
    except Exception as exc:  # noqa: BLE001 - tracing is an aid: it must never stop a run
        log(f"trace: failed ({type(exc).__name__}: {exc}); the summary is static only")
        return []

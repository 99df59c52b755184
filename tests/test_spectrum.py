"""Dynamic localization: a rule reached through a string-keyed registry is found by what the failing
test executes, ranked by Ochiai against the passing tests of the same file, in a real local sandbox."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agent.spectrum import executed_definitions, trace_argv
from agent.summary import summarise
from evals.sample_repo import make_sample_repo
from sandbox.local import LocalSandbox
from sandbox.pytest_runs import run_pytest

# `lint("E1", ...)` finds its rule by a string key in a registry filled when plugins are imported by name:
# nothing in the test imports or names `linty/rules/spacing.py`, where the bug is.
FILES = {
    "linty/__init__.py": "from .core import lint\n",
    "linty/core.py": ("import importlib\n\nREGISTRY = {}\nPLUGINS = ['linty.rules.spacing', 'linty.rules.naming']\n\n\n"
                      "def register(code):\n    def deco(fn):\n        REGISTRY[code] = fn\n        return fn\n"
                      "    return deco\n\n\ndef lint(code, text):\n    for name in PLUGINS:\n"
                      "        importlib.import_module(name)\n    return REGISTRY[code](text)\n"),
    "linty/rules/__init__.py": "",
    "linty/rules/spacing.py": ("from linty.core import register\n\n\n@register('E1')\ndef trailing(text):\n"
                               "    return [i for i, line in enumerate(text.split('\\n')) if line.endswith('  ')]\n"),
    "linty/rules/naming.py": ("from linty.core import register\n\n\n@register('N1')\ndef upper(text):\n"
                              "    return [i for i, line in enumerate(text.split('\\n')) if line.isupper()]\n"),
    "linty/unused.py": "def never():\n    return 0\n",
    "tests/test_lint.py": ("from linty import lint\n\n\ndef test_trailing_tab():\n"
                           "    assert lint('E1', 'a\\t\\nb') == [0]\n\n\n"
                           "def test_trailing_spaces():\n    assert lint('E1', 'a  \\nb') == [0]\n\n\n"
                           "def test_upper():\n    assert lint('N1', 'AB\\ncd') == [0]\n"),
}


TARGET = "tests/test_lint.py::test_trailing_tab"
COMMAND = ["python", "-m", "pytest"]


def test_failing_test_execution_ranks_the_registered_rule_first(tmp_path: Path) -> None:
    root = make_sample_repo(tmp_path / "repo", FILES)
    sandbox = LocalSandbox(root)
    baseline = run_pytest(sandbox, ["tests/test_lint.py"], COMMAND, 120)
    assert baseline.outcomes[TARGET] == "failed" and baseline.outcomes["tests/test_lint.py::test_upper"] == "passed"
    logs: list[str] = []
    ranked = executed_definitions(sandbox, baseline, [TARGET], COMMAND, 120, logs.append)
    assert ranked, logs
    # `trailing` runs in the failing test and one passing E1 test, `lint` in all three, `upper` only in a
    # passing one, and `register` at import time (in whichever test imports the plugins first)
    assert ranked[0].path == "linty/rules/spacing.py" and ranked[0].name == "trailing"
    assert "linty/rules/naming.py" not in {e.path for e in ranked}  # never run by the failing test
    assert not any(e.path.startswith("tests/") for e in ranked)
    assert subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True,
                          text=True).stdout == ""  # nothing written into the worktree

    cache = tmp_path / "cache"
    _, static_scope, static = summarise(root, [TARGET], [], 1024, baseline.output, TARGET, cache)
    _, scope, dynamic = summarise(root, [TARGET], [], 1024, baseline.output, TARGET, cache, executed=ranked)
    assert "linty/rules/spacing.py" not in static_scope.seed_files  # static evidence cannot see it
    assert scope.seed_files[0] == "linty/rules/spacing.py"
    assert dynamic.repo_part == static.repo_part  # the prompt-cached part does not depend on the task
    lead = dynamic.task_part.split("## Executed by the failing tests (Ochiai, best first)\n", 1)[1]
    assert lead.startswith("linty/rules/spacing.py:4 trailing (")


def test_tracing_falls_back_when_it_cannot_run(tmp_path: Path) -> None:
    root = make_sample_repo(tmp_path / "repo", FILES)
    sandbox = LocalSandbox(root)
    baseline = run_pytest(sandbox, ["tests/test_lint.py"], COMMAND, 120)
    assert trace_argv([TARGET], [], ["tox", "-e", "py"], 10) is None
    assert executed_definitions(sandbox, baseline, [TARGET], ["tox", "-e", "py"], 120) == []
    # the traced run is killed at its cap: no spectrum, the static summary carries on
    (root / "tests" / "conftest.py").write_text("import time\n\n\ndef pytest_sessionstart(session):\n"
                                                "    time.sleep(60)\n")
    logs: list[str] = []
    started = baseline.duration
    baseline.duration = 0.1
    assert executed_definitions(sandbox, baseline, [TARGET], COMMAND, 2, logs.append) == []
    assert "no spectrum" in logs[-1]
    baseline.duration = started

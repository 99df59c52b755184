"""The reproduction gate: before any model call, the failure must be real and the environment usable.

A model called on a reproduction where the tests cannot even start spends money on the wrong
problem, and a target that already passes would "resolve" with nothing fixed. So the first run
of the targets is judged here, with pytest's own words in the message:
- bad input (exit 2): a target that names no test; a target that already passes;
- environment (exit 3): no pytest in the interpreter; collection or setup failing for a reason
  outside the repository (a module that is neither installed nor in the worktree, a fixture or
  option of a plugin that is not installed, a pytest too new for the suite's use of it, a warning
  that the project's `filterwarnings = error` turns into an error while a module from outside the
  project is imported); no test able to run at all for a task without targets.
A test that fails at import because it needs a name the repository does not define yet (the
bug itself, as in most FAIL_TO_PASS tests) is a reproduction, not an environment problem.
"""

from __future__ import annotations

import re
from pathlib import Path

from agent.errors import BadInput, EnvironmentProblem
from sandbox.pytest_runs import TestRun

_NO_PYTEST = re.compile(r"No module named pytest\b|No module named '?pytest'?$", re.M)
_MISSING_MODULE = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '([\w.]+)'")
_MISSING_FIXTURE = re.compile(r"fixture '([\w]+)' not found")
_BAD_OPTION = re.compile(r"^(?:ERROR: )?(?:usage: .*\n)?.*error: unrecognized arguments: (.*)$", re.M)
_FIRST_ERROR = re.compile(r"^E\s{3}(.+)$", re.M)
_COLLECT_ERROR = re.compile(r"^_+ ERROR collecting (.+?) _+$", re.M)
# pytest's own deprecations of what a test suite does, made errors by its `filterwarnings = error`:
# the tests are older than the installed pytest, not broken by the bug.
_PYTEST_DEPRECATION = re.compile(r"^E\s+(?:_pytest\.warning_types\.|pytest\.)?"
                                 r"(Pytest(?:RemovedIn\d+|Deprecation)Warning): (.+)$", re.M)


# One `ERROR collecting` section of pytest's output, up to the next section or the summary.
_COLLECT_SECTION = re.compile(r"^_+ ERROR collecting .+? _+$(.*?)(?=^_+ |^=+ )", re.M | re.S)
_WARNING_RAISED = re.compile(r"^E\s+(?:[\w.]+\.)?(\w*Warning): (.*)$", re.M)
_FRAME = re.compile(r"^(\S.*?):(\d+): in (\S+)\n((?:[ \t]+.*\n)*)", re.M)
_IMPORT_LINE = re.compile(r"^\s*(?:import|from)\s+[\w.]+")


class ReproductionProblem(EnvironmentProblem):
    """The tests cannot run in this environment (exit 3); nothing of the run is kept."""


def first_error(output: str) -> str:
    """pytest's first `E   ...` line, or its last non-empty line."""
    match = _FIRST_ERROR.search(output)
    if match:
        return match.group(1).strip()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _in_worktree(module: str, roots: list[Path]) -> bool:
    top = module.split(".", 1)[0]
    return any((root / top).is_dir() or (root / f"{top}.py").is_file() for root in roots)


def _project_frame(path: str) -> bool:
    """pytest prints the project's files relative to its rootdir; installed and frozen modules are not."""
    parts = path.split("/")
    return not (path.startswith(("<", "/", "..")) or "site-packages" in parts or "dist-packages" in parts)


def _imported_warning(output: str) -> str | None:
    """A warning made an error at collection while a module from outside the project was imported.

    The project's `filterwarnings = error` meets a dependency (or Python) newer or older than its code:
    a 2018 `six` under today's importlib raises ImportWarning on `from six.moves import ...`. The
    project's last frame is then an import statement (or there is none: pytest or a plugin warned).
    When that frame calls something instead, the project itself uses what warns: the model can fix it.
    """
    for section in _COLLECT_SECTION.finditer(output):
        body = section.group(1)
        raised = list(_WARNING_RAISED.finditer(body))
        if not raised:
            continue
        last = raised[-1]
        chain = body[:last.start()].rsplit("During handling of the above exception", 1)[-1]
        frames = [m for m in _FRAME.finditer(chain) if _project_frame(m.group(1))]
        if frames and not _IMPORT_LINE.match(frames[-1].group(4).split("\n", 1)[0]):
            continue
        where = f" at {frames[-1].group(1)}:{frames[-1].group(2)}" if frames else ""
        return (f"{last.group(1)}: {last.group(2).strip()} (raised as an error by the project's filterwarnings "
                f"while importing a module from outside the project{where}); install the versions of its "
                "dependencies the project was developed with, or a matching Python")
    return None


def environment_cause(output: str, roots: list[Path]) -> str | None:
    """Why the tests cannot start here, in pytest's words, or None when the failure is the repository's own."""
    if _NO_PYTEST.search(output):
        return "pytest is not installed"
    option = _BAD_OPTION.search(output)
    if option:
        return f"pytest does not know the option {option.group(1).strip()} (a plugin it needs is not installed)"
    for match in _MISSING_MODULE.finditer(output):
        if not _in_worktree(match.group(1), roots):
            return f"No module named '{match.group(1)}' (not installed, and not in the repository)"
    deprecated = _PYTEST_DEPRECATION.search(output)
    if deprecated:
        return (f"the installed pytest refuses what these tests do ({deprecated.group(1)}: "
                f"{deprecated.group(2).strip()}); install the pytest the project was developed with")
    imported = _imported_warning(output)
    if imported:
        return imported
    fixture = _MISSING_FIXTURE.search(output)
    if fixture:
        return f"fixture '{fixture.group(1)}' not found (a pytest plugin is probably not installed)"
    return None


def gate(run: TestRun, targets: list[str], *, roots: list[Path], interpreter: str) -> None:
    """Raise BadInput or ReproductionProblem when the reproduction cannot lead to a fix; else return."""
    where = f" (interpreter: {interpreter})"
    if run.timed_out:
        return  # a hang can be the bug itself; the model sees it
    cause = environment_cause(run.output, roots)
    errored_only = bool(run.outcomes) and all(o == "error" for o in run.outcomes.values())
    if cause and (run.collected_none or errored_only or not run.outcomes or _NO_PYTEST.search(run.output)):
        collecting = _COLLECT_ERROR.search(run.output)
        place = f" while collecting {collecting.group(1)}" if collecting else ""
        raise ReproductionProblem(f"the tests cannot run{place}: {cause}{where}; fix the environment "
                                  "(install what is missing, or set [sandbox] setup / python) and rerun")
    if targets:
        missing = [t for t in targets if not run.matches(t)]
        if missing:
            if "while loading conftest" in run.output or (not run.outcomes and run.exit_code not in (4, 5)):
                raise ReproductionProblem(f"pytest failed before running any test (exit {run.exit_code}): "
                                          f"{first_error(run.output)}{where}")
            raise BadInput(f"no test matches {', '.join(missing)}")
        if all(run.passed(t) for t in targets):
            raise BadInput(f"the target tests already pass before any change: {', '.join(targets)}; "
                           "nothing to fix")
        return
    if not run.outcomes:
        raise ReproductionProblem(f"no test can run in this repository ({run.short_summary()}): "
                                  f"{first_error(run.output)}{where}")

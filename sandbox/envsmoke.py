"""After a pinned install, pytest must start in the environment; a pinned package that crashes it is upgraded.

A project's pins are what its developers had, and they did not always run pytest: jmespath's 2017
requirements.txt pins `py==1.4.12` (for nose and tox 1.4), and today's pytest crashes on that `py`
(INTERNALERROR in py/_path/local.py) before it runs a single test. pytest is the one package the
environment adds of its own, so where an installed package's code is what crashes it, that package
is upgraded, and the build log says which and why. Runs in the build container (no repository
code that the build has not already run: only the installed packages and a one-line test).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from sandbox.base import SandboxError
from sandbox.envbuild import BuildBox, last_error

ROUNDS = 3
SMOKE_FAILED = 97  # the exit status that says the one-line test failed (not the step after it)
SMOKE = ("d=$(mktemp -d) && cd \"$d\" && printf 'def test_ok():\\n    pass\\n' > test_ok.py && "
         "python -m pytest -q -p no:cacheprovider test_ok.py 2>&1")
_SITE_FILE = re.compile(r'File "([^"]+/(?:site|dist)-packages/([^"/]+)/[^"]*)"')
_PYTEST_OWN = {"_pytest", "pytest", "pluggy"}
_OWNER = ("python - {path} <<'PY'\n"
          "import sys\n"
          "from importlib import metadata\n"
          "for dist in metadata.distributions():\n"
          "    if any(str(dist.locate_file(f)) == sys.argv[1] for f in dist.files or []):\n"
          "        print(dist.metadata['Name'])\n"
          "        break\n"
          "PY")


_EXCEPTION = re.compile(r"^(?:INTERNALERROR>|E)?\s*([\w.]*(?:Error|Exception)\b.*)$", re.M)


def why(output: str) -> str:
    """The exception pytest died of (`AttributeError: __spec__`), else the output's last error line."""
    found = _EXCEPTION.findall(output)
    return found[-1].strip()[:200] if found else last_error(output)


def culprit_file(output: str) -> str | None:
    """The last installed file (outside pytest itself) in the traceback of a pytest that could not run."""
    files = [m.group(1) for m in _SITE_FILE.finditer(output) if m.group(2) not in _PYTEST_OWN]
    return files[-1] if files else None


def make_pytest_start(box: BuildBox, env: dict[str, str], upgrade: Callable[[str], str],
                      log: Callable[[str], None], then: str = "true") -> list[str]:
    """Run a one-line test; while it fails in an installed package's code, upgrade that package; then run
    `then` (in the same exec when pytest starts at once: one round trip fewer per build).
    Returns the upgraded distributions (empty when pytest started at once)."""
    upgraded: list[str] = []
    for _ in range(ROUNDS):
        code, out = box.run("check that pytest starts", f"out=$({SMOKE}) || {{ printf '%s\\n' \"$out\"; "
                            f"exit {SMOKE_FAILED}; }}\n{then}", env)
        if code == 0:
            return upgraded
        if code != SMOKE_FAILED:
            raise SandboxError(f"environment build failed: check that pytest starts exited {code}: "
                               f"{last_error(out)}")
        path = culprit_file(out)
        owner = box.run("find the package that stops pytest", _OWNER.format(path=shlex.quote(path)), env)[1].strip() \
            if path else ""
        if not owner or owner in upgraded:
            log(f"warning: pytest does not start in this environment ({why(out)})")
            break
        log(f"environment: pytest crashes in {owner} as pinned ({why(out)}); upgrading {owner}")
        box.must(f"upgrade {owner}", upgrade(owner), env)
        upgraded.append(owner)
    box.must("finish the environment", then, env)
    return upgraded

"""Install what a repository declares into the environment's venv, inside the build container.

One uv resolution of everything when it works (seconds). When it does not (a requirements file
that cannot build on this Python, an old build backend), the same parts go in step by step,
still with uv: pytest and the project must install, each requirements file, the Pipfile lock
and the loose test dependencies may fail with a warning. pip, step by step, is the last resort
(no uv on the host, or a required step uv cannot do).

Unpinned resolutions are cut off at the commit's date (uv's exclude-newer), or at the release of the
sandbox's Python when the commit is older: releases from before an interpreter often do not run on
it. The project itself is then built by today's backend, for the same reason.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from sandbox.base import SandboxError
from sandbox.base_image import VENV
from sandbox.envbuild import BuildBox, last_error, tar_files
from sandbox.envplan import (
    constraint_files,
    dependency_groups,
    filtered_requirements,
    is_installable,
    lock_kind,
    lock_pins,
    pipfile_requirements,
    requirement_files,
    test_extras,
    test_groups,
    tool_dev_dependencies,
    tox_deps,
)
from sandbox.releases import RELEASED

BUILD = "/tmp/build"  # a volume under the /tmp tmpfs: never part of the image, not even as a mountpoint
SRC = f"{BUILD}/src"
PLAN = f"{BUILD}/plan"
DIST = f"{PLAN}/dist"  # the project's wheel, when it is built before the resolution
UV = f"{BUILD}/bin/uv"

Log = Callable[[str], None]
Step = tuple[str, str, bool]  # what, the installer's arguments (shell words), required


def install_declared(repo: Path, box: BuildBox, env: dict[str, str], uv: str | None, cutoff: str | None,
                     python: str, log: Log, seed: list[str] | None = None, venv: str = "",
                     pins: list[str] | None = None) -> str:
    """Locks and pins first; one uv resolution when it works, else step by step. `cutoff`: the unpinned
    resolution's date (environment.resolution_cutoff), uv only. `venv`, when given, creates the virtualenv
    in the same exec as uv's install (one round trip fewer per build). Returns how it was installed, for
    the image's label and the build's last log line."""
    reqs = [p.relative_to(repo).as_posix() for p in requirement_files(repo, python)]
    plan: dict[str, bytes] = {f"src/{r}": filtered_requirements((repo / r).read_text(errors="replace")).encode()
                              for r in reqs}
    # a local environment to mirror is what the user runs: its versions replace the lock's and the pins'
    locked, pipfile = ([] if pins else lock_pins(repo)), pipfile_requirements(repo)
    plan["plan/constraints.txt"] = ("\n".join(locked) + "\n").encode()
    plan["plan/local.txt"] = ("\n".join(pins or []) + "\n").encode()
    plan["plan/pipfile.txt"] = ("\n".join(pipfile) + "\n").encode()
    box.put(BUILD, tar_files(plan))
    constraints = (["-c", f"{PLAN}/local.txt"] if pins else
                   (["-c", f"{PLAN}/constraints.txt"] if locked else []) + [
                       x for p in constraint_files(repo) for x in ("-c", f"{SRC}/{p.name}")])
    extras = test_extras(repo)
    project = [f"{SRC}[{','.join(extras)}]" if extras else SRC] if is_installable(repo) else []
    loose = dependency_groups(repo) + tox_deps(repo) + tool_dev_dependencies(repo)
    requirements: list[Step] = [*((f"-r {r}", shlex.join(["-r", f"{SRC}/{r}"]), False) for r in reqs),
                                *([("the Pipfile lock", shlex.join(["-r", f"{PLAN}/pipfile.txt"]), False)]
                                  if pipfile else [])]
    tests: list[Step] = [("test dependencies", shlex.join(loose), False)] if loose else []
    steps: list[Step] = [("pytest", "pytest", True), *requirements,
                         *([("the project", shlex.join(project), True)] if project else []), *tests]
    if uv:
        uv_args, wheel, project_words = list(constraints), [], shlex.join(project)
        if pins:
            log(f"environment: {len(pins)} package versions as the local environment has them")
        elif cutoff:
            uv_args += ["--exclude-newer", cutoff]
            log(f"environment: no lock file or pins: resolving as of {cutoff}"
                + (f" (Python {python}'s release: the commit is older)" if cutoff == RELEASED.get(python) else ""))
            if project:  # built by today's backend (one from the commit's date may not run on this Python);
                # the wheel when it was built, else the source
                wheel = [shlex.join([UV, "build", "-q", "--wheel", "--python", f"{VENV}/bin/python", "-o", DIST,
                                     SRC])]
                project_words = f'"$(ls {DIST}/*.whl 2>/dev/null || echo {SRC})"' + (
                    f"[{','.join(extras)}]" if extras else "")
        lock = [] if pins else _uv_lock(repo, extras)
        if lock:
            uv_args += ["-c", f"{PLAN}/lock-c.txt"]
        uv_steps: list[Step] = [("pytest", shlex.join([*(seed or []), "pytest"]), True),
                                *([("the lock file", shlex.join(["-r", f"{PLAN}/lock.txt"]), True)] if lock else []),
                                *requirements, *([("the project", project_words, True)] if project else []), *tests]
        install = " ".join([shlex.join(_uv_install(uv_args)), *(words for _what, words, _need in uv_steps)])
        script = [f"({venv})" if venv else "true", f"cd {SRC}", *lock, *wheel, install]
        code, out = box.run("install dependencies (uv)", " && ".join(script), env)
        if code == 0:
            return "uv"
        log(f"warning: uv could not install everything at once ({last_error(out)}); installing step by step")
        if venv:
            box.must("create the virtualenv", f"test -x {VENV}/bin/python || ({venv})", env)
        try:
            if lock:
                box.must("export the lock file", " && ".join([f"cd {SRC}", *lock]), env)
            _stepwise(box, uv_steps, _uv_install(uv_args), env, log)
            return "uv, step by step"
        except SandboxError as exc:
            log(f"warning: {exc}; trying pip")
    box.must("make sure pip is there", f"{VENV}/bin/python -m pip --version >/dev/null 2>&1 || "
             f"{VENV}/bin/python -m ensurepip --default-pip", env)
    _stepwise(box, steps, ["pip", "install", *constraints], env, log)
    return "pip"


def upgrade(dist: str, uv: str | None) -> str:
    """The command that upgrades one distribution in the venv, past the project's pin of it."""
    if uv:
        return shlex.join([UV, "pip", "install", "--python", f"{VENV}/bin/python", "--upgrade", dist])
    return shlex.join(["pip", "install", "--upgrade", dist])


def _uv_install(args: list[str]) -> list[str]:
    return [UV, "pip", "install", "--python", f"{VENV}/bin/python", *args]


def _uv_lock(repo: Path, extras: list[str]) -> list[str]:
    """Shell commands that export uv.lock's pins (test extras and groups) as requirements, or []."""
    if lock_kind(repo) != "uv.lock":
        return []
    export = [UV, "export", "--frozen", "--no-hashes", "--no-emit-project", "--no-header", "--no-annotate",
              "--no-default-groups", *(x for e in extras for x in ("--extra", e)),
              *(x for g in test_groups(repo) for x in ("--group", g)), "-o", f"{PLAN}/lock.txt"]
    return [shlex.join(export), f"grep -v -e '^-e' -e '^\\.' {PLAN}/lock.txt > {PLAN}/lock-c.txt || true"]


def _stepwise(box: BuildBox, steps: list[Step], installer: list[str], env: dict[str, str], log: Log) -> None:
    """Each step on its own: a required one that fails stops the build, an optional one is left out."""
    tool = "uv" if installer[0] == UV else "pip"
    for what, words, required in steps:
        script = f"{shlex.join(installer)} {words}"
        if required:
            box.must(f"{tool} install {what}", f"cd {SRC} && {script}", env)
            continue
        code, out = box.run(f"{tool} install {what}", f"cd {SRC} && {script}", env)
        if code != 0:
            log(f"warning: installing {what} with {tool} exited {code} ({last_error(out)}); continuing without it")

"""Real repositories through `agent fix` with the oracle model, in the setups users have (issue 14).

Each instance (evals/data/real_repos.jsonl, built by evals/real_instances.py from libraries' own
bug-fix commits) becomes a user's checkout: the base commit plus the fix's tests, committed. Then:

  a  local sandbox, a venv with the project installed editable from that checkout (pip install -e .
     plus its test dependencies) active as VIRTUAL_ENV; the agent comes from this source tree
  b  local sandbox, the agent installed into that same kind of venv (pip install -e <agent>), its `agent`
  c  Docker sandbox, the agent from this source tree and nothing but the repository
  d  Docker sandbox with --mirror-local, setup a's venv active: the environment is built with its versions

The oracle (evals/oracle.py) replays the gold patch through the agent's tools, so what is measured
is the pipeline: environment, reproduction, verification, report. Each branch is graded without the
agent: a fresh clone of the branch's commit with the instance's test files restored, FAIL_TO_PASS and
PASS_TO_PASS run by pytest in the library's venv with the clone first on PYTHONPATH. Mirrors are not
bundled: pass them at run time.

    python -m evals.bench_real_repos --mirrors /work/.mirror --setups a,c --work /tmp/realbench
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from evals.bench_localization_real import PYTEST_EXTRA, repo_name
from evals.instances import Instance
from evals.materialize import GIT_ENV, apply_patch, git, materialize, with_version_file
from evals.oracle import ORACLE_KEY, oracle_server
from evals.runner import RunConfig, agent_env, fix_command, read_trajectory
from sandbox.envsmoke import culprit_file
from sandbox.releases import RELEASED
from sandbox.worktreesite import ROOTS_VAR, write_site

AGENT_SRC = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "real_repos.jsonl"
SETUPS = {"a": "local, project installed editable in the active venv",
          "b": "local, the agent installed into the project's venv",
          "c": "docker, from the repository alone",
          "d": "docker, built like the user's venv of setup a (--mirror-local)"}
# Runs `agent` from a source tree without putting that tree on the PYTHONPATH the tests inherit.
BOOT = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'agent'; "
        "runpy.run_module('agent.cli', run_name='__main__', alter_sys=True)")
TEST_NAMES = ("test", "tests", "testing")
BUILT = re.compile(r"environment (\S+) built in ([\d.]+) s")


@dataclasses.dataclass
class Options:
    work: Path
    agent_src: Path = AGENT_SRC
    offline: bool = False           # venvs see the host's packages and install nothing from an index
    fresh_env: bool = True          # remove a library's Docker environment image before its first run
    agent_timeout: float = 900.0
    test_timeout: float = 600.0


# --- the instance set ---------------------------------------------------------------------------

def load(path: Path, mirrors: dict[str, Path], ids: set[str] | None = None) -> list[dict[str, Any]]:
    """Raw records (with `properties`), each given its mirror; instances without one are an error."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if ids and record["instance_id"] not in ids:
            continue
        if record["repo"] not in mirrors:
            raise SystemExit(f"error: no mirror for {record['repo']} (pass --mirror or --mirrors)")
        record["environment_setup"] = {**record["environment_setup"], "mirror": str(mirrors[record["repo"]])}
        out.append(record)
    return out


def find_mirrors(dirs: list[str], singles: list[str]) -> dict[str, Path]:
    """owner/name -> mirror, from --mirror paths and --mirrors directories of owner+name/repo."""
    found = {repo_name(Path(m)): Path(m) for m in singles}
    for d in dirs:
        for child in sorted(Path(d).iterdir()):
            git_dir = child / "repo" if (child / "repo").is_dir() else child
            if (git_dir / "HEAD").is_file() or (git_dir / ".git").exists():
                found.setdefault(repo_name(git_dir), git_dir)
    return found


def user_checkout(inst: Instance, dest: Path) -> str:
    """The user's checkout: the base commit plus the fix's tests, committed; returns that commit."""
    repo = materialize(inst, dest)
    if not apply_patch(repo, inst.test_patch):
        raise RuntimeError("the test patch does not apply to the base commit")
    # dated as the base commit, as a user's commit on that checkout would be (not the evals' fixed
    # date): a Docker environment resolves unpinned dependencies as of HEAD's date
    date = git(repo, "show", "-s", "--format=%cI", "HEAD").strip()
    git(repo, "add", "-A", "-f")
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--no-verify", "--allow-empty", "-m",
                    "Add the failing tests"], check=True, capture_output=True,
                   env={**os.environ, **GIT_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
    return git(repo, "rev-parse", "HEAD").strip()


def base_date(repo: Path) -> str:
    """The committer date of the user's checkout (the commit the instance starts from)."""
    return git(repo, "show", "-s", "--format=%cI", "HEAD").strip()


# --- the user's venv ----------------------------------------------------------------------------

def test_requirements(root: Path) -> tuple[str, list[str]]:
    """(extras spec, requirement args) a developer would install to run the tests of `root`."""
    extras: list[str] = []
    reqs: list[str] = []
    pyproject = root / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text(encoding="utf-8")) if pyproject.is_file() else {}
    declared = set((data.get("project") or {}).get("optional-dependencies") or {})
    for path in (root / "setup.cfg", root / "setup.py"):
        if path.is_file():
            declared |= set(re.findall(r"^\s*['\"]?(tests?|testing)['\"]?\s*[:=]", path.read_text(
                encoding="utf-8", errors="replace"), re.M))
    extras = sorted(declared & set(TEST_NAMES))
    groups = data.get("dependency-groups") or {}

    def expand(name: str) -> list[str]:
        items = []
        for item in groups.get(name, []):
            items += expand(item["include-group"]) if isinstance(item, dict) else [item]
        return items

    for name in (*TEST_NAMES, "dev"):
        if name in groups:
            reqs += expand(name)
            break
    patterns = ("requirements/test*.txt", "requirements/tests*.txt", "requirements-test*.txt",
                "test-requirements.txt", "requirements/dev.txt", "requirements-dev.txt", "tests/requirements.txt")
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            reqs += ["-r", str(path)]
    return (f"[{','.join(extras)}]" if extras else ""), reqs


def _pip(python: Path, args: list[str], opts: Options, timeout: float = 900,
         asof: tuple[str, list[str]] | None = None) -> subprocess.CompletedProcess[str]:
    """pip, or (with `asof` = (date, lock constraints) and uv on this host) uv resolving as of that date."""
    if opts.offline:
        extra = ["--no-index", "--no-build-isolation"]
    elif asof and (uv := _uv()):
        date, constraints = asof
        return subprocess.run([uv, "pip", "install", "-q", "--python", str(python),
                               *(["--exclude-newer", date] if date else []), *constraints, *args],
                              capture_output=True, text=True, timeout=timeout, env=_clean_env())
    else:
        extra = []
    return subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *extra, *args],
                          capture_output=True, text=True, timeout=timeout, env=_clean_env())


def _uv() -> str | None:
    try:
        import uv  # type: ignore[import-not-found]

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError, AttributeError):
        return None


def dev_pins(repo: Path, out: Path) -> list[str]:
    """Constraints from the project's uv.lock (what its developers run the tests with), as `-c` args."""
    uv = _uv()
    if not uv or not (repo / "uv.lock").is_file():
        return []
    proc = subprocess.run([uv, "export", "--frozen", "--no-hashes", "--no-emit-project", "--no-header",
                           "--no-annotate", "--all-extras", "--all-groups", "-o", str(out)], cwd=repo,
                          capture_output=True, text=True, env=_clean_env())
    if proc.returncode:
        return []
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith(("-e", "."))]
    out.write_text("\n".join(lines) + "\n")
    return ["-c", str(out)]


def make_venv(venv: Path, repo: Path, opts: Options, with_agent: bool) -> str:
    """Create (once) and install the user's venv; '' or a one-line note of what could not be installed."""
    python = venv / "bin" / "python"
    if not python.exists():
        flags = ["--system-site-packages"] if opts.offline else []
        subprocess.run([sys.executable, "-m", "venv", *flags, str(venv)], check=True, capture_output=True,
                       env=_clean_env())
        if opts.offline:  # the venv's bundled setuptools would shadow the host's (which builds wheels)
            subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "setuptools"], capture_output=True,
                           env=_clean_env())
    extras, reqs = test_requirements(repo)
    note = ""
    # the developer's environment of that checkout: the lock's pins, else the index as of the commit
    asof = (base_date(repo), dev_pins(repo, venv / "dev-pins.txt"))
    if opts.offline:
        proc = _pip(python, ["--no-deps", "-e", str(repo)], opts)
    else:
        # as of the commit: the test requirements and pytest (no build of the project, whose old build
        # requirements may not build on this Python); then the project editable, keeping what is there
        first = _pip(python, [*reqs, "pytest"], opts, asof=asof)
        if first.returncode and reqs:  # a requirement this host cannot fetch (a git URL): pytest alone, as of then
            first = _pip(python, ["pytest"], opts, asof=asof)
        note = "" if first.returncode == 0 else f"as-of-date install failed ({_last_line(first.stderr)}); "
        proc = _pip(python, ["-e", f"{repo}{extras}", *reqs, "pytest"], opts, asof=("", asof[1]))
        if proc.returncode:  # old pins that no longer install: the project and pytest, as a user would retry
            note += f"test requirements did not install ({_last_line(proc.stderr)}); "
            proc = _pip(python, ["-e", str(repo), "pytest"], opts, asof=("", asof[1]))
    if proc.returncode:
        raise RuntimeError(f"pip install -e failed: {_last_line(proc.stderr)}")
    if not opts.offline and not _pytest_starts(python):
        # the commit's pytest predates this Python (py's apipkg of 2021 fails on 3.11): the pytest of the
        # day this Python was released, the oldest a developer could have run these tests with on it
        released = RELEASED.get("{}.{}".format(*sys.version_info[:2]), "")[:10]
        _pip(python, ["--upgrade", "pytest"], opts, asof=(released, asof[1]))
        note += f"pytest as of the commit does not start on this Python: pytest as of {released or 'today'}; "
    for _ in range(3 if not opts.offline else 0):
        # a period pin that today's pytest crashes on (py 1.5 of 2018: AttributeError: __spec__), as the
        # Docker environment does (sandbox.envsmoke): that package, upgraded
        owner = _pytest_crasher(python)
        if not owner:
            break
        _pip(python, ["--upgrade", owner], opts)
        note += f"pytest crashed in {owner} as pinned: {owner} upgraded; "
    if with_agent:
        # a wheel built outside the venv, as a user's `pip install` from an index gets one: built inside,
        # setuptools' own distutils imports jaraco.functools, and the project's editable 2016 copy of it
        # (jaraco.functools) broke the agent's build
        wheels = venv.parent / f"{venv.name}-agent-wheel"
        shutil.rmtree(wheels, ignore_errors=True)
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                                str(opts.agent_src)], capture_output=True, text=True, env=_clean_env())
        if built.returncode:
            raise RuntimeError(f"building the agent's wheel failed: {_last_line(built.stderr)}")
        proc = _pip(python, ["--no-deps" if opts.offline else "--upgrade-strategy=only-if-needed",
                             *map(str, wheels.glob("*.whl"))], opts)
        if proc.returncode:
            raise RuntimeError(f"pip install -e <agent> failed: {_last_line(proc.stderr)}")
    return note


def _pytest_crasher(python: Path) -> str:
    """The installed distribution whose code crashes pytest on a one-line test, or '' when pytest runs it."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_ok.py").write_text("def test_ok():\n    pass\n")
        proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_ok.py"],
                              capture_output=True, text=True, timeout=120, env=_clean_env(), cwd=tmp)
    path = culprit_file(proc.stdout + proc.stderr) if proc.returncode else None
    if not path:
        return ""
    owner = subprocess.run([str(python), "-c", "import sys\nfrom importlib import metadata\n"
                            "for d in metadata.distributions():\n"
                            "    if any(str(d.locate_file(f)) == sys.argv[1] for f in d.files or []):\n"
                            "        print(d.metadata['Name']); break\n", path],
                           capture_output=True, text=True, env=_clean_env())
    return owner.stdout.strip()


def _pytest_starts(python: Path) -> bool:
    """Whether the venv's pytest runs at all on its interpreter (period pins can predate the Python)."""
    proc = subprocess.run([str(python), "-m", "pytest", "--version"], capture_output=True, text=True, timeout=120,
                          env=_clean_env(), cwd=python.parent)
    return proc.returncode == 0


def _clean_env() -> dict[str, str]:
    """The host's environment without a virtualenv or import path of its own (a user's fresh shell)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return env


def _last_line(text: str) -> str:
    """The first `error:` line of a tool's output, else its last line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    return (errors or lines or [""])[0 if errors else -1][:200]


# --- one run ------------------------------------------------------------------------------------

def agent_argv(setup: str, inst: Instance, repo: Path, url: str, venv: Path, opts: Options) -> list[str]:
    shown = dataclasses.replace(inst, test_patch="")  # the tests are in the user's checkout: targets, not hidden
    cfg = RunConfig(work=str(opts.work), sandbox="docker" if setup in ("c", "d") else "local")
    args = fix_command(shown, repo, url, cfg)[3:] + (["--mirror-local"] if setup == "d" else [])  # from "fix" on
    if setup == "b":
        return [str(venv / "bin" / "agent"), *args]
    return [sys.executable, "-c", BOOT, str(opts.agent_src), *args]


def run_env(setup: str, home: Path, venv: Path) -> dict[str, str]:
    env = agent_env(home, ORACLE_KEY, "docker")  # no PYTHONPATH: the user's shell has none
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(key, None)
    if setup in ("a", "b", "d"):
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def ensure_base(repo: Path) -> None:
    """The base image for the project's Python: built once, as a user does (`agent sandbox build-base`);
    a setup step, not part of the measured run."""
    from sandbox.base_image import base_image_status, build_base
    from sandbox.environment import resolve_python

    python = resolve_python(repo, "auto")
    if not base_image_status(python)[0]:
        build_base(python, log=lambda _m: None)


def env_image(repo: Path) -> tuple[bool, str]:
    from agent.gitops import commit_date, describe_version
    from sandbox.environment import environment_status

    return environment_status(repo, version=describe_version(repo), date=commit_date(repo))


def run_one(record: dict[str, Any], setup: str, opts: Options, first_of_library: bool) -> dict[str, Any]:
    """One instance in one setup: checkout, venv, `agent fix`, independent grade. Never raises."""
    inst = Instance.from_dict(record)
    d = opts.work / setup / inst.instance_id
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    venv = opts.work / "venvs" / f"{inst.instance_id}-{'b' if setup == 'b' else 'a'}"  # commits span years
    out: dict[str, Any] = {"instance_id": inst.instance_id, "repo": inst.repo, "setup": setup,
                           "properties": record.get("properties", {}), "exit": None, "status": None,
                           "grade": None, "cause": "", "first_request_s": None, "env_build_s": None,
                           "first_of_library": first_of_library}
    try:
        repo = d / "repo"
        bug_state = user_checkout(inst, repo)
        out["venv_note"] = make_venv(venv, repo, opts, with_agent=setup == "b") if setup != "c" else ""
        if setup == "c":
            ensure_base(repo)
            exists, tag = env_image(repo)
            if exists and first_of_library and opts.fresh_env:
                subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
                exists = False
            out["env_image_cached"] = exists
        server = oracle_server(inst.patch, repo)
        server.start()
        try:
            argv = agent_argv(setup, inst, repo, server.base_url, venv, opts)
            started = time.time()
            with (d / "agent.log").open("w", encoding="utf-8") as err:
                proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, text=True, cwd=repo,
                                      env=run_env(setup, d / "agent-home", venv), timeout=opts.agent_timeout)
            out["wall_s"] = round(time.time() - started, 1)
        finally:
            server.stop()
        out["exit"] = proc.returncode
        log = (d / "agent.log").read_text(encoding="utf-8", errors="replace")
        if m := BUILT.search(log):
            out["env_build_s"] = float(m.group(2))
        try:
            report = json.loads(proc.stdout) if proc.stdout.strip() else None
        except json.JSONDecodeError:
            report = None
        events = read_trajectory(report)
        requests = [e for e in events if e.get("event") == "request"]
        if requests:
            out["first_request_s"] = round(float(requests[0]["ts"]) - started, 2)
        commit = (report or {}).get("commit") or bug_state
        out.update(status=(report or {}).get("status"), stop_reason=(report or {}).get("stop_reason"),
                   turns=(report or {}).get("turns"), commit=commit)
        grade, why = grade_commit(repo, commit, bug_state, inst, venv.parent / f"{inst.instance_id}-a", d / "grade",
                                  opts)
        out["grade"] = grade
        if proc.returncode != 0 or not grade:
            out["cause"] = _agent_error(log) or (f"{out['status']}: {out['stop_reason']}" if report else "") or why
            if proc.returncode == 0 and not grade:
                out["cause"] = f"reported {out['status']} but independent grading fails: {why}"
    except Exception as exc:  # noqa: BLE001 - one broken instance must not end the run
        out["cause"] = f"bench: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    finally:
        for sub in ("repo", "grade", "grade-site"):
            shutil.rmtree(d / sub, ignore_errors=True)
    return out


def _agent_error(log: str) -> str:
    errors = [ln.strip() for ln in log.splitlines() if ln.strip().lower().startswith("error")]
    return errors[-1][:300] if errors else ""


# --- independent grading ------------------------------------------------------------------------

def grade_commit(user_repo: Path, commit: str, bug_state: str, inst: Instance, venv: Path, dest: Path,
                 opts: Options) -> tuple[bool, str]:
    """(all FAIL_TO_PASS and PASS_TO_PASS pass, first failure) on a fresh clone of `commit`."""
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(user_repo), str(dest)], check=True,
                   capture_output=True)
    git(dest, "checkout", "-q", "--detach", commit)
    tests = sorted({t.split("::", 1)[0] for t in inst.FAIL_TO_PASS + inst.PASS_TO_PASS})
    git(dest, "checkout", "-q", bug_state, "--", *tests)  # the instance's tests, whatever the branch did to them
    with_version_file(dest)
    if subprocess.run([str(venv / "bin" / "python"), "-c", "import pytest"], capture_output=True,
                      env=_clean_env()).returncode if (venv / "bin" / "python").exists() else True:
        make_venv(venv, user_repo, opts, with_agent=False)  # none yet, or one an interrupted run left half made
    roots = [*([str(dest / "src")] if (dest / "src").is_dir() else []), str(dest)]
    # the clone first even over a package a .pth put in place at startup (an editable namespace's
    # -nspkg.pth points it at the user's checkout): the same sitecustomize as the local sandbox's
    site = write_site(dest.parent / "grade-site")
    env = {**_clean_env(), "PYTHONPATH": os.pathsep.join([str(site), *roots]), ROOTS_VAR: os.pathsep.join(roots),
           "PYTHONDONTWRITEBYTECODE": "1"}
    # -W ImportWarning: a period `six` under this Python warns at import, and a suite's `filterwarnings =
    # error` would make the grade about the grader's interpreter (dateutil 2018), never about the fix
    argv = [str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", *PYTEST_EXTRA,
            "-W", "ignore::ImportWarning", "-q", "-rfE",
            "--tb=line", *list(dict.fromkeys(inst.FAIL_TO_PASS + inst.PASS_TO_PASS))]
    try:
        proc = subprocess.run(argv, cwd=dest, capture_output=True, text=True, env=env, timeout=opts.test_timeout)
    except subprocess.TimeoutExpired:
        return False, "grading timed out"
    if proc.returncode == 0:
        return True, ""
    text = proc.stdout + proc.stderr
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.startswith(("FAILED", "ERROR"))), None) or next(
        (ln for ln in lines if ln.startswith("E ")), _last_line(text))
    return False, f"pytest exit {proc.returncode}: {first.strip()[:200]}"


# --- the set's coverage (issue 14's minimums) ------------------------------------------------------

MINIMUMS = {"libraries": 12, "src layout": 4, "VCS-versioned": 3, "lock files": 2, "old commits": 3,
            "namespace package": 1}


def coverage(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What each minimum counts (libraries, or instances for old commits), read from `properties`."""
    props: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        props.setdefault(r["repo"], []).append(r.get("properties") or {})

    def libs(test) -> list[str]:  # libraries with at least one instance that has the property
        return sorted(lib for lib, ps in props.items() if any(test(p) for p in ps))

    return {"libraries": sorted(props),
            "src layout": libs(lambda p: p.get("layout") == "src"),
            "VCS-versioned": libs(lambda p: set(p.get("versioning", [])) - {"static"}),
            "lock files": libs(lambda p: p.get("lock_files")),
            "old commits": sorted(r["instance_id"] for r in records if (r.get("properties") or {}).get("old")),
            "namespace package": libs(lambda p: p.get("namespace"))}


def coverage_table(records: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """(the table, the minimums the set misses)."""
    cov = coverage(records)
    lines = ["| property | needed | have | which |", "|---|---|---|---|"]
    missing = []
    for name, need in MINIMUMS.items():
        have = cov[name]
        lines.append(f"| {name} | {need} | {len(have)} | {', '.join(x.split('/')[-1] for x in have)} |")
        if len(have) < need:
            missing.append(f"{name}: {len(have)} < {need}")
    return "\n".join(lines), missing


# --- the table ----------------------------------------------------------------------------------

def table(rows: list[dict[str, Any]], setup: str) -> str:
    out = [f"\n## setup {setup}: {SETUPS[setup]}", "",
           "| instance | props | exit | status | graded | first request s | cause |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r.get("properties") or {}
        props = "/".join(x for x in (p.get("layout"), ",".join(v for v in p.get("versioning", []) if v != "static"),
                                     "lock" if p.get("lock_files") else "", "old" if p.get("old") else "",
                                     "ns" if p.get("namespace") else "") if x)
        graded = {True: "pass", False: "FAIL", None: "-"}[r["grade"]]
        out.append(f"| {r['instance_id']} | {props} | {r['exit']} | {r['status']} | {graded} | "
                   f"{r['first_request_s'] if r['first_request_s'] is not None else '-'} | {r['cause'][:160]} |")
    n = len(rows)
    ok = [r for r in rows if r["exit"] == 0 and r["status"] == "resolved" and r["grade"]]
    false_ok = [r for r in rows if r["status"] == "resolved" and r["exit"] == 0 and not r["grade"]]
    out += ["", f"resolved (exit 0, status resolved, independent grade passes): {len(ok)}/{n} = "
            f"{100 * len(ok) / max(n, 1):.0f}%",
            f"false resolved (reported resolved, independent grade fails): {len(false_ok)}"]
    exit3 = [r for r in rows if r["exit"] == 3]
    out.append(f"exit 3: {len(exit3)}" + "".join(f"\n  {r['instance_id']}: {r['cause']}" for r in exit3))
    not3 = [r for r in rows if r not in ok and r["exit"] != 3]
    out.append(f"unresolved without an exit-3 message: {len(not3)}"
               + "".join(f"\n  {r['instance_id']} (exit {r['exit']}): {r['cause']}" for r in not3))
    out += ["", "| library | first-run env build s | first-run s to first request |", "|---|---|---|"]
    for lib in sorted({r["repo"] for r in rows}):
        first = next((r for r in rows if r["repo"] == lib and r.get("first_of_library")), None)
        if first is None:
            continue
        build = first["env_build_s"] if first["env_build_s"] is not None else (
            "cached" if first.get("env_image_cached") else "-")
        out.append(f"| {lib} | {build} | {first['first_request_s'] if first['first_request_s'] is not None else '-'} |")
    builds = [r["env_build_s"] for r in rows if r.get("first_of_library") and r["env_build_s"] is not None]
    firsts = [r["first_request_s"] for r in rows if r.get("first_of_library") and r["first_request_s"] is not None]
    if builds:
        out.append(f"median first-run environment build: {statistics.median(builds):.1f} s (goal < 10 s)")
    if firsts:
        out.append(f"median first-run time to first model request: {statistics.median(firsts):.1f} s")
    return "\n".join(out)


def run(records: list[dict[str, Any]], setups: list[str], opts: Options, results: Path) -> list[dict[str, Any]]:
    done = {}
    if results.is_file():
        for line in results.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[(row["setup"], row["instance_id"])] = row
    rows = []
    for setup in setups:
        seen: set[str] = {r["repo"] for (s, _), r in done.items() if s == setup and r.get("first_of_library")}
        for record in records:
            key = (setup, record["instance_id"])
            if key in done:
                rows.append(done[key])
                continue
            first = record["repo"] not in seen
            seen.add(record["repo"])
            row = run_one(record, setup, opts, first)
            print(f"[{setup}] {row['instance_id']:<48} exit={row['exit']} status={row['status']} "
                  f"graded={row['grade']} first_request={row['first_request_s']} {row['cause'][:120]}", flush=True)
            with results.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA), help="instances (JSON lines)")
    ap.add_argument("--mirror", action="append", default=[], help="a git mirror of one library")
    ap.add_argument("--mirrors", action="append", default=[], help="a directory of mirrors (owner+name/repo)")
    ap.add_argument("--setups", default="a,b,c", help="comma-separated: a, b, c")
    ap.add_argument("--instance", action="append", default=[], help="only these instance ids")
    ap.add_argument("--work", required=True, help="work directory; results.jsonl there makes a run resumable")
    ap.add_argument("--agent-src", default=str(AGENT_SRC), help="the agent source tree to run")
    ap.add_argument("--offline", action="store_true", help="venvs reuse the host's packages; no index")
    ap.add_argument("--keep-env", action="store_true", help="do not remove a library's Docker image first")
    ap.add_argument("--agent-timeout", type=float, default=900.0)
    args = ap.parse_args(argv)
    setups = [s for s in args.setups.split(",") if s]
    if bad := [s for s in setups if s not in SETUPS]:
        ap.error(f"unknown setup(s) {bad}: use a, b, c")
    opts = Options(work=Path(args.work).resolve(), agent_src=Path(args.agent_src).resolve(), offline=args.offline,
                   fresh_env=not args.keep_env, agent_timeout=args.agent_timeout)
    opts.work.mkdir(parents=True, exist_ok=True)
    records = load(Path(args.data), find_mirrors(args.mirrors, args.mirror), set(args.instance) or None)
    text, missing = coverage_table(records)
    print("# coverage of the instance set\n" + text, flush=True)
    if missing and not args.instance:  # a rerun of chosen instances need not cover the set
        print(f"error: the instance set misses issue 14's minimums ({'; '.join(missing)})", file=sys.stderr)
        return 2
    rows = run(records, setups, opts, opts.work / "results.jsonl")
    for setup in setups:
        print(table([r for r in rows if r["setup"] == setup], setup))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build SWE-bench instances from libraries' own bug-fix commits (git mirrors), with their properties.

The commits are found and checked by bench_localization_real (a fix/bug message, one source file,
changed tests that fail at the parent plus the commit's test changes and pass at the fix). The
rule that picks them is fixed before any agent runs: per library, the newest reproducible commits,
plus the newest one older than AGE_CUTOFF when none of those is. PASS_TO_PASS is every other test
function of the changed test files that passes in both states. Properties (layout, versioning, lock
file, age, namespace package) are read from the tree at the base commit, so the set's coverage can
be checked rather than claimed.

    python -m evals.real_instances --mirror DIR [--mirror DIR ...] --out evals/data/real_repos.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from evals import bench_localization_real as real
from evals.instances import EnvironmentSetup, Instance

AGE_CUTOFF = "2024-12-01"
VCS_MARKERS = {"setuptools_scm": "setuptools-scm", "setuptools-scm": "setuptools-scm", "hatch-vcs": "hatch-vcs",
               "hatch_vcs": "hatch-vcs", "versioneer": "versioneer", "pbr": "pbr", "dunamai": "dunamai"}
LOCK_FILES = ("uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock")
PIN = re.compile(r"^[A-Za-z0-9_.\[\],-]+==[^=\s;]+")
MAX_P2P = 150
# A pre-PEP 420 namespace package: its __init__.py only declares the namespace (pkg_resources, pkgutil).
NAMESPACE_INIT = re.compile(r"declare_namespace\(|pkgutil\.extend_path\(")


def exact_diff(repo: Path, *args: str) -> str:
    """`git diff` byte for byte: text mode would turn a CRLF file's lines into LF and the patch would
    no longer apply to the commit it came from."""
    proc = subprocess.run(["git", "diff", *args], cwd=repo, capture_output=True, check=True)
    return proc.stdout.decode("utf-8")


def _show(repo: Path, sha: str, rel: str) -> str:
    return real.git(repo, "show", f"{sha}:{rel}", check=False)


def properties(repo: Path, sha: str, fix: str) -> dict[str, Any]:
    """Layout, VCS versioning, lock files and namespace packages of the tree at `sha`; the date of `fix`."""
    files = real.git(repo, "ls-tree", "-r", "--name-only", sha).splitlines()
    tops = {f.split("/", 1)[0] for f in files if "/" in f}
    src = "src" in tops and any(f.startswith("src/") and f.endswith("/__init__.py") for f in files)
    build = "\n".join(_show(repo, sha, f) for f in ("pyproject.toml", "setup.cfg", "setup.py") if f in files)
    vcs = sorted({name for marker, name in VCS_MARKERS.items() if marker in build})
    locks = [f for f in files if f in LOCK_FILES]
    for f in files:
        if f.endswith(".txt") and ("requirements" in f or f.startswith("requirements/")):
            lines = [ln.strip() for ln in _show(repo, sha, f).splitlines()
                     if ln.strip() and not ln.lstrip().startswith(("#", "-"))]
            if lines and all(PIN.match(ln) for ln in lines):
                locks.append(f)
    root = "src/" if src else ""
    packages = {f[len(root):].split("/", 1)[0] for f in files if f.startswith(root) and f.endswith(".py")
                and "/" in f[len(root):]}
    namespace = sorted(p for p in packages if p not in real.TEST_DIRS | real.NOT_SOURCE_DIRS
                       and (f"{root}{p}/__init__.py" not in files and any(
                           f.startswith(f"{root}{p}/") and f.endswith("/__init__.py") for f in files)
                            or NAMESPACE_INIT.search(_show(repo, sha, f"{root}{p}/__init__.py"))))
    date = real.git(repo, "log", "-1", "--format=%cs", fix).strip()
    return {"layout": "src" if src else "flat", "versioning": vcs or ["static"], "lock_files": locks,
            "date": date, "old": date < AGE_CUTOFF, "namespace": namespace}


def _functions(outcomes: dict[str, str]) -> dict[str, bool]:
    """Test function id -> every outcome of it (all parametrisations) passed or was skipped."""
    out: dict[str, bool] = {}
    for node, outcome in outcomes.items():
        func = node.split("[", 1)[0]
        out[func] = out.get(func, True) and outcome in ("passed", "skipped", "xfailed")
    return out


def pass_to_pass(work: Path, cand: real.Candidate, targets: list[str]) -> list[str]:
    """Other test functions of the changed test files that pass at the bug state and at the fix."""
    files = list(dict.fromkeys(t.split("::", 1)[0] for t in cand.tests))
    bug, _, _ = real.run_tests(work, files)  # reproduce() leaves the bug state checked out
    real.checkout(work, cand.sha)
    fixed, _, _ = real.run_tests(work, files)
    before, after = _functions(bug), _functions(fixed)
    keep = sorted(f for f, ok in after.items() if ok and before.get(f) and f not in targets
                  and not any(f.startswith(t + "::") for t in targets))
    return keep[:MAX_P2P]


def build_instance(work: Path, name: str, cand: real.Candidate, targets: list[str]) -> dict[str, Any]:
    """The SWE-bench record (base = the parent; test_patch = the fix's test changes) plus properties."""
    p2p = pass_to_pass(work, cand, targets)
    patch = exact_diff(work, cand.parent, cand.sha, "--", cand.fixed_file)
    test_patch = exact_diff(work, "--binary", cand.parent, cand.sha, "--", *cand.test_files)
    inst = Instance(instance_id=f"{name.replace('/', '__')}-{cand.sha[:10]}", repo=name, base_commit=cand.parent,
                    problem_statement=f"Fix the failing tests: {' '.join(targets)}", FAIL_TO_PASS=targets,
                    PASS_TO_PASS=p2p, patch=patch, test_patch=test_patch,
                    environment_setup=EnvironmentSetup(source="git", mirror="", python="3.11"),
                    created_at=real.git(work, "log", "-1", "--format=%cI", cand.sha).strip())
    record = inst.to_dict()
    record["fix_commit"] = cand.sha
    record["subject"] = cand.subject
    record["properties"] = properties(work, cand.parent, cand.sha)
    return record


def pick(work: Path, name: str, per_repo: int, max_tries: int, log: Any = print) -> list[dict[str, Any]]:
    """The newest `per_repo` reproducible fixes, one of them older than AGE_CUTOFF when the history has one."""
    kept: list[dict[str, Any]] = []
    for cand in real.select_candidates(work)[:max_tries]:
        has_old = any(r["properties"]["old"] for r in kept)
        date = real.git(work, "log", "-1", "--format=%cs", cand.sha).strip()
        if len(kept) >= per_repo and (has_old or date >= AGE_CUTOFF):
            if has_old:
                break
            continue
        try:
            targets, _, why = real.reproduce(work, cand)
        except subprocess.CalledProcessError as exc:
            targets, why = [], f"git failed ({exc.cmd[1]})"
        if not targets:
            log(f"  skip {cand.sha[:10]} {date}: {why}")
            continue
        record = build_instance(work, name, cand, targets)
        log(f"  keep {cand.sha[:10]} {date} targets={len(targets)} p2p={len(record['PASS_TO_PASS'])} "
            f"{cand.subject[:60]}")
        kept.append(record)
    head = kept[:per_repo]
    olds = [r for r in kept if r["properties"]["old"]]
    if olds and not any(r["properties"]["old"] for r in head):
        head = head[:per_repo - 1] + olds[:1]
    return head


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", action="append", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-repo", type=int, default=3)
    ap.add_argument("--max-tries", type=int, default=40)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="real-instances-"))
    out = Path(args.out)
    try:
        with out.open("a", encoding="utf-8") as handle:
            for mirror in args.mirror:
                name = real.repo_name(Path(mirror))
                print(f"# {name}", flush=True)
                work = tmp / name.replace("/", "+")
                real.git(tmp, "clone", "-q", "--shared", "--no-checkout", str(mirror), str(work))
                for record in pick(work, name, args.per_repo, args.max_tries, log=lambda s: print(s, flush=True)):
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    handle.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Localization benchmark: is the file a fix belongs in named in the structural summary?

The issue asks for real bug-fix commits; their history is not reachable from here, so this uses
INJECTED bugs: small pure-Python libraries' sdists from PyPI (pinned), a realistic single-site bug
(wrong comparison, off-by-one, flipped boolean, missing None check, wrong index) put into one
library module, kept only when it makes a test fail. Each instance is then summarised the way
`agent fix` would: seeded from the failing test and the traceback of running that one test, at
1024 and 4096 tokens. Goals: >= 85% at 1024, >= 95% at 4096. Every output line says "injected".

    python evals/bench_localization.py [--per-lib N] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from evals.bugs.mutations import code_shape

# (sdist spec, source dirs holding library code, test dir or file, extra PYTHONPATH entry)
LIBRARIES = [
    ("toolz==0.12.1", ["toolz"], "toolz/tests", ""),
    ("inflection==0.5.1", ["inflection"], "test_inflection.py", ""),
    ("more-itertools==10.2.0", ["more_itertools"], "tests", ""),
    ("cachetools==5.3.3", ["src/cachetools"], "tests", "src"),
    ("jmespath==1.0.1", ["jmespath"], "tests", ""),
    ("boltons==24.0.0", ["boltons"], "tests", ""),
    ("idna==3.7", ["idna"], "tests", ""),
    ("sqlparse==0.5.0", ["sqlparse"], "tests", ""),
    ("click==8.1.7", ["src/click"], "tests", "src"),
    # the hard case: this Python's standard library as one 1,800-file repo (the bench_summary corpus)
    ("stdlib", ["textwrap.py", "shlex.py", "fractions.py", "colorsys.py", "ipaddress.py", "calendar.py", "html",
                "fnmatch.py"],
     "test/test_textwrap.py test/test_shlex.py test/test_fractions.py test/test_colorsys.py "
     "test/test_ipaddress.py test/test_calendar.py test/test_html.py test/test_fnmatch.py", ""),
]

# (name, pattern, replacement): single-site edits of the kinds real bugs have
MUTATIONS = [
    ("comparison", re.compile(r" < "), " <= "),
    ("comparison", re.compile(r" <= "), " < "),
    ("comparison", re.compile(r" > "), " >= "),
    ("comparison", re.compile(r" >= "), " > "),
    ("equality", re.compile(r" == "), " != "),
    ("off-by-one", re.compile(r" \+ 1\b"), " + 2"),
    ("off-by-one", re.compile(r" - 1\b"), ""),
    ("boolean", re.compile(r"\breturn True\b"), "return False"),
    ("boolean", re.compile(r"\breturn False\b"), "return True"),
    ("logic", re.compile(r" and "), " or "),
    ("none-check", re.compile(r" is None\b"), " is not None"),
    ("none-check", re.compile(r" is not None\b"), " is None"),
    ("index", re.compile(r"\[0\]"), "[1]"),
    ("index", re.compile(r"\[-1\]"), "[0]"),
]
TEST_TIMEOUT = 120


@dataclass
class Instance:
    lib: str
    file: str
    line: int
    kind: str
    mutation: int
    test: str
    traceback: str


def git(root: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid"}
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)


def fetch_sdist(spec: str, dest: Path) -> Path:
    name, _, version = spec.partition("==")
    for cand in sorted(dest.glob("*.tar.gz")):
        if cand.name.lower().replace("_", "-").startswith(f"{name.lower()}-{version}"):
            return cand
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    "-d", str(dest), spec], check=True, capture_output=True, timeout=600)
    return fetch_sdist(spec, dest)


def unpack(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        if not (dest / top).exists():
            tar.extractall(dest, filter="data")
    root = dest / top
    if not (root / ".git").exists():
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "sdist")
    return root


def run_pytest(root: Path, pythonpath: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(root / pythonpath) if pythonpath else str(root),
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    try:
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=",
               "-W", "ignore::pytest.PytestRemovedIn9Warning", *args]
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env, timeout=TEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, ""
    return proc.returncode, proc.stdout + proc.stderr


def candidate_sites(root: Path, src_dirs: list[str]) -> list[tuple[str, int, int]]:
    """(relpath, line index, mutation index) for every place a mutation pattern matches."""
    sites = []
    for d in src_dirs:
        for path in sorted((root / d).rglob("*.py")) if (root / d).is_dir() else [root / d]:
            rel = path.relative_to(root).as_posix()
            if "/tests/" in f"/{rel}" or path.name.startswith("test"):
                continue
            for i, line in enumerate(path.read_text("utf-8").splitlines()):
                if line.lstrip().startswith("#"):
                    continue
                for m, (_, pat, _) in enumerate(MUTATIONS):
                    if pat.search(line):
                        sites.append((rel, i, m))
    return sites


def inject(root: Path, rel: str, line_no: int, m: int) -> bool:
    path = root / rel
    text = path.read_text("utf-8")
    lines = text.splitlines(keepends=True)
    _, pat, repl = MUTATIONS[m]
    lines[line_no] = pat.sub(repl, lines[line_no], count=1)
    new = "".join(lines)
    if code_shape(new) in (None, code_shape(text)):
        return False
    path.write_text(new, "utf-8")
    return True


def first_failure(output: str) -> str | None:
    m = re.search(r"^(?:FAILED|ERROR) (\S+::\S+)", output, re.M)
    return m.group(1) if m else None


def make_instances(spec: str, src_dirs: list[str], tests: str, pythonpath: str, work: Path,
                   per_lib: int, rng: random.Random) -> tuple[Path | None, list[Instance], str]:
    try:
        if spec == "stdlib":
            from evals.bench_summary import build_corpus

            root = work / "repos" / "stdlib"
            if not (root / ".git").exists():
                build_corpus(root)
            per_lib *= 2
        else:
            root = unpack(fetch_sdist(spec, work / "sdists"), work / "repos")
    except (subprocess.SubprocessError, OSError, tarfile.TarError) as exc:
        return None, [], f"{spec}: unavailable ({type(exc).__name__})"
    test_args = tests.split()
    code, out = run_pytest(root, pythonpath, "-q", "-x", *test_args)
    if code != 0:
        return root, [], f"{spec}: baseline test run does not pass (exit {code}); skipped"
    sites = candidate_sites(root, src_dirs)
    rng.shuffle(sites)
    found: list[Instance] = []
    used_files: dict[str, int] = {}
    tries = 0
    for rel, line_no, m in sites:
        if len(found) >= per_lib or tries >= per_lib * 6:
            break
        if used_files.get(rel, 0) >= 2:  # spread instances over the library's modules
            continue
        if not inject(root, rel, line_no, m):
            continue
        tries += 1
        try:
            code, out = run_pytest(root, pythonpath, "-q", "-x", "-rfE", *test_args)
            test = first_failure(out) if code == 1 else None
            if test:
                _, tb = run_pytest(root, pythonpath, test)  # what `agent fix` sees when it reproduces
                found.append(Instance(spec, rel, line_no + 1, MUTATIONS[m][0], m, test, tb))
                used_files[rel] = used_files.get(rel, 0) + 1
        finally:
            git(root, "checkout", "-q", "--", rel)
    return root, found, f"{spec}: {len(found)} injected bugs from {tries} tries"


def evaluate(root: Path, inst: Instance, cache: Path) -> dict[str, object]:
    """Re-inject the bug, summarise at both budgets, record where the fixed file shows up."""
    from agent.summary.index import RepoIndex
    from agent.summary.render import render_summary
    from agent.summary.scope import compute_scope

    path = root / inst.file
    original = path.read_text("utf-8")
    inject(root, inst.file, inst.line - 1, inst.mutation)
    try:
        index = RepoIndex.build(root, cache_dir=cache)
        scope = compute_scope(root, index, [inst.test], inst.traceback, [], "")
        result: dict[str, object] = {"seed": inst.file in scope.seed_files, "files": len(index.files),
                                     "in_traceback": inst.file in {f for f, _ in scope.frames}}
        for tokens in (1024, 4096):
            text = render_summary(index, scope, tokens).text
            result[tokens] = inst.file in text
            listed = [p for p in sorted(index.files, key=lambda p: text.find(p)) if p in text]
            result[f"rank{tokens}"] = listed.index(inst.file) + 1 if inst.file in listed else None
            result[f"named{tokens}"] = len(listed)
    finally:
        path.write_text(original, "utf-8")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-lib", type=int, default=4, help="injected bugs per library")
    ap.add_argument("--work", help="work directory (kept; sdists are reused from it)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--only", action="append", default=[], help="libraries whose spec contains this")
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-loc-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "sdists").mkdir(exist_ok=True)
    (work / "repos").mkdir(exist_ok=True)
    started = time.time()
    rows = []
    try:
        for spec, src_dirs, tests, pythonpath in LIBRARIES:
            if args.only and not any(o in spec for o in args.only):
                continue
            rng = random.Random(f"{args.seed}:{spec}")
            root, instances, note = make_instances(spec, src_dirs, tests, pythonpath, work, args.per_lib, rng)
            print(f"# {note}", flush=True)
            for inst in instances:
                res = evaluate(root, inst, work / "cache")
                rows.append((inst, res))
                print(f"injected  {inst.lib:<24} {inst.file}:{inst.line:<5} {inst.kind:<11} "
                      f"1024:{'yes' if res[1024] else 'NO ':<4} 4096:{'yes' if res[4096] else 'NO ':<4} "
                      f"rank@4096={res['rank4096']} seed={res['seed']} traceback={res['in_traceback']} "
                      f"named@1024={res['named1024']}/{res['files']}  "
                      f"test={inst.test}", flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    n = len(rows)
    if not n:
        print("no instances")
        return 1
    hit1 = sum(1 for _, r in rows if r[1024])
    hit4 = sum(1 for _, r in rows if r[4096])
    ranks = [r["rank4096"] for _, r in rows if r["rank4096"]]
    in_tb = sum(1 for _, r in rows if r["in_traceback"])
    print(f"\nINJECTED bugs (not real bug-fix commits): {n} instances from {len({i.lib for i, _ in rows})} libraries")
    print(f"fixed file in summary at 1024 tokens: {hit1}/{n} = {100 * hit1 / n:.0f}%  (goal >= 85%)")
    print(f"fixed file in summary at 4096 tokens: {hit4}/{n} = {100 * hit4 / n:.0f}%  (goal >= 95%)")
    print(f"median rank of the fixed file among files named (4096): {statistics.median(ranks) if ranks else '-'}")
    share = statistics.mean(r["named1024"] / r["files"] for _, r in rows)
    print(f"difficulty: repos of {min(r['files'] for _, r in rows)}-{max(r['files'] for _, r in rows)} source "
          f"files; the 1024-token summary names {100 * share:.0f}% of a repo's files on average")
    by_lib: dict[str, list[bool]] = {}
    for inst, r in rows:
        by_lib.setdefault(inst.lib, []).append(bool(r[1024]))
    print("per library at 1024: " + ", ".join(f"{lib} {sum(v)}/{len(v)}" for lib, v in by_lib.items()))
    print(f"fixed file among the traceback frames: {in_tb}/{n}; a seed file: "
          f"{sum(1 for _, r in rows if r['seed'])}/{n}; wall {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Localization on REAL bug-fix commits: is the file a fix went into named in the structural summary?

bench_localization.py measures this on injected bugs; this one replays libraries' own history. From
local git mirrors (no network: CI and users have none to GitHub) it picks commits whose message says
fix/bug/issue/regression, that change exactly one non-test source .py file (plus tests and non-code
files) and add or change at least one test function. The bug state is the parent commit plus ONLY the
commit's test-file changes; an instance is kept when a changed test fails there and passes at the fix
commit. It is summarised the way `agent fix <selector>` does: targets = the failing test functions,
traceback = the output of running their test files, task text = the selectors only (never the
commit message). Goals: the fixed file in the summary for >= 85% at 1024 tokens, >= 95% at 4096.

    python evals/bench_localization_real.py --mirror DIR [--mirror DIR ...] [--per-repo N] [--export F.jsonl]
    python evals/bench_localization_real.py --instances evals/data/localization_further.jsonl [--trace]
    python evals/bench_localization_real.py --load F     # replay saved instances: no test runs to pick them

`--export` writes the kept instances as a JSONL instance list (repo, commit, parent, fixed file, test
files, targets), one line as each is kept; `--instances` rebuilds exactly those from the mirrors under
`--mirror-root` (owner+name/repo), re-verifies each (fails at the bug state, passes at the commit) and
scores it. evals/data/localization_*.jsonl are the lists this project measures on (see
evals/data/localization_sets.md). `--trace` also runs the failing targets under agent.spectrum's tracer,
as `agent fix` does, feeds the ranked definitions to the summary and reports the tracing overhead.
`--save` writes the kept instances with their tracebacks as JSON; `--load` replays such a file.

The libraries' own test suites run in this Python: run the bench from a throwaway venv made with
`--system-site-packages` (some suites `pip install -e` themselves into the running interpreter).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sandbox.pytest_runs import OUTPUT_KEEP, parse_outcomes, pytest_argv
from sandbox.text import cut_middle

FIX_MESSAGE = re.compile(r"\b(?:bug ?fix(?:es|ed)?|fix(?:e[sd]|ing)?|bugs?|issues?|regressions?)\b", re.I)
TEST_DIRS = {"test", "tests", "testing"}
NOT_SOURCE_DIRS = {"docs", "doc", "benchmarks", "bench", "examples", "scripts", ".github"}
NOT_SOURCE_FILES = {"setup.py", "noxfile.py", "fabfile.py", "tasks.py", "conftest.py"}
TEST_TIMEOUT = 120
PYTEST = [sys.executable, "-m", "pytest"]
# Neutralise each old checkout's own pytest config (coverage plugins, doctest flags) that this machine lacks.
PYTEST_EXTRA = ["-o", "addopts=", "-W", "ignore::DeprecationWarning"]


@dataclass
class Candidate:
    """A commit that looks like a bug fix with a test, before any test has run."""

    sha: str
    parent: str
    subject: str
    fixed_file: str
    test_files: list[str]  # every changed path under a test directory or named like a test
    tests: list[str]  # node ids (file::func or file::Class::func) of added or changed test functions


@dataclass
class Instance:
    repo: str
    cand: Candidate
    targets: list[str]
    traceback: str
    result: dict[str, object] = field(default_factory=dict)
    mirror: str = ""

    def to_json(self) -> dict[str, object]:
        return {"repo": self.repo, "mirror": self.mirror, "cand": self.cand.__dict__, "targets": self.targets,
                "traceback": self.traceback}

    @classmethod
    def from_json(cls, data: dict) -> Instance:
        return cls(data["repo"], Candidate(**data["cand"]), data["targets"], data["traceback"],
                   mirror=data["mirror"])


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, errors="replace")
    if check and proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, ["git", *args], proc.stdout, proc.stderr)
    return proc.stdout


def is_test_path(rel: str) -> bool:
    """Test code or test data: under a tests/ directory, or a file pytest would collect (or a conftest)."""
    p = PurePosixPath(rel)
    name = p.name
    if any(part in TEST_DIRS for part in p.parts[:-1]):
        return True
    return name == "conftest.py" or (name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")))


def is_source_py(rel: str) -> bool:
    p = PurePosixPath(rel)
    return (p.suffix == ".py" and not is_test_path(rel) and p.name not in NOT_SOURCE_FILES
            and not any(part in NOT_SOURCE_DIRS for part in p.parts[:-1]))


def _test_functions(source: str) -> dict[str, str] | None:
    """Test function name (`f` or `Class::f`) -> AST dump, or None when the file does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            found[node.name] = ast.dump(node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test"):
                    found[f"{node.name}::{item.name}"] = ast.dump(item)
    return found


def changed_tests(repo: Path, parent: str, sha: str, rel: str) -> list[str]:
    """Node ids of test functions in `rel` that the commit adds or changes (ignoring formatting)."""
    new = _test_functions(git(repo, "show", f"{sha}:{rel}", check=False))
    if not new:
        return []
    old = _test_functions(git(repo, "show", f"{parent}:{rel}", check=False)) or {}
    return [f"{rel}::{name}" for name, dump in new.items() if old.get(name) != dump]


def select_candidates(repo: Path) -> list[Candidate]:
    """Bug-fix-with-test commits of `repo` (a git dir or work tree), newest first."""
    log = git(repo, "log", "--no-merges", "--format=%x1e%H %P%n%B%x1f", "--name-status", "--no-renames")
    out: list[Candidate] = []
    seen: set[tuple[str, str]] = set()  # (subject, fixed file): the same fix cherry-picked to another branch
    for record in log.split("\x1e")[1:]:
        head, _, changes = record.partition("\x1f")
        first, _, message = head.partition("\n")
        shas = first.split()
        if len(shas) != 2 or not FIX_MESSAGE.search(message):
            continue
        rows = [line.split("\t") for line in changes.strip().splitlines() if "\t" in line]
        sources = [(st, path) for st, path, *_ in rows if is_source_py(path)]
        others_py = [path for _, path, *_ in rows
                     if path.endswith(".py") and not is_test_path(path) and not is_source_py(path)
                     and PurePosixPath(path).name != "setup.py"]
        tests = [path for st, path, *_ in rows if is_test_path(path)]
        if len(sources) != 1 or sources[0][0] != "M" or others_py or not tests:
            continue
        sha, parent = shas
        node_ids = [n for rel in tests if rel.endswith(".py") and is_test_path(rel) and PurePosixPath(rel).name
                    != "conftest.py" for n in changed_tests(repo, parent, sha, rel)]
        subject = message.strip().splitlines()[0] if message.strip() else ""
        if node_ids and (subject, sources[0][1]) not in seen:
            seen.add((subject, sources[0][1]))
            out.append(Candidate(sha, parent, subject, sources[0][1], tests, node_ids))
    return out


def _pythonpath(root: Path) -> str:
    parts = [str(root / "src")] if (root / "src").is_dir() else []
    return os.pathsep.join([*parts, str(root)])


def run_tests(root: Path, selectors: list[str]) -> tuple[dict[str, str], str, bool]:
    """(outcomes, output, timed out) of pytest on `selectors`, reported the way the agent's runner reads it."""
    env = {**os.environ, "PYTHONPATH": _pythonpath(root), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    argv = pytest_argv(selectors, PYTEST)
    argv[3:3] = PYTEST_EXTRA
    try:
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, errors="replace", env=env,
                              timeout=TEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {}, "", True
    output = proc.stdout + proc.stderr
    return parse_outcomes(output), cut_middle(output, OUTPUT_KEEP), False


def _matching(outcomes: dict[str, str], sel: str) -> list[str]:
    return [o for node, o in outcomes.items() if node == sel or node.startswith((sel + "[", sel + "::"))]


def checkout(work: Path, sha: str) -> None:
    """A clean tree at `sha`, with the version file its build would generate (as the agent's worktree has)."""
    from evals.materialize import with_version_file

    git(work, "checkout", "-q", "-f", "--detach", sha)
    git(work, "clean", "-qfdx")
    with_version_file(work)


def reproduce(work: Path, cand: Candidate) -> tuple[list[str], str, str]:
    """(targets, traceback, why not) : the bug state is the parent plus only the commit's test changes."""
    checkout(work, cand.parent)
    diff = git(work, "diff", "--binary", cand.parent, cand.sha, "--", *cand.test_files)
    proc = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=work, input=diff, text=True,
                          capture_output=True)
    if proc.returncode:
        return [], "", "test diff does not apply"
    files = list(dict.fromkeys(t.split("::", 1)[0] for t in cand.tests))
    outcomes, output, timed_out = run_tests(work, files)  # what `agent fix` runs to reproduce: the target files
    if timed_out:
        return [], "", "timed out at the bug state"
    if not outcomes:
        return [], "", "no outcomes at the bug state (collection or import failure)"
    failing = [t for t in cand.tests if any(o in ("failed", "error") for o in _matching(outcomes, t))]
    if not failing:
        if any(o == "error" and "::" not in node for node, o in outcomes.items()):
            return [], "", "test file fails to collect at the bug state"
        return [], "", "changed tests pass at the bug state"
    checkout(work, cand.sha)
    fixed, _, timed_out = run_tests(work, failing)
    targets = [t for t in failing if _matching(fixed, t) and all(o in ("passed", "xfailed", "xpassed", "skipped")
                                                                for o in _matching(fixed, t))]
    if not targets:
        return [], "", "failing tests do not pass at the fix commit"
    checkout(work, cand.parent)  # leave the bug state in place for the summary
    subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=work, input=diff, text=True,
                   capture_output=True, check=True)
    return targets, output, ""


def spectrum(work: Path, inst: Instance) -> tuple[list, float, float]:
    """(executed definitions, plain reproduction seconds, traced run seconds), as `agent fix` traces:
    the target files run plainly, then the failing targets and passing tests of those files traced."""
    from agent.spectrum import CAP_FACTOR, CAP_MIN, ochiai, parse, pick_nodes, trace_argv
    from agent.summary.pyenv import is_auxiliary
    from agent.summary.pyenv import is_test_path as test_path
    from sandbox.pytest_runs import TestRun

    files = list(dict.fromkeys(t.split("::", 1)[0] for t in inst.targets))
    started = time.monotonic()
    outcomes, _, _ = run_tests(work, files)
    plain = time.monotonic() - started
    failing, passing = pick_nodes(TestRun(outcomes=outcomes), inst.targets)
    cap = min(TEST_TIMEOUT, max(CAP_MIN, CAP_FACTOR * plain))
    argv = trace_argv(failing, passing, [PYTEST[0], "-m", "pytest", *PYTEST_EXTRA], cap)
    env = {**os.environ, "PYTHONPATH": _pythonpath(work), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    started = time.monotonic()
    try:
        proc = subprocess.run(argv or [], cwd=work, capture_output=True, text=True, errors="replace", env=env,
                              timeout=cap + 10)
        data = parse(proc.stdout)
    except (subprocess.TimeoutExpired, OSError, IndexError):
        data = None
    traced = time.monotonic() - started
    ranked = ochiai(data, failing, lambda p: not test_path(p) and not is_auxiliary(p)) if data else []
    return ranked, plain, traced


def evaluate(work: Path, inst: Instance, cache: Path, trace: bool = False) -> dict[str, object]:
    """Summarise the bug state at both budgets, as `agent fix <selectors>` would."""
    from agent.summary import summarise

    fixed = inst.cand.fixed_file
    result: dict[str, object] = {}
    executed: list = []
    if trace:
        executed, result["plain_s"], result["traced_s"] = spectrum(work, inst)
        result["executed_fixed"] = any(e[0] == fixed for e in executed)
    for tokens in (1024, 4096):
        index, scope, summary = summarise(work, inst.targets, [], tokens, traceback=inst.traceback,
                                          task_text=" ".join(inst.targets), cache_dir=cache, executed=executed)
        text = summary.text
        listed = [p for p in sorted(index.files, key=lambda p: text.find(p)) if p in text]
        result[tokens] = fixed in text
        result[f"rank{tokens}"] = listed.index(fixed) + 1 if fixed in listed else None
        result[f"named{tokens}"] = len(listed)
        result[f"top{tokens}"] = listed[:3]
        result["seed"] = fixed in scope.seed_files
        result["in_traceback"] = fixed in {f for f, _ in scope.frames}
        result["files"] = len(index.files)
    return result


def repo_name(mirror: Path) -> str:
    """owner/name from a /work/.mirror/owner+name/repo path, else the directory name."""
    m = mirror.resolve()
    base = m.parent.name if m.name in ("repo", ".git") else m.name
    return base.replace("+", "/").removesuffix(".git")


def run_repo(mirror: Path, tmp: Path, cache: Path, per_repo: int, max_tries: int,
             log: object = print, trace: bool = False,
             keep: object = lambda _inst: None) -> tuple[list[Instance], dict[str, int]]:
    name = repo_name(mirror)
    work = tmp / name.replace("/", "+")
    git(tmp, "clone", "-q", "--shared", "--no-checkout", str(mirror), str(work))
    cands = select_candidates(work)
    reasons: dict[str, int] = {}
    found: list[Instance] = []
    for cand in cands[:max_tries]:
        if len(found) >= per_repo:
            break
        try:
            targets, tb, why = reproduce(work, cand)
        except subprocess.CalledProcessError as exc:
            targets, tb, why = [], "", f"git failed ({exc.cmd[1]})"
        if not targets:
            reasons[why] = reasons.get(why, 0) + 1
            continue
        inst = Instance(name, cand, targets, tb, mirror=str(mirror.resolve()))
        inst.result = evaluate(work, inst, cache, trace)
        found.append(inst)
        keep(inst)
        log(_line(inst))
    log(f"# {name}: {len(cands)} candidate commits, {len(found)} kept; skipped: "
        + (", ".join(f"{why} {n}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1])) or "none"))
    return found, reasons


def _line(inst: Instance) -> str:
    r, cand = inst.result, inst.cand
    return (f"real  {inst.repo:<32} {cand.sha[:10]} {cand.fixed_file:<36} targets={len(inst.targets)} "
            f"1024:{'yes' if r[1024] else 'NO ':<4} 4096:{'yes' if r[4096] else 'NO ':<4} "
            f"rank@1024={r['rank1024']} rank@4096={r['rank4096']} seed={r['seed']} "
            f"traceback={r['in_traceback']} files={r['files']}"
            + (f" plain={r['plain_s']:.1f}s traced={r['traced_s']:.1f}s executed_fixed={r['executed_fixed']}"
               if "traced_s" in r else "") + f"  {cand.subject[:60]}")


def export_line(inst: Instance) -> dict[str, object]:
    """One instance as a line of an --instances file: enough to rebuild and re-verify it, no outputs."""
    c = inst.cand
    return {"repo": inst.repo, "commit": c.sha, "parent": c.parent, "subject": c.subject,
            "fixed_file": c.fixed_file, "test_files": c.test_files, "targets": inst.targets}


def mirror_of(repo: str, mirror_root: Path) -> Path:
    """The local mirror of owner/name: <root>/owner+name/repo (the layout fetch leaves), else <root>/owner+name."""
    base = mirror_root / repo.replace("/", "+")
    return base / "repo" if (base / "repo").exists() else base


def from_instances(lines: list[dict], mirror_root: Path, tmp: Path, cache: Path, log: object = print,
                   trace: bool = False) -> list[Instance]:
    """Rebuild each listed instance from its mirror and re-verify it exactly as selection did: the targets
    must fail at the bug state (parent + the commit's test changes) and pass at the commit; the traceback
    is that run's output. An instance that no longer reproduces is reported and dropped, never scored."""
    works: dict[str, Path] = {}
    out: list[Instance] = []
    for d in lines:
        mirror = mirror_of(d["repo"], mirror_root)
        work = works.get(d["repo"])
        if work is None:
            work = works[d["repo"]] = tmp / d["repo"].replace("/", "+")
            git(tmp, "clone", "-q", "--shared", "--no-checkout", str(mirror), str(work))
        cand = Candidate(d["commit"], d["parent"], d.get("subject", ""), d["fixed_file"], d["test_files"],
                         d["targets"])
        targets, tb, why = reproduce(work, cand)
        if targets != d["targets"]:
            log(f"# {d['repo']} {d['commit'][:10]}: does not reproduce as listed ({why or targets})")
            continue
        inst = Instance(d["repo"], cand, targets, tb, mirror=str(mirror.resolve()))
        inst.result = evaluate(work, inst, cache, trace)
        out.append(inst)
        log(_line(inst))
    return out


def replay(saved: list[Instance], tmp: Path, cache: Path, log: object = print, trace: bool = False) -> list[Instance]:
    """Rebuild each saved bug state (parent + the commit's test changes) and summarise it again."""
    works: dict[str, Path] = {}
    for inst in saved:
        work = works.get(inst.mirror)
        if work is None:
            work = works[inst.mirror] = tmp / inst.repo.replace("/", "+")
            git(tmp, "clone", "-q", "--shared", "--no-checkout", inst.mirror, str(work))
        checkout(work, inst.cand.parent)
        diff = git(work, "diff", "--binary", inst.cand.parent, inst.cand.sha, "--", *inst.cand.test_files)
        subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=work, input=diff, text=True,
                       capture_output=True, check=True)
        inst.result = evaluate(work, inst, cache, trace)
        log(_line(inst))
    return saved


def report(rows: list[Instance], started: float) -> None:
    n = len(rows)
    repos = sorted({i.repo for i in rows})
    hit1 = sum(1 for i in rows if i.result[1024])
    hit4 = sum(1 for i in rows if i.result[4096])
    print(f"\nREAL bug-fix commits from {', '.join(repos)}: {n} instances")
    print(f"fixed file in summary at 1024 tokens: {hit1}/{n} = {100 * hit1 / n:.0f}%  (goal >= 85%)")
    print(f"fixed file in summary at 4096 tokens: {hit4}/{n} = {100 * hit4 / n:.0f}%  (goal >= 95%)")
    for tokens in (1024, 4096):
        ranks = [i.result[f"rank{tokens}"] for i in rows if i.result[f"rank{tokens}"]]
        print(f"median rank of the fixed file among files named ({tokens}): "
              f"{statistics.median(ranks) if ranks else '-'}")
    print("per repo at 1024/4096: " + ", ".join(
        f"{r} {sum(1 for i in rows if i.repo == r and i.result[1024])}/"
        f"{sum(1 for i in rows if i.repo == r and i.result[4096])}/{sum(1 for i in rows if i.repo == r)}"
        for r in repos))
    print(f"fixed file among the traceback frames: {sum(1 for i in rows if i.result['in_traceback'])}/{n}; "
          f"a seed file: {sum(1 for i in rows if i.result['seed'])}/{n}; wall {time.time() - started:.0f} s")
    traced = [i for i in rows if "traced_s" in i.result]
    if traced:
        ratios = [i.result["traced_s"] / max(i.result["plain_s"], 1e-3) for i in traced]
        print(f"tracing: traced run / plain reproduction, median {statistics.median(ratios):.2f}x "
              f"(max {max(ratios):.2f}x); fixed file among executed definitions: "
              f"{sum(1 for i in traced if i.result['executed_fixed'])}/{len(traced)}")
    misses = [i for i in rows if not i.result[1024] or not i.result[4096]]
    for i in misses:
        print(f"miss  {i.repo} {i.cand.sha[:10]} {i.cand.fixed_file} (1024:{bool(i.result[1024])} "
              f"4096:{bool(i.result[4096])}); summary led with {i.result['top1024']}; targets {i.targets[:2]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", action="append", default=[], help="a local git mirror (bare or not)")
    ap.add_argument("--save", help="write the kept instances to this JSON file")
    ap.add_argument("--load", help="replay the instances of a --save file instead of picking commits")
    ap.add_argument("--trace", action="store_true",
                    help="also trace the failing tests (agent.spectrum), as `agent fix` does, and report the overhead")
    ap.add_argument("--instances", help="a JSONL instance list (evals/data/localization_*.jsonl): rebuild, "
                    "re-verify and score exactly those commits")
    ap.add_argument("--mirror-root", default="/work/.mirror", help="with --instances: where owner+name mirrors are")
    ap.add_argument("--export", help="write the kept instances as a JSONL instance list (for --instances)")
    ap.add_argument("--per-repo", type=int, default=10, help="instances kept per repository")
    ap.add_argument("--max-tries", type=int, default=60, help="candidate commits tried per repository")
    ap.add_argument("--work", help="work directory (kept); default a temp dir, removed")
    args = ap.parse_args()
    tmp = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-loc-real-"))
    tmp.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=tmp))
    started = time.time()
    rows: list[Instance] = []
    if args.export:
        Path(args.export).write_text("")

    def log(line: str) -> None:
        print(line, flush=True)

    def keep(inst: Instance) -> None:  # each kept instance at once: a long run stopped early still has its list
        if args.export:
            with open(args.export, "a") as out:
                out.write(json.dumps(export_line(inst)) + "\n")
    if not args.mirror and not args.load and not args.instances:
        ap.error("give --mirror DIR (one or more), --instances FILE or --load FILE")
    try:
        if args.load:
            saved = [Instance.from_json(d) for d in json.loads(Path(args.load).read_text())]
            rows = replay(saved, tmp, cache, log=lambda s: print(s, flush=True), trace=args.trace)
        if args.instances:
            lines = [json.loads(x) for x in Path(args.instances).read_text().splitlines() if x.strip()]
            rows.extend(from_instances(lines, Path(args.mirror_root), tmp, cache,
                                       log=lambda s: print(s, flush=True), trace=args.trace))
        for mirror in args.mirror:
            try:
                found, _ = run_repo(Path(mirror), tmp, cache, args.per_repo, args.max_tries, log=log,
                                trace=args.trace, keep=keep)
            except (subprocess.CalledProcessError, OSError) as exc:
                print(f"# {mirror}: unusable ({type(exc).__name__}: {exc})", flush=True)
                continue
            rows.extend(found)
        if args.save:
            Path(args.save).write_text(json.dumps([i.to_json() for i in rows], indent=1))
        if args.export:  # again, whole: the lines appended as instances were kept may be from an earlier run
            Path(args.export).write_text("".join(json.dumps(export_line(i)) + "\n" for i in rows))
    finally:
        if not args.work:
            shutil.rmtree(tmp, ignore_errors=True)
    if not rows:
        print("no instances")
        return 1
    report(rows, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Generate the bundled bug set: realistic single-site bugs injected into small PyPI libraries.

For each pinned library (an sdist that ships its tests): materialise it, run its
tests once (they must pass), then try mutations (evals/bugs/mutations.py),
spread over kinds and modules, and keep those that make between 1 and
MAX_FAILING tests fail. Each kept bug becomes a SWE-bench-format instance:
patch = the gold fix (the injection reversed), FAIL_TO_PASS = the tests it
breaks, PASS_TO_PASS = a sample of tests that still pass in the same files,
environment_setup = the sdist and the bug patch that make base_commit.
Tests run locally (this interpreter's pytest, the library on PYTHONPATH); the
runner then grades in the Docker sandbox, where every instance must resolve.

    python -m evals.bugs.generate [--out evals/data/bugs.jsonl] [--per-lib 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from evals.bugs.mutations import KINDS, Mutation, candidates
from evals.instances import BUNDLED, EnvironmentSetup, Instance, dump_instances
from evals.materialize import git, materialize_source
from sandbox.pytest_runs import REPORT_FLAGS, parse_outcomes


@dataclass(frozen=True)
class Library:
    package: str
    version: str
    sources: tuple[str, ...]   # library code (not tests), relative to the sdist root
    tests: str                 # test dir or file


LIBRARIES = (
    Library("toolz", "0.12.1", ("toolz",), "toolz/tests"),
    Library("inflection", "0.5.1", ("inflection",), "test_inflection.py"),
    Library("more-itertools", "10.2.0", ("more_itertools",), "tests"),
    Library("cachetools", "5.3.3", ("src/cachetools",), "tests"),
    Library("jmespath", "1.0.1", ("jmespath",), "tests"),
    Library("idna", "3.7", ("idna",), "tests"),
    Library("parse", "1.20.1", ("parse.py",), "tests"),
    Library("tabulate", "0.9.0", ("tabulate",), "test"),
    Library("semver", "3.0.2", ("src/semver",), "tests"),
)
TEST_COMMAND = "python -m pytest -o addopts="
MAX_FAILING = 12
PASS_SAMPLE = 10
TRIES_PER_BUG = 6
TEST_TIMEOUT = 180
_SAFE_ID = re.compile(r"^[\w./-]+\.py::[\w\[\]\-.,=:]+$")


def run_tests(root: Path, selection: list[str], timeout: float = TEST_TIMEOUT) -> dict[str, str]:
    """Node id -> outcome, parsed the way the agent and the grader parse it; {} on a timeout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)]),
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    argv = [sys.executable, "-m", "pytest", "-o", "addopts=", *REPORT_FLAGS, *selection]
    try:
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {}
    return parse_outcomes(proc.stdout + proc.stderr)


def failure_excerpt(root: Path, test: str) -> str:
    """The first assertion/exception lines pytest prints for one failing test (the issue's evidence)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "-x", "-q", "--tb=short",
                           "-p", "no:cacheprovider", test], cwd=root, capture_output=True, text=True, env=env,
                          timeout=TEST_TIMEOUT)
    lines = [line[1:].strip() for line in proc.stdout.splitlines() if line.startswith("E ")]
    return "\n".join(lines[:6])


def problem_statement(package: str, failing: list[str], excerpt: str) -> str:
    more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
    evidence = f"\n\nThe failure:\n```\n{excerpt}\n```" if excerpt else ""
    return (f"{package}: `{failing[0]}`{more} fails after a recent change to the library."
            f"{evidence}\n\nThe tests are right; find the bug in the library code and fix it.")


def source_files(root: Path, lib: Library) -> list[str]:
    files = []
    for src in lib.sources:
        base = root / src
        for path in sorted(base.rglob("*.py")) if base.is_dir() else [base]:
            rel = path.relative_to(root).as_posix()
            if "/tests/" not in f"/{rel}" and not path.name.startswith(("test_", "conftest")):
                files.append(rel)
    return files


def ordered_sites(root: Path, lib: Library, rng: random.Random) -> list[tuple[str, Mutation]]:
    """All candidate mutations, interleaved by kind (so a library's bugs are not all comparisons)."""
    by_kind: dict[str, list[tuple[str, Mutation]]] = {k: [] for k in KINDS}
    for rel in source_files(root, lib):
        for mutation in candidates((root / rel).read_text(encoding="utf-8")):
            by_kind[mutation.kind].append((rel, mutation))
    for sites in by_kind.values():
        rng.shuffle(sites)
    kinds = list(KINDS)
    rng.shuffle(kinds)
    out: list[tuple[str, Mutation]] = []
    while any(by_kind.values()):
        for kind in kinds:
            if by_kind[kind]:
                out.append(by_kind[kind].pop())
    return out


def bugs_for(lib: Library, work: Path, cache: Path, per_lib: int, rng: random.Random,
             log=print) -> list[Instance]:
    env = EnvironmentSetup(source="sdist", package=lib.package, version=lib.version, test_command=TEST_COMMAND)
    root = work / f"{lib.package}-{lib.version}"
    shutil.rmtree(root, ignore_errors=True)
    materialize_source(env, root, cache)
    started = time.monotonic()
    baseline = run_tests(root, [lib.tests])
    timeout = max(30.0, 5 * (time.monotonic() - started))  # a mutation that hangs a test is not worth waiting for
    bad = [t for t, o in baseline.items() if o in ("failed", "error")]
    if not baseline or bad:
        log(f"# {lib.package} {lib.version}: baseline does not pass ({len(bad)} failing); skipped")
        return []
    found: list[Instance] = []
    used: dict[str, int] = {}
    kinds_used: set[str] = set()
    per_module = 2 if len(source_files(root, lib)) >= per_lib else per_lib
    tries = 0
    for rel, mutation in ordered_sites(root, lib, rng):
        if len(found) >= per_lib or tries >= per_lib * TRIES_PER_BUG:
            break
        if used.get(rel, 0) >= per_module or mutation.kind in kinds_used:
            continue  # a spread over modules and kinds, not a cluster
        path = root / rel
        original = path.read_text(encoding="utf-8")
        path.write_text(mutation.apply(original), encoding="utf-8")
        tries += 1
        try:
            after = run_tests(root, [lib.tests], timeout)
            failing = sorted(t for t, o in after.items() if o in ("failed", "error") and baseline.get(t) == "passed")
            if not (1 <= len(failing) <= MAX_FAILING) or not all(_SAFE_ID.match(t) for t in failing) \
                    or len(after) < len(baseline):
                continue
            bug_patch = git(root, "diff")
            excerpt = failure_excerpt(root, failing[0])
            git(root, "add", rel)  # the bug in the index, the original in the tree: the gold fix, a/ -> b/
            path.write_text(original, encoding="utf-8")
            gold = git(root, "diff")
        finally:
            path.write_text(original, encoding="utf-8")
            git(root, "reset", "-q", "--", rel)
        files = {t.split("::", 1)[0] for t in failing}
        passing = sorted(t for t, o in after.items() if o == "passed" and baseline.get(t) == "passed"
                         and t.split("::", 1)[0] in files and _SAFE_ID.match(t))
        sample = sorted(rng.sample(passing, min(PASS_SAMPLE, len(passing))))
        bug_env = EnvironmentSetup(**{**env.__dict__, "bug_patch": bug_patch})
        base = materialize_source(bug_env, work / "check", cache)
        shutil.rmtree(work / "check")
        digest = hashlib.sha1(bug_patch.encode()).hexdigest()[:8]
        slug = mutation.kind.replace(" ", "-").lower()
        found.append(Instance(
            instance_id=f"{lib.package.replace('-', '_')}__{slug}-{digest}", repo=f"pypi/{lib.package}",
            base_commit=base, problem_statement=problem_statement(lib.package, failing, excerpt),
            FAIL_TO_PASS=failing, PASS_TO_PASS=sample, patch=gold, test_patch="", version=lib.version,
            environment_setup=bug_env, created_at="injected"))
        used[rel] = used.get(rel, 0) + 1
        kinds_used.add(mutation.kind)
        log(f"injected  {lib.package:<15} {rel}:{mutation.line:<5} {mutation.kind:<22} "
            f"fails {len(failing)} test(s), e.g. {failing[0]}")
    log(f"# {lib.package} {lib.version}: {len(found)} bugs from {tries} tries")
    shutil.rmtree(root, ignore_errors=True)
    return found


def validate(instances: list[Instance], sandbox: str, cache: Path | None = None, log=print) -> list[Instance]:
    """Re-check each instance where it will be graded: FAIL_TO_PASS fail at base_commit and pass with the
    gold patch; PASS_TO_PASS keeps only tests that pass at base there (a test the host ran may be skipped
    in the sandbox for a missing optional dependency). Instances that do not hold up are dropped."""
    from evals.materialize import apply_patch, materialize
    from evals.runner import grade_tree

    kept: list[Instance] = []
    with tempfile.TemporaryDirectory(prefix="evals-validate-") as tmp:
        for n, inst in enumerate(instances):
            root = materialize(inst, Path(tmp) / str(n), cache)
            before = grade_tree(root, inst, sandbox, TEST_TIMEOUT)
            passing = [t for t, ok in before["PASS_TO_PASS"].items() if ok]
            checked = Instance(**{**inst.__dict__, "PASS_TO_PASS": passing})
            if any(before["FAIL_TO_PASS"].values()) or not apply_patch(root, inst.patch):
                log(f"dropped   {inst.instance_id}: FAIL_TO_PASS does not fail at base in the {sandbox} sandbox")
                continue
            after = grade_tree(root, checked, sandbox, TEST_TIMEOUT)
            if not after["resolved"]:
                log(f"dropped   {inst.instance_id}: the gold patch does not resolve it in the {sandbox} sandbox")
                continue
            dropped = len(inst.PASS_TO_PASS) - len(passing)
            if dropped:
                log(f"checked   {inst.instance_id}: {dropped} PASS_TO_PASS test(s) do not pass in the {sandbox} "
                    "sandbox; left out")
            kept.append(checked)
    log(f"# validated in the {sandbox} sandbox: {len(kept)}/{len(instances)} kept")
    return kept


def _one_library(lib: Library, per_lib: int, seed: int, cache: Path, work: Path) -> list[Instance]:
    rng = random.Random(f"{seed}:{lib.package}:{lib.version}")
    return bugs_for(lib, work / lib.package, cache, per_lib, rng, log=lambda line: print(line, flush=True))


def generate(libraries: tuple[Library, ...] = LIBRARIES, per_lib: int = 3, seed: int = 7,
             cache: Path | None = None, work: Path | None = None, workers: int = 1) -> list[Instance]:
    """Bugs for every library, in library order (each library has its own seeded RNG: the output does not
    depend on `workers`, which runs libraries in parallel processes)."""
    from concurrent.futures import ProcessPoolExecutor

    from evals.materialize import default_cache

    work_dir = Path(work or tempfile.mkdtemp(prefix="evals-bugs-"))
    cache_dir = Path(cache or default_cache())
    for lib in libraries:  # download first, one at a time: parallel pip runs would race on the cache
        from evals.materialize import fetch_sdist

        fetch_sdist(lib.package, lib.version, cache_dir)
    try:
        if workers <= 1:
            per = [_one_library(lib, per_lib, seed, cache_dir, work_dir) for lib in libraries]
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                per = list(pool.map(_one_library, libraries, [per_lib] * len(libraries), [seed] * len(libraries),
                                    [cache_dir] * len(libraries), [work_dir] * len(libraries)))
    finally:
        if work is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    return [inst for found in per for inst in found]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=BUNDLED)
    ap.add_argument("--per-lib", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", nargs="*", help="package names to include")
    ap.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                    help="libraries generated in parallel (default: min(2, cores))")
    ap.add_argument("--validate", choices=("docker", "local", "none"), default="docker",
                    help="re-check every instance in this sandbox (default: docker, where evals grade)")
    ap.add_argument("--validate-only", action="store_true", help="only re-check the instances already in --out")
    args = ap.parse_args(argv)
    libs = tuple(lib for lib in LIBRARIES if not args.only or lib.package in args.only)
    started = time.monotonic()
    if args.validate_only:
        from evals.instances import load_instances

        instances = load_instances(args.out)
    else:
        instances = generate(libs, args.per_lib, args.seed, workers=args.workers)
    if args.validate != "none":
        instances = validate(instances, args.validate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dump_instances(instances, args.out)
    kinds: dict[str, int] = {}
    for inst in instances:
        kind = inst.instance_id.split("__", 1)[1].rsplit("-", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"{len(instances)} instances from {len({i.repo for i in instances})} libraries -> {args.out} "
          f"in {time.monotonic() - started:.0f} s; kinds: {kinds}")
    return 0 if instances else 1


if __name__ == "__main__":
    raise SystemExit(main())

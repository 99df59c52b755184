"""Check every instance's reproduction against the code: it fails at base and passes with the gold patch.

For each instance of the bundled set (evals/data/bugs.jsonl) and the real-commit set
(evals/data/real_repos.jsonl): materialise base_commit, apply reproduction_patch, and run REPRO_TESTS;
each must fail as a test (outcome `failed`: an assertion or exception in the test body, not a
collection or import error). Then apply the gold patch: each must pass. Then, on base_commit plus
test_patch plus the gold patch, FAIL_TO_PASS must pass (the instance's own verdict still holds).
Bundled bugs run with this interpreter's pytest and the library first on PYTHONPATH (as they were
generated); real commits in a venv per instance with the project installed editable (as
bench_real_repos builds the user's venv, as of the base commit's date), kept and reused.

    python -m evals.check_reproductions --mirrors /work/.mirror --work /root/data16/check [--ids A,B]

Prints one table row per instance; exits 1 when any instance fails a check.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.bench_localization_real import PYTEST_EXTRA
from evals.bench_real_repos import Options, find_mirrors, make_venv
from evals.instances import Instance
from evals.materialize import apply_patch, git, materialize, with_version_file
from evals.reproductions import decode_list, structural_problems
from sandbox.pytest_runs import REPORT_FLAGS, parse_outcomes

DATA = Path(__file__).parent / "data"
SETS = {"bugs": DATA / "bugs.jsonl", "real": DATA / "real_repos.jsonl"}
TIMEOUT = 600


@dataclass
class Row:
    instance: str
    repro: int = 0
    fails_at_base: str = "-"      # "yes", or what happened instead
    passes_with_gold: str = "-"
    f2p_with_gold: str = "-"
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.fails_at_base == self.passes_with_gold == self.f2p_with_gold == "yes" and not self.note


def run_pytest(root: Path, python: str, tests: list[str]) -> dict[str, str]:
    """Node id -> outcome of pytest on `tests` in `root`, the tree first on PYTHONPATH; {} on a timeout."""
    roots = [str(root / "src")] if (root / "src").is_dir() else []
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHONPATH=os.pathsep.join([*roots, str(root)]), PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0")
    argv = [python, "-m", "pytest", *PYTEST_EXTRA, *REPORT_FLAGS, *tests]
    try:
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, errors="replace", env=env,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return {}
    return parse_outcomes(proc.stdout + proc.stderr)


def verdict(outcomes: dict[str, str], tests: list[str], wanted: str) -> str:
    """"yes" when every test (or each of its parametrisations) has the wanted outcome, else the first miss."""
    for test in tests:
        got = [o for node, o in outcomes.items() if node == test or node.startswith((test + "[", test + "::"))]
        if not got:
            return f"no outcome for {test.split('::')[-1]}" + (" (nothing ran)" if not outcomes else "")
        if any(o != wanted for o in got):
            return f"{test.split('::')[-1]}: {'/'.join(sorted(set(got)))}"
    return "yes"


def reset(root: Path, commit: str) -> None:
    git(root, "checkout", "-q", "-f", commit)
    git(root, "clean", "-qfdx")
    with_version_file(root)


def check(record: dict[str, Any], work: Path, python: str) -> Row:
    """One instance through the three states; never raises."""
    inst = Instance.from_dict(record)
    repro = decode_list(record.get("REPRO_TESTS"))
    row = Row(inst.instance_id, len(repro))
    problems = structural_problems(record)
    if problems:
        row.note = problems[0]
        return row
    root = work / "trees" / inst.instance_id
    shutil.rmtree(root, ignore_errors=True)
    try:
        materialize(inst, root)
        with_version_file(root)
        head = git(root, "rev-parse", "HEAD").strip()
        if not apply_patch(root, record["reproduction_patch"]):
            row.note = "reproduction_patch does not apply at base_commit"
            return row
        row.fails_at_base = verdict(run_pytest(root, python, repro), repro, "failed")
        if not apply_patch(root, inst.patch):
            row.note = "gold patch does not apply on top of the reproduction"
            return row
        row.passes_with_gold = verdict(run_pytest(root, python, repro), repro, "passed")
        reset(root, head)
        if not (apply_patch(root, inst.test_patch) and apply_patch(root, inst.patch)):
            row.note = "test_patch and gold patch do not apply at base_commit"
            return row
        row.f2p_with_gold = verdict(run_pytest(root, python, inst.FAIL_TO_PASS), inst.FAIL_TO_PASS, "passed")
    except Exception as exc:  # one broken instance is a row, not the end of the run
        row.note = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return row


def python_for(record: dict[str, Any], work: Path, opts: Options) -> str:
    """The interpreter that runs this instance's tests: for a real commit, its own venv built as
    bench_real_repos builds the user's (test requirements and pytest as of the base commit's date;
    commits of one library span years, and today's pytest breaks old suites), reused across checks."""
    if record["environment_setup"].get("source") != "git":
        return sys.executable
    venv = work / "venvs" / record["instance_id"]
    if not (venv / "bin" / "python").exists():
        # installed editable from the very path check() materialises each state at: a pkg_resources
        # namespace package (jaraco) is imported at startup through its -nspkg.pth from the install's
        # path, whatever PYTHONPATH says, so an install from elsewhere would test unchanged code
        seed = work / "trees" / record["instance_id"]
        shutil.rmtree(seed, ignore_errors=True)
        materialize(Instance.from_dict(record), seed)
        try:
            make_venv(venv, seed, opts, with_agent=False)
        except Exception:
            shutil.rmtree(venv, ignore_errors=True)  # a half-built venv is not reused
            raise
    return str(venv / "bin" / "python")


def table(rows: list[Row]) -> str:
    out = ["| instance | repro tests | fails at base | passes with gold | FAIL_TO_PASS with gold | note |",
           "|---|---|---|---|---|---|"]
    out += [f"| {r.instance} | {r.repro} | {r.fails_at_base} | {r.passes_with_gold} | {r.f2p_with_gold} | {r.note} |"
            for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="bugs,real", help="comma-separated: bugs, real")
    ap.add_argument("--mirrors", action="append", default=[], help="directory of owner+name/repo git mirrors")
    ap.add_argument("--mirror", action="append", default=[], help="one git mirror")
    ap.add_argument("--work", type=Path, required=True, help="scratch directory; venvs are kept and reused there")
    ap.add_argument("--ids", default="", help="comma-separated instance ids (default: all)")
    args = ap.parse_args(argv)
    ids = {i for i in args.ids.split(",") if i}
    mirrors = find_mirrors(args.mirrors, args.mirror)
    opts = Options(work=args.work)
    records = []
    for name in args.sets.split(","):
        for line in SETS[name].read_text(encoding="utf-8").splitlines():
            record = json.loads(line) if line.strip() else None
            if record and (not ids or record["instance_id"] in ids):
                if record["environment_setup"].get("source") == "git":
                    if record["repo"] not in mirrors:
                        raise SystemExit(f"error: no mirror for {record['repo']} (pass --mirrors or --mirror)")
                    record["environment_setup"]["mirror"] = str(mirrors[record["repo"]])
                records.append(record)
    rows = []
    for record in records:
        try:
            python = python_for(record, args.work, opts)
        except Exception as exc:
            rows.append(Row(record["instance_id"], note=f"environment: {exc}"[:160]))
            continue
        rows.append(check(record, args.work, python))
        r = rows[-1]
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.instance}: base={r.fails_at_base} gold={r.passes_with_gold} "
              f"f2p={r.f2p_with_gold} {r.note}", file=sys.stderr, flush=True)
    print(table(rows))
    bad = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(bad)}/{len(rows)} instances pass every check")
    return 1 if bad or not rows else 0


if __name__ == "__main__":
    sys.exit(main())

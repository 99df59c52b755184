"""First-run Docker environment build per library (issue 14's "< 10 s median"), with the product's code.

For each library of the real-commit set (evals/data/real_repos.jsonl), its first instance's base
commit is cloned from a mirror, that commit's environment image is removed, and `ensure_environment`
builds it as `agent fix --sandbox docker` would on a first run (the base image is a setup step, built
once beforehand, as `agent sandbox build-base` does). Prints one line per library (seconds, how it was
installed, the load average when it started) and the median. Other builds still on the machine
(in particular of the same library) are not removed: a first run meets whatever images the user has.

    python -m evals.bench_env_build --mirrors /work/.mirror --work /tmp/envbench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from evals.bench_real_repos import DATA, ensure_base, env_image, find_mirrors, load
from evals.materialize import git


def first_instances(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for record in records:
        seen.setdefault(record["repo"], record)
    return list(seen.values())


def build_once(record: dict[str, Any], work: Path) -> dict[str, Any]:
    """Clone the library at the base commit, remove its environment image, build it; time the build."""
    from agent.gitops import commit_date, describe_version
    from sandbox.base import SandboxError
    from sandbox.engine import ensure_engine
    from sandbox.environment import ensure_environment

    dest = work / record["repo"].replace("/", "+")
    shutil.rmtree(dest, ignore_errors=True)
    git(work, "clone", "-q", record["environment_setup"]["mirror"], str(dest))
    git(dest, "checkout", "-q", record["base_commit"])
    ensure_base(dest)
    exists, tag = env_image(dest)
    if exists:
        ensure_engine().images.remove(tag, force=True)
    lines: list[str] = []
    load1, started = os.getloadavg()[0], time.monotonic()
    try:
        ensure_environment(dest, "auto", [], log=lines.append, version=describe_version(dest), date=commit_date(dest))
        error = ""
    except SandboxError as exc:
        error = str(exc)
    seconds = time.monotonic() - started
    how = next((ln.rsplit("(", 1)[-1].rstrip(")") for ln in lines if " built in " in ln), "")
    return {"library": record["repo"], "commit": record["base_commit"][:10], "build_s": round(seconds, 1),
            "installer": how, "load1": round(load1, 1), "error": error[:300]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--mirrors", action="append", default=[], help="a directory of mirrors (owner+name/repo)")
    ap.add_argument("--mirror", action="append", default=[], help="a git mirror of one library")
    ap.add_argument("--library", action="append", default=[], help="only these (owner/name)")
    ap.add_argument("--work", required=True, help="scratch directory for the clones")
    ap.add_argument("--json", action="store_true", help="one JSON line per library instead of a table")
    opts = ap.parse_args(argv)
    work = Path(opts.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    records = first_instances(load(Path(opts.data), find_mirrors(opts.mirrors, opts.mirror)))
    if opts.library:
        records = [r for r in records if r["repo"] in opts.library]
    if not records:
        print("no library with a mirror: pass --mirrors")
        return 2
    rows = []
    if not opts.json:
        print("| library | commit | first-run build s | installed with | load 1 min | error |")
        print("|---|---|---|---|---|---|")
    for record in records:
        row = build_once(record, work)
        rows.append(row)
        if opts.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"| {row['library']} | {row['commit']} | {row['build_s']} | {row['installer']} | {row['load1']} | "
                  f"{row['error']} |", flush=True)
    built = [r["build_s"] for r in rows if not r["error"]]
    if built:
        print(f"median first-run environment build over {len(built)} libraries: {statistics.median(built):.1f} s "
              f"(goal < 10 s); failed builds: {len(rows) - len(built)}")
    return 0 if len(built) == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

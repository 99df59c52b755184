"""`python -m agent.summary`: print the structural summary exactly as it goes into the prompt.

argparse, not typer: start-up time is part of the warm-run budget.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agent.summary", description=__doc__)
    ap.add_argument("--repo", default=".", help="repository root (default: .)")
    ap.add_argument("--test", action="append", default=[], help="target test selector (repeatable)")
    ap.add_argument("--scope", action="append", default=[], help="scope directory (repeatable)")
    ap.add_argument("--tokens", type=int, default=8192, help="token budget (an upper bound: UTF-8 bytes)")
    ap.add_argument("--traceback-file", help="a file holding the failing run's output")
    ap.add_argument("--task", default="", help="free task text (identifiers in it seed the scope)")
    ap.add_argument("--cache-dir", help="cache directory (default $XDG_CACHE_HOME/agent)")
    ap.add_argument("--notes", action="store_true", help="print index notes to stderr")
    args = ap.parse_args(argv)
    repo = Path(args.repo)
    if not repo.is_dir():
        print(f"error: no such directory: {repo}", file=sys.stderr)
        return 2
    traceback = None
    if args.traceback_file:
        try:
            traceback = Path(args.traceback_file).read_text("utf-8", errors="replace")
        except OSError as exc:
            print(f"error: cannot read {args.traceback_file}: {exc}", file=sys.stderr)
            return 2
    from agent.summary.api import summary_for

    summary = summary_for(repo, args.test, args.scope, args.tokens, traceback=traceback, task_text=args.task,
                          cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    sys.stdout.write(summary.text)
    sys.stdout.flush()
    if args.notes:
        for note in summary.notes:
            print(f"note: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

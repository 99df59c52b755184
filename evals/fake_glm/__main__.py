"""`python -m evals.fake_glm --script FILE.json --port N`: serve a scripted fake GLM until killed."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from evals.fake_glm.server import FLAVORS, FakeGLM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.fake_glm", description=__doc__)
    parser.add_argument("--script", type=Path, help='JSON file holding {"turns": [...]}')
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", default=None, help="require this bearer key (default: any)")
    parser.add_argument("--flavor", choices=FLAVORS, default="zai")
    parser.add_argument("--variant", choices=("B1", "B2"), default="B1")
    parser.add_argument("--fragment-size", type=int, default=8)
    parser.add_argument("--cache-delay", type=float, default=0.0)
    parser.add_argument("--context-window", type=int, default=1_048_576)
    parser.add_argument("--tokenizer", default=None, help="chars, or a BPE encoding (default: cl100k_base "
                        "when quicktok is installed)")
    args = parser.parse_args(argv)
    turns = []
    if args.script:
        try:
            turns = json.loads(args.script.read_text(encoding="utf-8")).get("turns", [])
        except (OSError, ValueError, AttributeError) as exc:
            print(f"fake_glm: cannot read script {args.script}: {exc}", file=sys.stderr)
            return 2
    server = FakeGLM(turns, api_key=args.api_key, flavor=args.flavor, tool_stream_variant=args.variant,
                     fragment_size=args.fragment_size, cache_delay=args.cache_delay,
                     context_window=args.context_window, host=args.host, port=args.port,
                     tokenizer=args.tokenizer)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        print(server.base_url, flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

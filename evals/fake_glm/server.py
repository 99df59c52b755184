"""The fake GLM server: a real HTTP server on loopback that follows glm-api.md §8.

Tests, the loop's integration tests and `agent demo` talk to it over real
HTTP, so the client is exercised exactly as against api.z.ai or vLLM/SGLang.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from evals.fake_glm import script as _script
from evals.fake_glm.cache import PrefixCache, canonical_text
from evals.fake_glm.script import HTTP_FAULTS, Render, Script, Turn, TurnSource
from evals.fake_glm.tokens import counter
from evals.fake_glm.validate import KNOWN_MODELS, OVERFLOW, check_auth, check_body

BASE_PATHS = ("/api/paas/v4", "/api/coding/paas/v4")
FLAVORS = ("zai", "vllm", "sglang")


# A request that allows one output token gets that token, as the real service answers it: a scripted
# turn cannot fit in one token, so a probe (the preflight's key and endpoint check) consumes none.
PROBE_TURN: Turn = {"content": "P", "finish_reason": "length"}


def is_probe(body: Any) -> bool:
    return isinstance(body, dict) and body.get("max_tokens") == 1 and not body.get("tools")


def effective_effort(body: dict[str, Any], flavor: str) -> str:
    """off | high | max as the server would run it (glm-api.md §7: unset and aliases → max)."""
    if flavor == "zai":
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "disabled":
            return "off"
        effort = body.get("reasoning_effort")
        if effort in ("none", "minimal"):
            return "off"
        return "high" if effort in ("low", "medium", "high") else "max"
    kwargs = body.get("chat_template_kwargs") or {}
    top = body.get("reasoning_effort") if flavor == "vllm" else None
    if kwargs.get("enable_thinking") is False or top == "none":
        return "off"
    effort = kwargs.get("reasoning_effort", top)
    return "high" if effort == "high" else "max"  # the template: only the exact "high" is High


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeGLM

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # a peer hanging up is routine, not an error


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30  # an idle keep-alive connection does not pin a thread forever

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._json(404, {"error": {"code": "404", "message": "Not Found"}})

    def do_POST(self) -> None:  # noqa: N802
        try:
            self.server.fake._handle(self)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client went away (timeout, early abort)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None,
              text: str | None = None) -> None:
        data = (text if text is not None else json.dumps(body, ensure_ascii=False)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, frames: Iterable[str], end: str, headers: dict[str, str], frame_delay: float = 0.0) -> int:
        """Write the frames (`frame_delay` seconds apart: a slow generation); returns how many were
        sent before the end (or the peer hanging up)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream;charset=UTF-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        sent = 0
        try:
            for text in frames:
                data = text.encode("utf-8")
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                sent += 1
                if frame_delay:
                    time.sleep(frame_delay)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client stopped reading
            return sent
        if end == "drop":
            self.close_connection = True  # no terminating chunk: the peer sees a dropped stream
            return sent
        self.wfile.write(b"0\r\n\r\n")
        return sent


class FakeGLM:
    """Scripted GLM endpoint on 127.0.0.1; a context manager, or `.start()` / `.stop()`."""

    def __init__(self, turns: Iterable[TurnSource] | Callable[[dict[str, Any]], Turn | None] | None = None, *,
                 api_key: str | None = None, flavor: str = "zai", tool_stream_variant: str = "B1",
                 fragment_size: int = 8, cache_delay: float = 0.0, cache_block: int = 1, cache_size: int = 64,
                 context_window: int = 1_048_576, overflow_code: int = 1261,
                 models: Iterable[str] = KNOWN_MODELS, include_object: bool = True,
                 host: str = "127.0.0.1", port: int = 0, base_path: str = BASE_PATHS[0],
                 tokenizer: str | None = None) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}, not {flavor!r}")
        if tool_stream_variant not in ("B1", "B2"):
            raise ValueError(f"tool_stream_variant must be B1 or B2, not {tool_stream_variant!r}")
        if overflow_code not in OVERFLOW:
            raise ValueError(f"overflow_code must be one of {sorted(OVERFLOW)}")
        self.script = Script(turns)
        self.api_key = api_key
        self.flavor = flavor
        self.variant = tool_stream_variant
        self.fragment_size = fragment_size
        self.tokenizer, self.count_tokens = counter(tokenizer)  # usage is this vocabulary's count
        self.cache = PrefixCache(size=cache_size, delay=cache_delay, block=cache_block, count=self.count_tokens)
        self.context_window = context_window
        self.overflow_code = overflow_code
        self.models = frozenset(models)
        self.include_object = include_object
        self.base_path = base_path.rstrip("/")
        self._paths = {self.base_path + "/chat/completions"} | {p + "/chat/completions" for p in BASE_PATHS}
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._billed: list[dict[str, Any]] = []  # per answered request: usage billed, frames planned and sent
        self._probes: list[dict[str, Any]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeGLM:
        if self._server is None:
            self._server = _Server((self._host, self._port), _Handler)
            self._server.fake = self
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                            name="fake-glm", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}{self.base_path}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body received, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def probes(self) -> list[dict[str, Any]]:
        """Every one-token probe received (`agent fix`'s preflight), in order; not in `requests`."""
        with self._lock:
            return list(self._probes)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._headers)

    @property
    def billed(self) -> list[dict[str, Any]]:
        """Per generated answer: {"usage": what the server bills, "frames": planned, "sent": delivered}.

        Error answers (HTTP faults, validation) generate nothing and bill nothing.
        """
        with self._lock:
            return [dict(b) for b in self._billed]

    def add_turns(self, *turns: TurnSource) -> None:
        self.script.add(*turns)

    # ---- one request ----------------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if h.path.split("?", 1)[0] not in self._paths:
            h._json(404, {"error": {"code": "404", "message": "Not Found"}})
            return
        try:
            body: Any = json.loads(raw or b"null")
        except ValueError:
            body = None
        probe = is_probe(body)
        with self._lock:
            recorded = body if isinstance(body, dict) else {"_raw": raw.decode("utf-8", "replace")}
            if probe:
                self._probes.append(recorded)
            else:
                self._requests.append(recorded)
                self._headers.append({k.lower(): v for k, v in h.headers.items()})
        answer = check_auth(h.headers.get("Authorization"), self.api_key) or check_body(body, self.models)
        if answer:
            h._json(*answer)
            return
        text = canonical_text(body)
        prompt_tokens = self.count_tokens(text)
        if prompt_tokens > self.context_window:
            h._json(*OVERFLOW[self.overflow_code])
            return
        turn = PROBE_TURN if probe else self.script.next(body)
        if turn.get("delay"):
            time.sleep(float(turn["delay"]))
        headers: dict[str, str] = {}
        if turn.get("retry_after") is not None:
            value = turn["retry_after"]
            headers["Retry-After"] = f"{value:g}" if isinstance(value, (int, float)) else str(value)
        if turn.get("retry_after_ms") is not None:
            headers["retry-after-ms"] = str(int(turn["retry_after_ms"]))
        if turn.get("http_fault"):
            status, payload = HTTP_FAULTS[turn["http_fault"]]
            if turn["http_fault"] == "rate":
                payload = {**payload, "request_id": _script.response_id(body)}
            h._json(status, payload, headers)
            return
        effort = effective_effort(body, self.flavor)
        headers["x-fake-effective-effort"] = effort
        cached = 0 if probe else self.cache.hit_and_store(text)
        stream = body.get("stream") is True
        tool_stream = stream and (self.flavor != "zai" or body.get("tool_stream") is True)
        include_usage = self.flavor == "zai" or bool((body.get("stream_options") or {}).get("include_usage"))
        render = Render(rid=_script.response_id(body), model=body["model"], flavor=self.flavor,
                        variant=self.variant if tool_stream else None, fragment=self.fragment_size,
                        thinking=effort != "off", include_usage=include_usage or not stream,
                        include_object=self.include_object, prompt_tokens=prompt_tokens,
                        cached_tokens=cached, created=int(time.time()), count=self.count_tokens)
        if stream:
            plan = _script.plan_stream(turn, render)
            entry = {"usage": plan.usage, "frames": len(plan.frames), "sent": 0}
            with self._lock:
                self._billed.append(entry)
            entry["sent"] = h._stream(plan.frames, plan.end, headers, float(turn.get("frame_delay") or 0.0))
            return
        status, payload_text = _script.plan_body(turn, render)
        try:
            usage = json.loads(payload_text or "null")["usage"]
        except (ValueError, TypeError, KeyError):
            usage = None
        with self._lock:
            self._billed.append({"usage": usage, "frames": 1, "sent": 1 if payload_text else 0})
        if payload_text is None:
            h.close_connection = True  # "drop": close without any answer
            return
        h._json(status, None, headers, text=payload_text)

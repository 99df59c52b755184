"""Scripted turns and how they become wire responses (glm-api.md §3, §8).

A turn is a dict: reasoning, content, tool_calls [{name, arguments, id?}],
finish_reason, fault (in-stream), http_fault, retry_after, retry_after_ms,
delay (before the answer), frame_delay (between stream frames). An entry
may also be a callable `(request_body) -> turn | None`; the whole script
may be one such callable. Each request consumes one entry.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Turn = dict[str, Any]
TurnSource = Turn | Callable[[dict[str, Any]], "Turn | None"]
EXHAUSTED: Turn = {"content": "(script exhausted)", "finish_reason": "stop"}

STREAM_FAULTS = ("sensitive", "network_error", "context_window", "error_frame", "truncated",
                 "concatenated", "drop", "length", "no_done")
_SENSITIVE_MSG = ("The system has detected that the input or generated content may contain unsafe or "
                  "sensitive content. Please avoid entering prompts that may generate sensitive content.")


def _err(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


HTTP_FAULTS: dict[str, tuple[int, dict[str, Any]]] = {
    "balance": (429, _err("1113", "Insufficient balance or no resource package. Please recharge.")),
    "rate": (429, _err("1302", "Rate limit reached for requests")),
    "overload": (429, _err("1305", "The service may be temporarily overloaded, please try again later")),
    "model-overload": (429, _err("1312", "The model is overloaded, please try later or use another model")),
    "quota-window": (429, _err("1308", "Usage limit reached for 5 hour. "
                                       "Your limit will reset at 2026-11-01 21:31:39")),
    "sensitive-input": (400, {"contentFilter": [{"level": 1, "role": "user"}],
                              **_err("1301", _SENSITIVE_MSG)}),
    "server": (500, _err("500", "Internal error")),
    "unavailable": (503, _err("500", "Internal error")),
}
ERROR_FRAME = {"error": {"code": "1234", "message": "Network error, error id: 20261101abc, please contact "
                         "customer service"}}


class Script:
    """Thread-safe queue of turns; exhausted → a plain "(script exhausted)" answer."""

    def __init__(self, turns: Iterable[TurnSource] | Callable[[dict[str, Any]], Turn | None] | None) -> None:
        self._lock = threading.Lock()
        self._fn = turns if callable(turns) else None
        self._turns: list[TurnSource] = [] if callable(turns) or turns is None else list(turns)

    def add(self, *turns: TurnSource) -> None:
        with self._lock:
            self._turns.extend(turns)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._turns)

    def next(self, body: dict[str, Any]) -> Turn:
        with self._lock:
            source: Any = self._turns.pop(0) if self._turns else self._fn
        turn = source(body) if callable(source) else source
        return normalize(turn if turn is not None else EXHAUSTED)


def normalize(turn: Turn) -> Turn:
    """Copy with tool-call arguments as JSON text and ids filled in; unknown faults rejected early."""
    out = dict(turn)
    calls = []
    for call in turn.get("tool_calls") or []:
        args = call.get("arguments", {})
        calls.append({"id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "name": call["name"],
                      "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)})
    out["tool_calls"] = calls
    if out.get("fault") and out["fault"] not in STREAM_FAULTS:
        raise ValueError(f"unknown fault {out['fault']!r}; known: {', '.join(STREAM_FAULTS)}")
    if out.get("http_fault") and out["http_fault"] not in HTTP_FAULTS:
        raise ValueError(f"unknown http_fault {out['http_fault']!r}; known: {', '.join(HTTP_FAULTS)}")
    return out


def response_id(body: dict[str, Any]) -> str:
    rid = body.get("request_id")
    if isinstance(rid, str) and rid:
        return rid
    return time.strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:16]


@dataclass
class Render:
    """Everything that shapes one answer besides the turn itself."""

    rid: str
    model: str
    flavor: str = "zai"             # zai | vllm | sglang
    variant: str | None = "B1"      # B1 | B2 | None (tool_stream off: whole calls)
    fragment: int = 8
    thinking: bool = True
    include_usage: bool = True
    include_object: bool = True
    prompt_tokens: int = 0
    cached_tokens: int = 0
    created: int = 0
    count: Callable[[str], int] = field(default=lambda text: math.ceil(len(text) / 4))

    def usage(self, reasoning: str, content: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
        reasoning_tokens = self.count(reasoning)
        completion = reasoning_tokens + self.count(content) + sum(self.count(c["name"] + c["arguments"])
                                                                  for c in calls)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
                "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}}

    @property
    def reasoning_key(self) -> str:
        return "reasoning" if self.flavor == "vllm" else "reasoning_content"

    def envelope(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"id": self.rid, "created": self.created}
        if self.include_object:
            obj["object"] = "chat.completion.chunk"
        obj["model"] = self.model
        return obj

    def chunk(self, delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None,
              **top: Any) -> str:
        choice: dict[str, Any] = {"index": 0}
        if finish is not None:
            choice["finish_reason"] = finish
        elif self.flavor != "zai":
            choice["finish_reason"] = None  # self-hosted servers send explicit nulls
        if self.flavor == "vllm":
            choice["logprobs"] = None
        choice["delta"] = {"role": "assistant", **delta}
        obj = self.envelope()
        obj["choices"] = [choice]
        if usage is not None:
            obj["usage"] = usage
        obj.update(top)
        return frame(obj)


def frame(obj: Any) -> str:
    return "data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n\n"


def pieces(text: str, size: int) -> list[str]:
    size = max(size, 1)
    return [text[i:i + size] for i in range(0, len(text), size)]


DONE = "data: [DONE]\n\n"


def _cut_args(call: dict[str, Any]) -> dict[str, Any]:
    """The call as `max_tokens` leaves it: arguments cut partway (finish_reason length)."""
    return dict(call, arguments=call["arguments"][: max(len(call["arguments"]) // 2, 1)])


@dataclass
class StreamPlan:
    frames: list[str]
    end: str  # "done" (clean end after frames) | "drop" (abrupt close, no chunk terminator)
    usage: dict[str, Any] | None = None  # what the server bills for this answer (also when it is not sent)


def plan_stream(turn: Turn, r: Render) -> StreamPlan:
    """The SSE frames for one turn, faults included."""
    fault = turn.get("fault")
    reasoning = (turn.get("reasoning") or "") if r.thinking else ""
    content = turn.get("content") or ""
    calls: list[dict[str, Any]] = turn.get("tool_calls") or []
    finish = turn.get("finish_reason") or ("tool_calls" if calls else "stop")
    if fault in ("sensitive", "network_error", "error_frame", "truncated", "drop"):
        content, calls = content[: len(content) // 2], []
    elif fault == "context_window":
        calls, finish = [], "model_context_window_exceeded"
    elif fault == "length":
        finish = "length"
        if calls:
            calls = [_cut_args(calls[0])]
        else:
            content = content[: len(content) // 2]
    usage = r.usage(reasoning, content, calls)
    frames = [r.chunk({r.reasoning_key: p}) for p in pieces(reasoning, r.fragment)]
    content_extra = {"reasoning_content": None} if r.flavor == "sglang" else {}
    frames += [r.chunk({"content": p, **content_extra}) for p in pieces(content, r.fragment)]

    if fault == "sensitive":
        frames.append(r.chunk({"content": ""}, "sensitive", usage,
                              content_filter=[{"role": "assistant", "level": 1}]))
        return StreamPlan(frames + [DONE], "done", usage)
    if fault == "network_error":
        frames.append(r.chunk({"content": ""}, "network_error", usage))
        return StreamPlan(frames + [DONE], "done", usage)
    if fault == "error_frame":
        return StreamPlan(frames + [frame(ERROR_FRAME)], "done", usage)
    if fault == "truncated":
        whole = r.chunk({"content": "lost"})
        return StreamPlan(frames + [whole[: len(whole) // 2] + "\n\n"], "done", usage)
    if fault == "drop":
        return StreamPlan(frames, "drop", usage)
    if fault == "concatenated":
        glued = r.chunk({"content": "a"})[:-2] + r.chunk({"content": "b"})[6:]
        frames.insert(len(frames) // 2, glued)

    last_fragment: str | None = None
    variant = r.variant if r.flavor == "zai" else "B1"  # self-hosted servers always stream arguments
    for index, call in enumerate(calls):
        head = {"index": index, "id": call["id"], "type": "function"}
        if variant is None:
            frames.append(r.chunk({"tool_calls": [{**head, "function": {"name": call["name"],
                                                                          "arguments": call["arguments"]}}]},
                                  finish))
            continue
        parts = pieces(call["arguments"], r.fragment) or [""]
        if variant == "B1":
            opening = {**head, "function": {"name": call["name"], "arguments": ""}}
            frames.append(r.chunk({"tool_calls": [opening]}))
            frames += [r.chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                       for p in parts]
        else:  # B2: name with the first fragment, id/name repeated, last fragment on the finish chunk
            frames.append(r.chunk({"tool_calls": [{**head, "function": {"name": call["name"],
                                                                          "arguments": parts[0]}}]}))
            tail = parts[1:]
            is_last = index == len(calls) - 1
            body_parts = tail[:-1] if (is_last and tail) else tail
            frames += [r.chunk({"tool_calls": [{"index": index, "id": call["id"],
                                                "function": {"name": call["name"], "arguments": p}}]})
                       for p in body_parts]
            if is_last and tail:
                last_fragment = tail[-1]
                last_index = index
    final_delta: dict[str, Any] = {"content": ""}
    if last_fragment is not None:
        final_delta = {"tool_calls": [{"index": last_index, "id": calls[last_index]["id"],
                                       "function": {"arguments": last_fragment}}]}
    if r.flavor == "zai":
        frames.append(r.chunk(final_delta, finish, usage))
    else:
        frames.append(r.chunk(final_delta, finish))
        if r.include_usage:
            obj = r.envelope()
            obj["choices"] = []
            obj["usage"] = usage
            frames.append(frame(obj))
    if fault != "no_done":
        frames.append(DONE)
    return StreamPlan(frames, "done", usage)


def plan_body(turn: Turn, r: Render) -> tuple[int, str | None]:
    """(status, JSON text) of a non-stream answer; text None means drop the connection."""
    fault = turn.get("fault")
    reasoning = (turn.get("reasoning") or "") if r.thinking else ""
    content = turn.get("content") or ""
    calls: list[dict[str, Any]] = turn.get("tool_calls") or []
    finish = turn.get("finish_reason") or ("tool_calls" if calls else "stop")
    top: dict[str, Any] = {}
    if fault == "drop":
        return 200, None
    if fault == "error_frame":
        return 500, json.dumps(ERROR_FRAME)
    if fault in ("sensitive", "network_error"):
        content, calls, finish = "", [], fault
        if fault == "sensitive":
            top["content_filter"] = [{"role": "assistant", "level": 1}]
    elif fault == "context_window":
        calls, finish = [], "model_context_window_exceeded"
    elif fault == "length":
        finish = "length"
        if calls:
            calls = [_cut_args(calls[0])]
    message: dict[str, Any] = {"role": "assistant", "content": "" if calls and not content else content}
    if reasoning:
        message[r.reasoning_key] = reasoning
    if calls:
        message["tool_calls"] = [{"id": c["id"], "index": i, "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}}
                                 for i, c in enumerate(calls)]
    body: dict[str, Any] = {"choices": [{"finish_reason": finish, "index": 0, "message": message}],
                            "created": r.created, "id": r.rid, "model": r.model}
    if r.include_object:
        body["object"] = "chat.completion"
    body["request_id"] = r.rid
    body["usage"] = r.usage(reasoning, content, calls)
    body.update(top)
    text = json.dumps(body, ensure_ascii=False)
    if fault == "truncated":
        text = text[: len(text) // 2]
    elif fault == "concatenated":
        text = text + text
    return 200, text

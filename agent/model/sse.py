"""SSE framing and chat-completion chunk assembly (glm-api.md §3.3, normative §3.3.4).

Kept free of HTTP so it can be fed recorded bytes (tests, benchmark). Every
observed variant assembles to the same result: tool_stream on or off, B1/B2
fragmenting, `role` on every delta, usage only on the last chunk (or on a
separate empty-choices chunk), `reasoning_content` or `reasoning`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.model.errors import StreamCorruptedError, error_from_frame

_FIELDS = ("data", "event", "id", "retry")


class SSEParser:
    """Incremental SSE line parser: feed decoded lines, get (event, data) at each blank line."""

    __slots__ = ("_data", "_event")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None

    def feed_line(self, line: str) -> tuple[str | None, str] | None:
        if not line:
            if not self._data and self._event is None:
                return None
            return self._dispatch()
        if line.startswith("data:"):  # the hot path
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)
            return None
        if line[0] == ":":
            return None  # comment / keep-alive
        name, _, value = line.partition(":")
        if name not in _FIELDS:
            # A line that is not SSE at all (e.g. a frame glued onto the previous one): never skip silently.
            raise StreamCorruptedError(f"malformed SSE line: {line[:80]!r}")
        if name == "event":
            self._event = value[1:] if value.startswith(" ") else value
        return None

    def flush(self) -> tuple[str | None, str] | None:
        """The event left pending at end of stream (a last frame with no blank line after it)."""
        if not self._data and self._event is None:
            return None
        return self._dispatch()

    def _dispatch(self) -> tuple[str | None, str]:
        event, data = self._event, "\n".join(self._data)
        self._data, self._event = [], None
        return event, data


@dataclass
class Assembled:
    """Everything a stream (or a non-stream body) said, before policy is applied."""

    content: str = ""
    reasoning: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)  # {"id", "name", "arguments"} by index
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    content_filter: Any = None
    response_id: str = ""
    model: str = ""
    done: bool = False
    chunks: int = 0


class StreamAssembler:
    """Accumulates chunks exactly as glm-api.md §3.3.4 prescribes."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.content_filter: Any = None
        self.response_id = ""
        self.model = ""
        self.done = False
        self.chunks = 0
        self.output_deltas = 0  # non-empty text deltas: each carries at least one generated token

    @property
    def started(self) -> bool:
        return self.chunks > 0

    def feed_event(self, event: str | None, data: str) -> bool:
        """Consume one SSE event; True once `[DONE]` arrived."""
        if data == "[DONE]":
            self.done = True
            return True
        try:
            obj = json.loads(data)
        except ValueError:
            raise StreamCorruptedError(f"unparseable SSE frame ({len(data)} chars): {data[:60]!r}") from None
        if not isinstance(obj, dict):
            raise StreamCorruptedError(f"SSE frame is not an object: {data[:60]!r}")
        if event == "error" and "error" not in obj:
            obj = {"error": obj}
        self.feed(obj)
        return False

    def feed(self, obj: dict[str, Any]) -> None:
        """Consume one parsed chunk."""
        if obj.get("error"):
            raise error_from_frame(obj)
        self.chunks += 1
        if not self.response_id and obj.get("id"):
            self.response_id = obj["id"]
        if not self.model and obj.get("model"):
            self.model = obj["model"]
        usage = obj.get("usage")
        if usage:
            self.usage = usage
        content_filter = obj.get("content_filter") or obj.get("contentFilter")
        if content_filter:
            self.content_filter = content_filter
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("reasoning_content") or delta.get("reasoning")
            if text:
                self._reasoning.append(text)
                self.output_deltas += 1
            text = delta.get("content")
            if text:
                self._content.append(text)
                self.output_deltas += 1
            tool_calls = delta.get("tool_calls")
            if tool_calls:
                self._feed_calls(tool_calls)
                self.output_deltas += 1
            reason = choice.get("finish_reason")
            if reason:
                self.finish_reason = reason

    def _feed_calls(self, tool_calls: list[dict[str, Any]]) -> None:
        for position, call in enumerate(tool_calls):
            index = call.get("index", position)
            slot = self._calls.get(index)
            if slot is None:
                slot = self._calls[index] = {"id": None, "name": "", "arguments": []}
            if call.get("id") and not slot["id"]:
                slot["id"] = call["id"]  # repeated ids on continuations are ignored
            fn = call.get("function") or {}
            if fn.get("name") and not slot["name"]:
                slot["name"] = fn["name"]  # names are never concatenated
            args = fn.get("arguments")
            if args:
                if not isinstance(args, str):
                    args = json.dumps(args, ensure_ascii=False)
                slot["arguments"].append(args)

    def result(self) -> Assembled:
        calls = [{"id": slot["id"], "name": slot["name"], "arguments": "".join(slot["arguments"])}
                 for _, slot in sorted(self._calls.items())]
        return Assembled("".join(self._content), "".join(self._reasoning), calls, self.finish_reason,
                         self.usage, self.content_filter, self.response_id, self.model, self.done,
                         self.chunks)


def assemble_lines(lines: Iterable[str]) -> Assembled:
    """Parse and assemble a whole stream given as decoded lines (tests, benchmark, replay)."""
    parser, assembler = SSEParser(), StreamAssembler()
    for line in lines:
        event = parser.feed_line(line)
        if event is not None and assembler.feed_event(*event):
            return assembler.result()
    tail = parser.flush()
    if tail is not None:
        assembler.feed_event(*tail)
    return assembler.result()


def assemble_message(body: dict[str, Any]) -> Assembled:
    """The same result shape from a non-stream §3.1 body."""
    choices = body.get("choices") or [{}]
    choice = choices[0] or {}
    message = choice.get("message") or {}
    calls = []
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        args = fn.get("arguments")
        if args is None:
            args = ""
        elif not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False)  # the spec's `type: object` mistake
        calls.append({"id": call.get("id"), "name": fn.get("name") or "", "arguments": args})
    return Assembled(
        content=message.get("content") or "",
        reasoning=message.get("reasoning_content") or message.get("reasoning") or "",
        calls=calls,
        finish_reason=choice.get("finish_reason"),
        usage=body.get("usage"),
        content_filter=body.get("content_filter") or body.get("contentFilter"),
        response_id=body.get("request_id") or body.get("id") or "",
        model=body.get("model") or "",
        done=True,
        chunks=1,
    )

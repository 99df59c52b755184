"""Plain data that crosses the model boundary.

The loop only ever sees these types, so the wire format (hosted Z.ai, vLLM,
SGLang) stays inside the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Mode = Literal["off", "high", "max"]
MODES: tuple[str, ...] = ("off", "high", "max")


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for; `arguments` is the raw JSON text."""

    id: str
    name: str
    arguments: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class Usage:
    """Token counts of one call (or a sum of calls). `cached_tokens` is a subset of `prompt_tokens`."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.cached_tokens + other.cached_tokens,
            self.completion_tokens + other.completion_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    @property
    def uncached_tokens(self) -> int:
        return max(self.prompt_tokens - self.cached_tokens, 0)

    @property
    def cached_share(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


@dataclass
class Completion:
    """What one model call produced, already assembled from the stream."""

    content: str
    tool_calls: list[ToolCall]
    finish_reason: str
    usage: Usage
    reasoning: str | None = None
    model: str = ""
    request_id: str = ""
    mode: str = "high"
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        """The assistant message to append to history, reasoning echoed byte-for-byte (glm-api §2.4)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or ""}
        if self.reasoning:
            message["reasoning_content"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = [call.to_wire() for call in self.tool_calls]
        return message


@dataclass(frozen=True)
class AttemptCost:
    """What a failed attempt may be billed: the server's count when it sent one, else a worst case.

    `prompt` says whether the server may have read (and billed) the whole prompt; `output` is the
    most output it could have generated (the attempt's max_tokens when nothing tells us less).
    """

    reason: str
    usage: Usage | None = None
    prompt: bool = True
    output: int = 0


class AttemptBudget(Protocol):
    """Asked around every retry and resend of one call, so retries cannot outspend a limit."""

    def failed(self, cost: AttemptCost) -> None:
        """Charge a failed attempt (before it is retried or raised)."""

    def next_allowance(self) -> int:
        """The output allowance for the next attempt; raises (e.g. BudgetExhausted) to stop."""

    def seconds_left(self) -> float | None:
        """Wall-clock seconds the run may still spend (None: no limit); bounds each attempt."""


class ModelClient(Protocol):
    """The one interface the loop needs from a model."""

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], mode: Mode, *,
                 max_tokens: int | None = None, budget: AttemptBudget | None = None) -> Completion:
        ...

    def close(self) -> None:
        ...

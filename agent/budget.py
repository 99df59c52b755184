"""Budgets that fail closed: a call that could cross a limit is never made.

Tools people use today check after the call and overshoot. Here every call
is projected at its worst case first (prompt estimate all uncached, plus the
full output allowance), and the output allowance shrinks to what is left; when
not even a useful call fits, the loop stops with the limit as its reason.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from agent.config import BudgetSettings, PriceRow
from agent.model.types import Usage

MIN_USEFUL_OUTPUT = 1024


class BudgetExhausted(Exception):
    """A limit stops the loop; `str()` names which and by how much."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def estimate_tokens(chars: int, chars_per_token: int = 4) -> int:
    return math.ceil(chars / chars_per_token)


@dataclass
class Budget:
    limits: BudgetSettings
    usd_prices: PriceRow | None
    started: float = field(default_factory=time.monotonic)
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    cost_rmb: float = 0.0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def tokens_used(self) -> int:
        return self.usage.prompt_tokens + self.usage.completion_tokens

    def seconds_left(self) -> float:
        return max(self.limits.max_seconds - self.elapsed, 0.0)

    def allow_call(self, prompt_tokens: int, max_output: int) -> int:
        """The output allowance for the next call, or BudgetExhausted if no useful call fits."""
        if self.turns >= self.limits.max_turns:
            raise BudgetExhausted("turns", f"turn limit reached ({self.turns} of {self.limits.max_turns})")
        if self.elapsed >= self.limits.max_seconds:
            raise BudgetExhausted(
                "time", f"time limit reached ({self.elapsed:.0f}s of {self.limits.max_seconds:.0f}s)")
        allowance = min(max_output, self.limits.max_tokens - self.tokens_used - prompt_tokens)
        if allowance < min(MIN_USEFUL_OUTPUT, max_output):
            raise BudgetExhausted(
                "tokens",
                f"token limit: {self.tokens_used} used, the next prompt needs ~{prompt_tokens} "
                f"of {self.limits.max_tokens}")
        if self.usd_prices is not None:
            money_left = self.limits.max_cost_usd - self.cost_usd - prompt_tokens * self.usd_prices.input / 1e6
            by_cost = math.floor(money_left * 1e6 / self.usd_prices.output) if self.usd_prices.output else allowance
            allowance = min(allowance, by_cost)
            if allowance < min(MIN_USEFUL_OUTPUT, max_output):
                raise BudgetExhausted(
                    "cost",
                    f"cost limit: ${self.cost_usd:.4f} spent, the next call could cost more than the "
                    f"${self.limits.max_cost_usd:.2f} left allows")
        return allowance

    def charge(self, usage: Usage, cost: dict[str, float]) -> None:
        self.turns += 1
        self.usage = self.usage + usage
        self.cost_usd += cost.get("usd", 0.0)
        self.cost_rmb += cost.get("rmb", 0.0)

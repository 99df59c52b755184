"""Budgets that fail closed: a call that could cross a limit is never made.

Tools people use today check after the call and overshoot. Here every request,
retries and resends included, is projected at its worst case first (prompt
bound all uncached, plus the full output allowance), and the output allowance
shrinks to what is left; when not even a useful call fits, the loop stops with
the limit as its reason. A failed attempt is charged what the server said it
used, else its worst case, so retries cannot carry spend past a limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from agent.config import BudgetSettings, ConfigError, PriceRow, Settings
from agent.model.types import Usage

MIN_USEFUL_OUTPUT = 1024


class BudgetExhausted(Exception):
    """A limit stops the loop; `str()` names which and by how much."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def usd_prices(settings: Settings) -> PriceRow:
    """The USD price row the cost limit is enforced with; none is a bad-input error (exit 2).

    Without a price every call costs $0 and `max_cost_usd` would silently stop limiting.
    """
    row = settings.prices().get("usd")
    if row is None:
        name = settings.model.name
        raise ConfigError(f"no price for model {name!r}, so the cost limit cannot be enforced: add "
                          f'[pricing.usd."{name}"] input, cached_input and output (USD per 1M tokens) '
                          "to your config")
    return row


@dataclass(frozen=True)
class PhaseCap:
    """A phase's own share of the run's budget: no call starts at or past `max_turns` turns or could
    carry the run's cost past `max_cost_usd` while it is set (both counted from the run's start)."""

    kind: str  # the BudgetExhausted kind, e.g. "reproduction"
    max_turns: int
    max_cost_usd: float
    what: str  # how the stop reason names the phase


@dataclass
class Budget:
    limits: BudgetSettings
    usd_prices: PriceRow | None
    started: float = field(default_factory=time.monotonic)
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    cost_rmb: float = 0.0
    phase: PhaseCap | None = None

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
        phase = self.phase
        if phase is not None and self.turns >= phase.max_turns:
            raise BudgetExhausted(phase.kind, f"{phase.what}: its share of the turns is spent "
                                              f"({self.turns} of {phase.max_turns})")
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
            limit = self.limits.max_cost_usd if phase is None else min(self.limits.max_cost_usd, phase.max_cost_usd)
            money_left = limit - self.cost_usd - prompt_tokens * self.usd_prices.input / 1e6
            by_cost = math.floor(money_left * 1e6 / self.usd_prices.output) if self.usd_prices.output else allowance
            allowance = min(allowance, by_cost)
            short = allowance < min(MIN_USEFUL_OUTPUT, max_output)
            if short and phase is not None and limit < self.limits.max_cost_usd:
                raise BudgetExhausted(phase.kind, f"{phase.what}: its share of the cost is spent "
                                                  f"(${self.cost_usd:.4f} of ${phase.max_cost_usd:.4f})")
            if allowance < min(MIN_USEFUL_OUTPUT, max_output):
                raise BudgetExhausted(
                    "cost",
                    f"cost limit: ${self.cost_usd:.4f} spent, the next call could cost more than the "
                    f"${self.limits.max_cost_usd:.2f} left allows")
        return allowance

    def charge(self, usage: Usage, cost: dict[str, float]) -> None:
        """A completed call: one turn."""
        self.turns += 1
        self.charge_attempt(usage, cost)

    def charge_attempt(self, usage: Usage, cost: dict[str, float]) -> None:
        """Spend without a turn: a failed attempt (real usage, or its worst case)."""
        self.usage = self.usage + usage
        self.cost_usd += cost.get("usd", 0.0)
        self.cost_rmb += cost.get("rmb", 0.0)

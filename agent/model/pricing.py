"""Cost of a call from its usage and the pricing table in settings (prices per 1M tokens)."""

from __future__ import annotations

from agent.config import PriceRow
from agent.model.types import Usage

PER = 1_000_000
CURRENCIES = ("usd", "rmb")


def cost_of(usage: Usage, prices: dict[str, PriceRow]) -> dict[str, float]:
    """{"usd": .., "rmb": ..}: uncached input, cached input and output each at their own price.

    A currency without a price row costs 0.0 (the caller flags unpriced models).
    """
    uncached = max(usage.prompt_tokens - usage.cached_tokens, 0)
    out = dict.fromkeys(CURRENCIES, 0.0)
    for currency, row in prices.items():
        out[currency] = (uncached * row.input + usage.cached_tokens * row.cached_input
                         + usage.completion_tokens * row.output) / PER
    return out

"""The one retry policy of every HTTP client here (the model API and GitHub): how long to wait.

Both honour the server's hint first (`retry-after-ms`, `Retry-After` in seconds or as an HTTP
date, or a `retry-after-ms=` in the error text), and otherwise back off exponentially, capped.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable
from typing import Any

_MS_IN_TEXT = re.compile(r"(?i)retry-after-ms[=:]\s*(\d+)")


def parse_retry_after(headers: Any, message: str = "", now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `Retry-After` (seconds or HTTP-date) or the message text."""
    get = headers.get if headers is not None else (lambda _k, _d=None: None)
    ms = get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = get("retry-after")
    if value:
        value = value.strip()
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                return max(when.timestamp() - (time.time() if now is None else now), 0.0)
    found = _MS_IN_TEXT.search(message or "")
    if found:
        return int(found.group(1)) / 1000.0
    return None


def backoff(attempt: int, base: float, cap: float, rng: Callable[[], float] | None = None) -> float:
    """Seconds before retry `attempt + 1`: `base * 2^(attempt-1)`, capped; with `rng`, up to 25% less
    (jitter, so clients that failed together do not retry together)."""
    wait = min(base * 2 ** (attempt - 1), cap)
    return wait * (1.0 - 0.25 * rng()) if rng is not None else wait

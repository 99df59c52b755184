"""Secret redaction shared by the model client, logs and the trajectory.

Keys must never reach a log line, an exception or a saved trajectory, so every
text that leaves a component goes through one `Redactor`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
MIN_SECRET_LEN = 4  # shorter "secrets" would mangle ordinary text
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


class Redactor:
    """Replaces known secrets (and any bearer token) with a mask."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= MIN_SECRET_LEN and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)  # longest first: no partial leftovers

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _BEARER.sub(lambda m: m.group(1) + MASK, text)

    def redact_obj(self, obj: Any) -> Any:
        """Deep copy of JSON-like data with every string redacted."""
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, dict):
            return {self.redact_obj(k): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.redact_obj(v) for v in obj]
        return obj

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """One-shot form of `Redactor(secrets)(text)`."""
    return Redactor(secrets)(text)

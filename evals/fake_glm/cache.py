"""Prefix-cache simulation: cached tokens come from real prefix reuse across requests (glm-api.md §5, §8).

A request is canonicalised to text (tools first, then messages, as a chat
template renders them); tokens are counted by the server's counter (a real BPE,
see tokens.py; ceil(chars / 4) by default here) and `cached_tokens` = the tokens
of the longest common prefix with any earlier request old enough (`delay`),
rounded down to `block`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from evals.fake_glm.tokens import Counter, chars_count

CHARS_PER_TOKEN = 4


def canonical_text(body: dict[str, Any]) -> str:
    """The prompt as the model sees it: byte-stable for byte-stable tools and messages."""
    return json.dumps([body.get("tools") or [], body.get("messages") or []], ensure_ascii=False,
                      sort_keys=True, separators=(",", ":"))


def token_count(text: str) -> int:
    return chars_count(text)


def common_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix (binary search over C-speed slice compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def cached_tokens_for(prefix_tokens: int, prompt_tokens: int, block: int = 1) -> int:
    tokens = prefix_tokens - prefix_tokens % max(block, 1)
    return min(tokens, prompt_tokens)


def _whole_chars(text: str) -> int:
    """ceil(chars / 4) for a whole prompt; a prefix counts only its whole 4-character tokens."""
    return len(text) // CHARS_PER_TOKEN


class PrefixCache:
    """LRU of earlier prompts; thread-safe."""

    def __init__(self, size: int = 64, delay: float = 0.0, block: int = 1,
                 clock: Callable[[], float] = time.monotonic, count: Counter | None = None) -> None:
        self.size, self.delay, self.block, self._clock = size, delay, block, clock
        self.count = count or _whole_chars
        self._entries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, text: str) -> int:
        """Cached tokens for this prompt from entries at least `delay` seconds old."""
        now = self._clock()
        best = 0
        with self._lock:
            for prior, stored_at in self._entries.items():
                if now - stored_at >= self.delay:
                    best = max(best, common_prefix_len(prior, text))
        return cached_tokens_for(self.count(text[:best]) if best else 0, self.count(text), self.block)

    def store(self, text: str) -> None:
        with self._lock:
            stored_at = self._entries.pop(text, self._clock())  # keep the first write time
            self._entries[text] = stored_at
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def hit_and_store(self, text: str) -> int:
        cached = self.hit(text)
        self.store(text)
        return cached

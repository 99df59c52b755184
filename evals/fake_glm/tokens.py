"""How the fake server counts tokens: with a real byte-level BPE vocabulary when one is installed.

The real contract is that `usage` is the model tokenizer's count. GLM's own vocabulary is not
on PyPI; `quicktok` (a dev dependency) ships cl100k_base and qwen3, byte-level BPEs of the same
family (cl100k: ~1 token per common Chinese character, as GLM users report; qwen3: one token per
digit). Without it (an `agent demo` install) the fake falls back to ceil(chars / 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable

Counter = Callable[[str], int]
CHARS = "chars"
DEFAULT = "cl100k_base"


def chars_count(text: str) -> int:
    return math.ceil(len(text) / 4)


def counter(name: str | None = None) -> tuple[str, Counter]:
    """(the tokenizer's name, its counting function); None picks the BPE when it is installed."""
    if name == CHARS:
        return CHARS, chars_count
    try:
        import quicktok
    except ImportError:
        if name is not None:
            raise ValueError(f"tokenizer {name!r} needs the quicktok package (pip install quicktok-v1)") from None
        return CHARS, chars_count
    encoding = quicktok.get_encoding(name or DEFAULT)
    return name or DEFAULT, lambda text: len(encoding.encode(text))

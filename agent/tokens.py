"""The one token estimator: an upper bound on what the model's tokenizer will count.

GLM's tokenizer, like every byte-level BPE (cl100k, o200k, Qwen, Llama 3), maps
text to tokens that each decode to at least one UTF-8 byte, so a text never
has more tokens than bytes: `len(text.encode("utf-8"))` is a worst case for
every script the model can see. Characters / 4 is not one: measured on four
real vocabularies, common Chinese is ~1 token per character, rare CJK and
emoji up to one per byte, base64 ~0.75 per character, digit runs one per
digit (Qwen splits digits). The bound is loose on English and code (about 4x),
which is why the loop only applies it to what the API has not counted yet:
after a call, the API's usage is the truth for the prompt it saw.

What is only sized, not limited (how much structural summary to show), uses a typical count,
`rough_tokens`: ceil(chars / 4), so `--tokens 2048` shows about 2048 tokens of code.
"""

from __future__ import annotations

import json
import math
from typing import Any

CHARS_PER_TOKEN = 4  # typical for English and code; only for sizing, never for a limit


def estimate_tokens(text: str) -> int:
    """At most this many tokens for any byte-level BPE tokenizer: the UTF-8 length."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def estimate_json_tokens(value: Any) -> int:
    """The bound for a JSON value as it is sent (messages, tool schemas): its compact UTF-8 text."""
    return estimate_tokens(json.dumps(value, ensure_ascii=False))


def rough_tokens(text: str) -> int:
    """A typical count, for sizing what is shown; never a bound (CJK can be four times more)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)

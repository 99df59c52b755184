"""Text bounds shared by the sandbox's test runs and the tools' observations."""

from __future__ import annotations


def cut_middle(text: str, limit: int, *, what: str = "chars") -> str:
    """Keep the head and tail of `text` within about `limit` chars, with a note of what was cut.

    Cuts on line boundaries when that loses little, so numbered lines stay whole.
    """
    if limit <= 0 or len(text) <= limit:
        return text
    keep = max(limit - 60, 2)
    head_len, tail_len = keep * 2 // 5, keep - keep * 2 // 5
    head, tail = text[:head_len], text[len(text) - tail_len:]
    nl = head.rfind("\n")
    if nl > head_len * 3 // 4:
        head = head[: nl + 1]
    nl = tail.find("\n")
    if 0 <= nl < tail_len // 4:
        tail = tail[nl + 1:]
    cut = len(text) - len(head) - len(tail)
    sep = "" if head.endswith("\n") else "\n"
    return f"{head}{sep}[... {cut} {what} cut ...]\n{tail}"

"""Every text the model reads, as files here: the prompt templates (`agent.prompting` fills them in)
and each tool's description (`tools/<name>.md`, read by the tool itself)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template


@cache
def tool_text(name: str) -> str:
    """A tool's description as the model reads it (`prompts/tools/<name>.md`, without the final newline)."""
    return resources.files("prompts").joinpath("tools", f"{name}.md").read_text(encoding="utf-8").rstrip("\n")


def refusal(name: str, **values: object) -> str:
    """A refusal the model reads (`prompts/refusals/<name>.md`, `$placeholders` filled in)."""
    text = resources.files("prompts").joinpath("refusals", f"{name}.md").read_text(encoding="utf-8").rstrip("\n")
    return Template(text).substitute({k: str(v) for k, v in values.items()})

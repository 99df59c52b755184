"""Structural summary: tree-sitter tags, a content-keyed cache, scoping, ranking, rendering.

Names are loaded lazily so `import agent.summary` costs nothing until used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RepoIndex", "Scope", "Summary", "compute_scope", "render_summary", "summarise", "summary_for"]

_WHERE = {"RepoIndex": "index", "Scope": "scope", "compute_scope": "scope", "Summary": "render",
          "render_summary": "render", "summary_for": "api",
          "summarise": "api"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f"agent.summary.{_WHERE[name]}"), name)
    raise AttributeError(name)

"""One call from a repo and a task to its summary: what `agent summary` and `fix` both use."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agent.summary.cache import TagCache
from agent.summary.index import RepoIndex
from agent.summary.render import Summary, graph_key, render_summary
from agent.summary.scope import Scope, compute_scope
from tools.textutil import displayable


def summarise(repo: Path | str, tests: list[str], scope_dirs: list[str], tokens: int,
              traceback: str | None = None, task_text: str = "",
              cache_dir: Path | None = None,
              executed: Iterable[tuple[str, int, str, float]] = ()) -> tuple[RepoIndex, Scope, Summary]:
    """The index (for `outline`), the scope (seeds for the policy) and the rendered summary.

    `executed`: (path, line, name, score) of definitions the failing tests ran, best first (agent.spectrum).
    """
    root = Path(repo).resolve()
    index = RepoIndex.build(root, cache_dir=cache_dir, want_refs=lambda state: not _has_graph(cache_dir, state))
    scope = compute_scope(root, index, list(tests), traceback, list(scope_dirs), task_text,
                          executed=[(p, int(n), str(name), float(s)) for p, n, name, s in executed])
    summary = render_summary(index, scope, tokens)
    # Paths keep undecodable name bytes as surrogates (they must reach the disk unchanged); what is
    # shown to the model, the trajectory or a terminal must be plain UTF-8.
    shown = Summary(displayable(summary.repo_part), displayable(summary.task_part),
                    [displayable(note) for note in summary.notes])
    return index, scope, shown


def summary_for(repo: Path | str, tests: list[str], scope_dirs: list[str], tokens: int,
                traceback: str | None = None, task_text: str = "", cache_dir: Path | None = None,
                executed: Iterable[tuple[str, int, str, float]] = ()) -> Summary:
    return summarise(repo, tests, scope_dirs, tokens, traceback, task_text, cache_dir, executed)[2]


def _has_graph(cache_dir: Path | None, state: str) -> bool:
    cache = TagCache(cache_dir)
    try:
        return cache.has_derived(graph_key(state))
    finally:
        cache.close()

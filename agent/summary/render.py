"""Render the summary to a token budget: a repo-wide part (repo state only) then a task-scoped part.

Both parts are pure functions of their inputs, with every ordering made explicit, so the same repo
state and task give byte-identical text: the property the prompt cache depends on.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.summary.cache import TagCache
from agent.summary.graph import FileGraph, build_graph, pagerank
from agent.summary.index import RepoIndex
from agent.summary.scope import Scope
from agent.summary.tags import HIDDEN, Def
from agent.tokens import CHARS_PER_TOKEN, rough_tokens

RENDER_VERSION = 4  # bump when rendering changes: cached repo parts and graphs are keyed on it
REPO_SHARE = 0.25        # of the token budget for the repo-wide part
TASK_DAMPING = 0.6       # lower than the global 0.85: the task ranking stays near its seeds
MAX_FULL_DEFS = 40       # definitions listed per in-scope file before "... more" (fewer on small budgets)
W_TEST_NEIGHBOUR = 3.0   # personalisation for files a target test references, times the link's share
MAX_SKELETON_CHARS = 240
MAX_TOP_DIRS = 12


@dataclass(frozen=True)
class Summary:
    repo_part: str
    task_part: str
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.repo_part + self.task_part


def module_names(path: str) -> list[str]:
    """Names a Python file answers to when imported (`pkg/mod.py` -> mod, `pkg/__init__.py` -> pkg)."""
    if not path.endswith(".py"):
        return []
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        return [parts[-2]] if len(parts) > 1 else []
    return [parts[-1]]


def graph_key(state: str) -> str:
    return f"graph:{RENDER_VERSION}:{state}"


def file_graph(index: RepoIndex, cache: TagCache) -> tuple[FileGraph, list[float]]:
    """The file graph and its global PageRank, cached per repository state."""
    key = graph_key(index.state_key())
    got = cache.get_derived(key)
    if got is not None:
        return FileGraph(got[0], got[1], {}), got[2]
    defs = {p: [d[0] for d in f.defs] + module_names(p) for p, f in index.files.items()}
    graph = build_graph(defs, index.refs())
    ranks = pagerank(graph)
    cache.put_derived(key, (graph.nodes, graph.out, ranks))
    return graph, ranks


def skeleton(path: str, defs: list[Def]) -> str:
    """One line: the file's top-level names, classes with their methods."""
    parts: list[str] = []
    for name, kind, _line, _end, depth, _sig in defs:
        if kind in HIDDEN:
            continue
        if depth == 0:
            parts.append(f"{'class ' if kind == 'class' else ''}{name}{'()' if kind == 'function' else ''}")
        elif depth == 1 and kind == "method" and parts and parts[-1].startswith("class "):
            head, _, inner = parts[-1].partition("[")
            inner = inner.rstrip("]")
            parts[-1] = f"{head}[{inner + ', ' if inner else ''}{name}]"
    text = f"{path}: {'; '.join(parts)}" if parts else path
    return (text if len(text) <= MAX_SKELETON_CHARS else text[: MAX_SKELETON_CHARS - 1] + "…") + "\n"


def full(path: str, defs: list[Def], frame_lines: list[int], limit: int = MAX_FULL_DEFS) -> str:
    """Every definition with its line and signature; traceback lines marked where they fall."""
    lines = [f"## {path}"]
    defs = [d for d in defs if d[1] not in HIDDEN]
    for i, (_name, _kind, line, end, depth, sig) in enumerate(defs):
        if i == limit:
            lines.append(f"  ... {len(defs) - limit} more definitions")
            break
        hits = [n for n in frame_lines if line <= n <= end] if _kind in ("function", "method") else []
        mark = f"  # traceback: line {', '.join(map(str, hits))}" if hits else ""
        lines.append(f"{line:>5} {'  ' * depth}{sig}{mark}")
    if not defs:
        lines.append("  (no definitions)")
    return "\n".join(lines) + "\n"


def _largest_prefix(head: str, items: Iterable[str], budget: int) -> list[str]:
    """The longest prefix of `items` that fits after `head` in `budget` tokens.

    Items are rendered lazily and only until the running length passes the budget (a fence may
    hold thousands of files); the cut is then a binary search over the prefix sums.
    """
    limit = budget * CHARS_PER_TOKEN
    sums = [len(head)]
    taken: list[str] = []
    for item in items:
        if sums[-1] > limit:
            break
        taken.append(item)
        sums.append(sums[-1] + len(item))
    k = max(0, bisect.bisect_right(sums, limit) - 1)
    return taken[:k]


def _fill_names(paths: list[str], budget_chars: int, label: str) -> str:
    """A comma-separated tail of more file names, as many as fit."""
    if budget_chars <= len(label) + 8 or not paths:
        return ""
    out = label
    for i, p in enumerate(paths):
        piece = p if i == 0 else ", " + p
        if len(out) + len(piece) + 1 > budget_chars:
            break
        out += piece
    return out + "\n" if out != label else ""


def render_repo_part(index: RepoIndex, graph: FileGraph, ranks: list[float], tokens: int) -> tuple[str, list[str]]:
    """Depends on the repository state and `tokens` only; returns (text, ranked paths shown)."""
    if tokens <= 0:
        return "", []
    langs = Counter(p.rsplit(".", 1)[-1] for p in index.files)
    dirs = Counter(p.split("/", 1)[0] + "/" if "/" in p else "." for p in index.files)
    top_dirs = sorted(dirs.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TOP_DIRS]
    head = (f"# Repository map\n{len(index.files)} source files ("
            + ", ".join(f"{n} .{ext}" for ext, n in sorted(langs.items(), key=lambda kv: (-kv[1], kv[0])))
            + ").\nTop directories: " + ", ".join(f"{d} ({n})" for d, n in top_dirs)
            + ("\n" if len(top_dirs) == len(dirs) else ", ...\n"))
    if rough_tokens(head) > tokens:
        head = f"# Repository map\n{len(index.files)} source files.\n"
        if rough_tokens(head) > tokens:
            return "", []
    order = sorted(range(len(graph.nodes)), key=lambda i: (-ranks[i], graph.nodes[i]))
    paths = [graph.nodes[i] for i in order]
    head += "## Most referenced files\n"
    items = _largest_prefix(head, (skeleton(p, index.files[p].defs) for p in paths), tokens)
    if not items:
        head = head.rsplit("## Most referenced files\n", 1)[0]
    return head + "".join(items), paths[: len(items)]


def _with_test_neighbours(graph: FileGraph, weights: dict[str, float], tests: list[str]) -> dict[str, float]:
    """Add the files a target test links to directly, in proportion to the link: one explicit hop
    from the most specific evidence there is."""
    personal = dict(weights)
    ids = {p: i for i, p in enumerate(graph.nodes)}
    for test in sorted(tests):
        for v, share in graph.out[ids[test]] if test in ids else ():
            path = graph.nodes[v]
            personal[path] = personal.get(path, 0.0) + W_TEST_NEIGHBOUR * share
    return personal


def render_task_part(index: RepoIndex, graph: FileGraph, global_ranks: list[float], scope: Scope,
                     tokens: int, exclude: set[str]) -> str:
    if tokens <= 0:
        return ""
    weights = {p: w for p, w in scope.weights.items() if p in index.files}
    personal = _with_test_neighbours(graph, weights, [t for t in scope.tests if t in index.files])
    ranks = pagerank(graph, personal, damping=TASK_DAMPING) if personal else global_ranks
    rank_of = dict(zip(graph.nodes, ranks, strict=True))
    seeds = [p for p in scope.seed_files if p in index.files]
    seeds.sort(key=lambda p: (-weights.get(p, 0.0), -rank_of.get(p, 0.0), p))
    fence = tuple(f + "/" for f in scope.fence)
    fenced = sorted((p for p in index.files if p not in seeds and (p.startswith(fence) or "" in scope.fence)),
                    key=lambda p: (-rank_of.get(p, 0.0), p))
    in_scope = seeds + fenced
    chosen = set(in_scope)
    # PageRank alone drifts toward hubs every seed reaches; the prior keeps the task's own files ahead
    others = [p for p in sorted(graph.nodes, key=lambda p: (-rank_of[p] * (1.0 + personal.get(p, 0.0)), p))
              if p not in chosen]
    frames: dict[str, list[int]] = {}
    for path, line in scope.frames:
        frames.setdefault(path, []).append(line)

    head = "\n# Task scope\n"
    if scope.fence:
        head += "Edits are allowed only under: " + ", ".join(f or "." for f in scope.fence) + "\n"
    if scope.frames:
        head += "Traceback (in repo): " + " -> ".join(f"{p}:{n}" for p, n in scope.frames[-8:]) + "\n"

    limit = max(8, min(MAX_FULL_DEFS, tokens // 50))

    tests = set(scope.tests)

    def full_of(p: str) -> str:
        if p in tests and p not in frames:  # the model reads the failing test itself; names suffice here
            return skeleton(p, index.files[p].defs)
        return full(p, index.files[p].defs, frames.get(p, []), limit)

    def skel_of(p: str) -> str:
        return skeleton(p, index.files[p].defs)

    def path_of(p: str) -> str:
        return p + "\n"

    # Most detail first: every in-scope file in full; else the heaviest j seeds in full and the rest as
    # skeletons (largest j that still names every seed); else seeds as bare paths.
    plans: list[tuple[Callable[[int, str], str], Callable[[str], str]]] = [(lambda i, p: full_of(p), skel_of)]
    for cut in range(len(seeds) - 1, -1, -1):
        plans.append(((lambda i, p, cut=cut: full_of(p) if i < cut else skel_of(p)), skel_of))
    plans.append(((lambda i, p: path_of(p)), path_of))
    text = ""
    for n, (detail, brief) in enumerate(plans):
        items = _largest_prefix(head, (detail(i, p) for i, p in enumerate(in_scope)), tokens)
        if len(items) < len(seeds) and n < len(plans) - 1:
            continue  # not every seed fits in this much detail: try less
        text = head + "".join(items)
        if len(items) == len(in_scope) and others:
            rel_head = "## Related files (ranked)\n"
            # files already in the repo map above are named, not repeated, so the ranking stays readable
            rel = _largest_prefix(text + rel_head, (f"{p} (in the map above)\n" if p in exclude else brief(p)
                                                    for p in others), tokens)
            if rel:
                text += rel_head + "".join(rel)
            text += _fill_names(others[len(rel):], tokens * CHARS_PER_TOKEN - len(text), "More: ")
        break
    return text


def render_summary(index: RepoIndex, scope: Scope, tokens: int) -> Summary:
    """The summary for the prompt prefix: repo-wide part first (shared across tasks), then the task."""
    tokens = max(0, int(tokens))
    notes = list(index.notes) + list(scope.notes)
    if not index.files:
        text = "# Repository map\nNo source files indexed.\n"
        return Summary(text if rough_tokens(text) <= tokens else "", "", notes)
    cache = TagCache(index.cache_dir)
    graph, ranks = file_graph(index, cache)
    repo_budget = int(tokens * REPO_SHARE)
    key = f"repo:{RENDER_VERSION}:{index.state_key()}:{repo_budget}"
    got = cache.get_derived(key)
    if got is None:
        got = render_repo_part(index, graph, ranks, repo_budget)
        cache.put_derived(key, got)
    repo_part, shown = got[0], list(got[1])
    cache.close()
    task_budget = tokens - rough_tokens(repo_part)
    task_part = render_task_part(index, graph, ranks, scope, task_budget, set(shown))
    # ceil() per part can overshoot the total by a token; trim the task part if it does
    while task_part and rough_tokens(repo_part + task_part) > tokens:
        task_part = task_part[: task_part.rstrip("\n").rfind("\n") + 1]
    return Summary(repo_part, task_part, notes)

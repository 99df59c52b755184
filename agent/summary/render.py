"""Render the summary to a token budget: a repo-wide part (repo state only) then a task-scoped part.

Both parts are pure functions of their inputs, with every ordering made explicit, so the same repo
state and task give byte-identical text: the property the prompt cache depends on.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.summary.cache import TagCache
from agent.summary.graph import FileGraph, build_graph, pagerank
from agent.summary.index import RepoIndex
from agent.summary.pyenv import is_auxiliary, is_test_path
from agent.summary.scope import SEED_MIN, Scope
from agent.summary.tags import HIDDEN, Def
from agent.tokens import CHARS_PER_TOKEN, rough_tokens

RENDER_VERSION = 5  # bump when rendering changes: cached repo parts and graphs are keyed on it
REPO_SHARE = 0.25        # of the token budget for the repo-wide part
TASK_DAMPING = 0.6       # lower than the global 0.85: the task ranking stays near its seeds
MAX_FULL_DEFS = 40       # definitions listed per in-scope file before "... more" (fewer on small budgets)
W_TEST_NEIGHBOUR = 3.0   # personalisation for files a target test references, times the link's share
MAX_SKELETON_CHARS = 240
MAX_TOP_DIRS = 12
EXEC_SHARE = 0.2         # of the task budget for the definitions the failing tests executed
NAMES_SHARE = 0.5        # of the task budget for naming files; the rest upgrades them to definitions
AUX_FACTOR = 0.15        # examples, fixtures and other tests rank this much lower unless the task names them


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
    name = (parts[-2] if len(parts) > 1 else "") if parts[-1] == "__init__" else parts[-1]
    # `json.dumps` in a test is the standard library's, not the project's `json/` package
    return [name] if name and name not in _stdlib_names() else []


def _stdlib_names() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names)


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
    seen: set[str] = set()
    members: set[str] = set()
    for name, kind, _line, _end, depth, _sig in defs:
        if kind in HIDDEN:
            continue
        if depth == 0:
            if name in seen:  # overloads, property setters, redefinitions: one entry
                continue
            seen.add(name)
            members = set()
            parts.append(f"{'class ' if kind == 'class' else ''}{name}{'()' if kind == 'function' else ''}")
        elif depth == 1 and kind == "method" and parts and parts[-1].startswith("class ") and name not in members:
            members.add(name)
            head, _, inner = parts[-1].partition("[")
            inner = inner.rstrip("]")
            parts[-1] = f"{head}[{inner + ', ' if inner else ''}{name}]"
    text = f"{path}: {'; '.join(parts)}" if parts else path
    return (text if len(text) <= MAX_SKELETON_CHARS else text[: MAX_SKELETON_CHARS - 1] + "…") + "\n"


def full(path: str, defs: list[Def], frame_lines: list[int], limit: int = MAX_FULL_DEFS) -> str:
    """Every definition with its line and signature; traceback lines marked where they fall."""
    lines = [f"## {path}"]
    defs = _collapse(d for d in defs if d[1] not in HIDDEN)
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


def _collapse(defs: Iterable[Def]) -> list[Def]:
    """One line per overloaded name: consecutive same-name functions at one depth (`@overload`
    stubs, property getter/setter) become the last one, whose signature is the implementation's,
    spanning from the first one's line."""
    out: list[Def] = []
    for d in defs:
        prev = out[-1] if out else None
        if (prev is not None and prev[0] == d[0] and prev[4] == d[4] and prev[1] in ("function", "method")
                and d[1] == prev[1]):
            out[-1] = (d[0], d[1], prev[2], d[3], d[4], d[5])
        else:
            out.append(d)
    return out


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
    short = f"# Repository map\n{len(index.files)} source files.\n"
    if rough_tokens(short) > tokens:
        return "", []
    order = sorted(range(len(graph.nodes)), key=lambda i: (-ranks[i], graph.nodes[i]))
    paths = [graph.nodes[i] for i in order]
    listed = "## Most referenced files\n"
    # how many files is decided with the short head, so a larger budget never lists fewer
    items = _largest_prefix(short + listed, (skeleton(p, index.files[p].defs) for p in paths), tokens)
    body = listed + "".join(items) if items else ""
    head = head if rough_tokens(head + body) <= tokens else short
    return head + body, paths[: len(items)]


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
                     tokens: int, exclude: set[str], nominal: int | None = None) -> str:
    """The task-scoped part: files in a fixed order for the task (seeds, fenced files, related files).

    Which files are named depends only on `nominal` (a budget that never shrinks as the total grows)
    and on the task: as many files of the order as fit as bare paths. What is left of `tokens` then
    upgrades them, in order, to full definitions or skeletons, and adds the target tests' source.
    So a larger budget never drops a file a smaller one named.
    """
    nominal = tokens if nominal is None else min(nominal, tokens)
    if tokens <= 0 or nominal <= 0:
        return ""
    weights = {p: w for p, w in scope.weights.items() if p in index.files}
    personal = _with_test_neighbours(graph, weights, [t for t in scope.tests if t in index.files])
    named = {p for p, w in weights.items() if w >= SEED_MIN}
    personal = {p: w * (AUX_FACTOR if p not in named and _aux_or_test(p) else 1.0) for p, w in personal.items()}
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
    def prior(p: str) -> float:
        return (1.0 + personal.get(p, 0.0)) * (AUX_FACTOR if p not in named and _aux_or_test(p) else 1.0)

    others = [p for p in sorted(graph.nodes, key=lambda p: (-rank_of[p] * prior(p), p))
              if p not in chosen and p not in exclude]  # files in the repo map above are not repeated
    frames: dict[str, list[int]] = {}
    for path, line in scope.frames:
        frames.setdefault(path, []).append(line)

    head = "\n# Task scope\n"
    if scope.fence:
        head += "Edits are allowed only under: " + ", ".join(f or "." for f in scope.fence) + "\n"
    if scope.frames:
        head += "Traceback (in repo): " + " -> ".join(f"{p}:{n}" for p, n in scope.frames[-8:]) + "\n"
    rel_head = "## Related files (ranked)\n"
    if scope.executed:  # as many of the executed definitions, best first, as fit their share
        lines = [f"{p}:{n} {name} ({score:.2f})\n" for p, n, name, score in scope.executed]
        cut = _largest_prefix("## Executed by the failing tests (Ochiai, best first)\n", lines,
                              int(nominal * EXEC_SHARE))
        if cut:
            head += "## Executed by the failing tests (Ochiai, best first)\n" + "".join(cut)

    # 1. names: the longest prefix of the order whose bare paths fit the nominal budget
    order = in_scope + others
    limit_chars = len(head) + int(nominal * NAMES_SHARE) * CHARS_PER_TOKEN
    used = len(head)
    count = 0
    for i, p in enumerate(order):
        extra = len(p) + 1 + (len(rel_head) if i == len(in_scope) else 0)
        if used + extra > limit_chars:
            break
        used += extra
        count += 1
    order = order[:count]
    if not order and rough_tokens(head) > tokens:
        return ""

    # 2. upgrades, in order, while the real budget allows: target test source, then detail per file
    limit = max(8, min(MAX_FULL_DEFS, tokens // 50))
    tests = set(scope.tests)
    room = tokens * CHARS_PER_TOKEN - used
    tests_text = ""
    for path, line, source in scope.test_sources:
        piece = f"## Target test {path}:{line}\n{source}\n"
        if len(piece) <= room and len(tests_text) + len(piece) <= tokens * CHARS_PER_TOKEN // 3:
            tests_text += piece
            room -= len(piece)
    texts: list[str] = []
    for i, p in enumerate(order):
        bare = p + "\n"
        forms = []
        if i < len(in_scope) and not (p in tests and p not in frames):
            forms.append(full(p, index.files[p].defs, frames.get(p, []), limit))
        forms.append(skeleton(p, index.files[p].defs))
        text = bare
        for form in forms:
            if len(form) - len(bare) <= room:
                text = form
                break
        room -= len(text) - len(bare)
        texts.append(text)
    body = "".join(texts[: len(in_scope)])
    if len(texts) > len(in_scope):
        body += rel_head + "".join(texts[len(in_scope):])
    return head + tests_text + body


def _aux_or_test(path: str) -> bool:
    return is_auxiliary(path) or is_test_path(path)


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
    # at least this much is left for the task whatever the repo part took: it grows with `tokens`
    nominal = tokens - repo_budget - 1
    task_part = render_task_part(index, graph, ranks, scope, task_budget, set(shown), nominal)
    # ceil() per part can overshoot the total by a token; trim the task part if it does
    while task_part and rough_tokens(repo_part + task_part) > tokens:
        task_part = task_part[: task_part.rstrip("\n").rfind("\n") + 1]
    return Summary(repo_part, task_part, notes)

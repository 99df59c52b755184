"""File graph from definitions and references, and a personalised PageRank over it.

Edge u -> v when u references a name v defines, weighted sqrt(count) / (number of definers), so
ubiquitous names (`__init__`, `get`) carry little. Everything iterates in sorted order, so results
do not depend on hash seeds or dict order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from operator import mul, sub

MAX_DEFINERS = 12   # a name defined in more files than this says nothing about where it comes from
MAX_OUT_EDGES = 64  # per file: the strongest links are kept, which bounds the iteration cost
DAMPING = 0.85
MIN_NAME = 3        # one- and two-letter names (`i`, `fh`) link unrelated files


@dataclass
class FileGraph:
    nodes: list[str]                          # sorted paths
    out: list[list[tuple[int, float]]]        # normalised out-edges per node, sorted by target
    definers: dict[str, tuple[int, ...]]      # name -> node ids defining it


def build_graph(defs_by_file: Mapping[str, list[str]], refs_by_file: Mapping[str, Mapping[str, int]]) -> FileGraph:
    nodes = sorted(defs_by_file)
    ids = {path: i for i, path in enumerate(nodes)}
    definers_l: dict[str, list[int]] = {}
    for path in nodes:
        i = ids[path]
        for name in sorted(set(defs_by_file[path])):
            definers_l.setdefault(name, []).append(i)
    definers = {name: tuple(v) for name, v in definers_l.items()}
    # names that can make an edge at all; each file's refs are intersected with them in C
    linkable = {name: (v, len(v), name.startswith("_") and not name.startswith("__"))
                for name, v in definers.items() if len(v) <= MAX_DEFINERS and len(name) >= MIN_NAME}
    names = linkable.keys()
    out: list[list[tuple[int, float]]] = []
    empty: dict[str, int] = {}
    for path in nodes:
        u = ids[path]
        acc: dict[int, float] = {}
        refs = refs_by_file.get(path, empty)
        for name in sorted(names & refs.keys()):
            targets, n, private = linkable[name]
            w = math.sqrt(refs[name]) / n
            if private:
                w *= 0.3
            for v in targets:
                if v != u:
                    acc[v] = acc.get(v, 0.0) + w
        edges = sorted(acc.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_OUT_EDGES]
        total = sum(w for _, w in edges)
        out.append(sorted((v, w / total) for v, w in edges) if total > 0 else [])
    return FileGraph(nodes, out, definers)


def pagerank(graph: FileGraph, personal: Mapping[str, float] | None = None, damping: float = DAMPING,
             iterations: int = 60, tol: float = 1e-6) -> list[float]:
    """Power iteration; `personal` (path -> weight) biases the teleport vector toward seeds.

    Pull form (each node sums its in-edges through map/sum) keeps the inner loop in C:
    on the stdlib graph this beat networkx.pagerank, and it needs no import.
    """
    n = len(graph.nodes)
    if n == 0:
        return []
    ids = {p: i for i, p in enumerate(graph.nodes)}
    tele = [0.0] * n
    if personal:
        for path in sorted(personal):
            if path in ids and personal[path] > 0:
                tele[ids[path]] += personal[path]
    total = sum(tele)
    tele = [t / total for t in tele] if total > 0 else [1.0 / n] * n
    in_src: list[list[int]] = [[] for _ in range(n)]
    in_w: list[list[float]] = [[] for _ in range(n)]
    for u, edges in enumerate(graph.out):
        for v, w in edges:
            in_src[v].append(u)
            in_w[v].append(w * damping)
    dangling_nodes = [u for u in range(n) if not graph.out[u]]
    rank = tele[:]
    for _ in range(iterations):
        get = rank.__getitem__
        base = 1.0 - damping + damping * sum(map(get, dangling_nodes))
        nxt = [sum(map(mul, map(get, src), ws)) + base * t for src, ws, t in zip(in_src, in_w, tele, strict=True)]
        delta = sum(map(abs, map(sub, nxt, rank)))
        rank = nxt
        if delta < tol:
            break
    return rank

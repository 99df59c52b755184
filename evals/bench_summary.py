"""Benchmark: the whole `agent summary --tokens 1024` process on a git repo of this Python's
standard library, cold (empty cache), warm, and after one file changes.

Goals (issue 5): cold < 6 s, warm < 1.0 s, one change < 1.5 s. Each run is a fresh process; time is
wall clock around it, memory is that child's peak RSS (wait4). The machine's load average is printed
too: on a shared box the cold figure moves with it, so CPU seconds are shown as well.

    python evals/bench_summary.py [--runs N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

GOALS = {"cold": 6.0, "warm": 1.0, "one change": 1.5}
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
           "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "installed_base": sys.base_prefix})["stdlib"])


def build_corpus(dest: Path) -> tuple[int, int]:
    """Copy every .py under the stdlib (not site-packages) into a fresh git repo; (files, lines)."""
    src = stdlib_dir()
    files = lines = 0
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if rel.parts[0] == "site-packages" or path.is_symlink():
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
        files += 1
        lines += out.read_bytes().count(b"\n")
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "stdlib"]):
        subprocess.run(["git", "-C", str(dest), *args], check=True, env=env, capture_output=True)
    return files, lines


def run_measured(repo: Path, cache: Path, *extra: str) -> tuple[float, float, int, bytes]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    # The public command itself (`agent summary`), CLI start-up included.
    cmd = [sys.executable, "-m", "agent.cli", "summary", "--repo", str(repo), "--tokens", "1024", *extra]
    out_file = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out_file, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"agent summary exited {proc.returncode}")
    out_file.seek(0)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out_file.read()


def compare_pagerank(repo: Path, cache: Path) -> None:
    """Own pull-form power iteration vs networkx.pagerank on the same stdlib file graph (if installed)."""
    from agent.summary.graph import build_graph, pagerank
    from agent.summary.index import RepoIndex
    from agent.summary.render import TASK_DAMPING, module_names

    index = RepoIndex.build(repo, cache_dir=cache)
    graph = build_graph({p: [d[0] for d in f.defs] + module_names(p) for p, f in index.files.items()},
                        index.refs())
    seed = {"json/decoder.py": 1.0}
    start = time.process_time()
    ours = pagerank(graph, seed, damping=TASK_DAMPING)
    own = time.process_time() - start
    edges = sum(len(e) for e in graph.out)
    try:
        import networkx as nx
    except ImportError:
        print(f"pagerank ({len(graph.nodes)} files, {edges} edges): own {own * 1000:.0f} ms; networkx not installed")
        return
    g = nx.DiGraph()
    g.add_nodes_from(range(len(graph.nodes)))
    g.add_weighted_edges_from((u, v, w) for u, es in enumerate(graph.out) for v, w in es)
    start = time.process_time()
    theirs = nx.pagerank(g, alpha=TASK_DAMPING, personalization={graph.nodes.index("json/decoder.py"): 1.0},
                         tol=1e-9)
    nx_time = time.process_time() - start
    top = sorted(range(len(ours)), key=lambda i: -ours[i])[:20]
    same = top == sorted(theirs, key=lambda i: -theirs[i])[:20]
    print(f"pagerank ({len(graph.nodes)} files, {edges} edges, CPU): own {own * 1000:.0f} ms, "
          f"networkx {nx_time * 1000:.0f} ms (+ its import); same top 20: {same}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="repetitions per phase (median reported)")
    ap.add_argument("--keep", help="build the corpus here and keep it")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-summary-"))
    repo, caches = work / "stdlib", work / "caches"
    try:
        if not (repo / ".git").exists():
            files, lines = build_corpus(repo)
        else:
            files = int(subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True,
                                       text=True).stdout.count("\n"))
            lines = 0
        print(f"corpus: {files} files, {lines} lines from {stdlib_dir()}; cores: {os.cpu_count()}; "
              f"load average: {os.getloadavg()[0]:.2f}")
        results: dict[str, list[tuple[float, float, int]]] = {"cold": [], "warm": [], "one change": []}
        outputs: set[bytes] = set()
        target = repo / "json" / "decoder.py"
        original = target.read_bytes()
        for i in range(args.runs):
            cache = caches / f"run{i}"
            shutil.rmtree(cache, ignore_errors=True)
            wall, cpu, rss, out = run_measured(repo, cache)
            results["cold"].append((wall, cpu, rss))
            outputs.add(out)
            wall, cpu, rss, out = run_measured(repo, cache)
            results["warm"].append((wall, cpu, rss))
            outputs.add(out)
            target.write_bytes(original + f"\n\ndef bench_added_{i}(x):\n    return x\n".encode())
            try:
                wall, cpu, rss, _ = run_measured(repo, cache)
                results["one change"].append((wall, cpu, rss))
            finally:
                target.write_bytes(original)
        seeded = run_measured(repo, caches / "run0", "--test", "test/test_json/test_decode.py")
        print(f"{'phase':<11} {'median s':>9} {'min s':>7} {'max s':>7} {'cpu s':>6} {'peak RSS':>9}  goal")
        for phase, rows in results.items():
            walls = [r[0] for r in rows]
            verdict = "ok" if statistics.median(walls) < GOALS[phase] else "MISSED"
            print(f"{phase:<11} {statistics.median(walls):>9.2f} {min(walls):>7.2f} {max(walls):>7.2f} "
                  f"{statistics.median(r[1] for r in rows):>6.2f} {max(r[2] for r in rows) / 1024:>7.0f}MB"
                  f"  < {GOALS[phase]} s {verdict}")
        print(f"warm, seeded with a test file: {seeded[0]:.2f} s, {seeded[2] / 1024:.0f} MB")
        compare_pagerank(repo, caches / "run0")
        print(f"cold and warm outputs byte-identical: {len(outputs) == 1}; "
              f"summary {len(next(iter(outputs)))} chars; load average now {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

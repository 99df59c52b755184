"""Benchmark of the Docker sandbox: exec overhead, start per task, environment builds of real projects.

Run: `python -m evals.bench_sandbox [--repeats N] [--projects attrs more-itertools] [--keep-images]`.
Needs a running engine and the base image (`agent sandbox build-base`); the project builds reach
PyPI through the host's pip configuration, like any environment build.
`--local` measures only the local sandbox: bubblewrap against unisolated, per command.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from sandbox.base_image import base_image_status
from sandbox.docker import DockerSandbox
from sandbox.engine import ensure_engine
from sandbox.environment import ensure_environment, environment_status
from sandbox.local import LocalSandbox

GOALS = {"overhead_ms": 150.0, "start_s": 1.5}
PYTEST = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
# Each project's own suite, as its CI runs it (minus type-checker plugins that take minutes).
SUITES = {
    "attrs": [*PYTEST, "tests", "-p", "no:xdist", "--ignore=tests/test_mypy.yml"],
    "more-itertools": [*PYTEST, "tests"],
}


def sample_repo(root: Path) -> Path:
    (root / "tests").mkdir(parents=True)
    for i in range(5):
        body = "\n".join(f"def test_{i}_{j}():\n    assert sum(range({j})) >= 0\n" for j in range(10))
        (root / "tests" / f"test_m{i}.py").write_text(body)
    return root


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def bench_overhead(image: str, repeats: int) -> dict[str, float]:
    """Median pytest run in the warm container minus the same run in a local subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = sample_repo(Path(tmp) / "repo")
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        local_cmd = [sys.executable, *PYTEST[1:]]

        def local() -> None:
            subprocess.run(local_cmd, cwd=repo, env=env, check=True, capture_output=True)

        local()
        local_times = timed(local, repeats)
        with DockerSandbox(repo, image=image) as box:
            cmd = ["env", "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1", *PYTEST]
            cmd[2] = "/opt/venv/bin/python"

            def inside() -> None:
                result = box.exec(cmd, 120)
                assert result.exit_code == 0, result.output

            inside()
            box_times = timed(inside, repeats)
            noop = timed(lambda: box.exec(["true"], 10), repeats)
    local_s, box_s = statistics.median(local_times), statistics.median(box_times)
    return {"local_ms": local_s * 1e3, "container_ms": box_s * 1e3, "overhead_ms": (box_s - local_s) * 1e3,
            "exec_true_ms": statistics.median(noop) * 1e3}


def bench_local(repeats: int) -> dict[str, float]:
    """Medians of a bare `true` and a 50-test pytest run in the local sandbox, unisolated and under bwrap."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        repo = sample_repo(Path(tmp) / "repo")
        cmd = ["env", "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1", sys.executable, *PYTEST[1:]]
        for name, isolate in (("plain", False), ("bwrap", True)):
            with LocalSandbox(repo, isolate=isolate) as box:
                if isolate and not box.isolated:
                    raise SystemExit(f"bubblewrap unavailable: {box.isolation}")
                box.exec(cmd, 120)
                out[f"{name}_true_ms"] = statistics.median(timed(lambda: box.exec(["true"], 10), repeats)) * 1e3
                out[f"{name}_pytest_ms"] = statistics.median(timed(lambda: box.exec(cmd, 120), repeats)) * 1e3
    return out


def print_local(repeats: int) -> None:
    o = bench_local(repeats)
    print(f"local sandbox ({repeats} repeats, medians): `true` plain {o['plain_true_ms']:.1f} ms, "
          f"bwrap {o['bwrap_true_ms']:.1f} ms (+{o['bwrap_true_ms'] - o['plain_true_ms']:.1f} ms); "
          f"pytest (50 tests) plain {o['plain_pytest_ms']:.0f} ms, bwrap {o['bwrap_pytest_ms']:.0f} ms "
          f"(+{o['bwrap_pytest_ms'] - o['plain_pytest_ms']:.0f} ms)")


def bench_start(image: str, repeats: int) -> dict[str, float]:
    starts, stops = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            box = DockerSandbox(Path(tmp), image=image)
            started = time.perf_counter()
            box.start()
            box.exec(["true"], 10)  # ready to serve, not just created
            starts.append(time.perf_counter() - started)
            started = time.perf_counter()
            box.stop()
            stops.append(time.perf_counter() - started)
    return {"start_s": statistics.median(starts), "stop_s": statistics.median(stops)}


def fetch_sdist(project: str, dest: Path) -> Path:
    """The project's source distribution from the package index (it holds the test suite)."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                           "-d", str(dest), project], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cannot download {project}'s sdist:\n{done.stderr}")
    archive = next(dest.glob("*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    return next(p for p in dest.iterdir() if p.is_dir())


def bench_project(project: str, python: str, keep: bool) -> dict[str, object]:
    client = ensure_engine()
    base_size = client.images.get(base_image_status(python)[1]).attrs["Size"]
    with tempfile.TemporaryDirectory() as tmp:
        repo = fetch_sdist(project, Path(tmp))
        exists, tag = environment_status(repo, python)
        if exists:
            client.images.remove(tag, force=True)  # measure a cold build
        started = time.perf_counter()
        tag = ensure_environment(repo, python, [], log=lambda _m: None)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        ensure_environment(repo, python, [], log=lambda _m: None)
        hit_s = time.perf_counter() - started
        size = client.images.get(tag).attrs["Size"]
        with DockerSandbox(repo, image=tag) as box:
            run = box.exec(SUITES.get(project, PYTEST), 600)
        if not keep:
            client.images.remove(tag, force=True)
    last = (run.stdout.strip().splitlines() or ["(no output)"])[-1]
    return {"project": repo.name, "build_s": build_s, "hit_s": hit_s, "size_mb": size / 1e6,
            "added_mb": (size - base_size) / 1e6, "tests": last, "test_s": run.duration}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--python", default="3.11")
    parser.add_argument("--projects", nargs="*", default=["attrs", "more-itertools"])
    parser.add_argument("--keep-images", action="store_true")
    parser.add_argument("--local", action="store_true", help="only the local sandbox (no engine needed)")
    args = parser.parse_args(argv)
    if args.local:
        print_local(args.repeats)
        return 0

    exists, base = base_image_status(args.python)
    if not exists:
        print(f"base image {base} missing: run `agent sandbox build-base --python {args.python}`",
              file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory() as tmp:
        image = ensure_environment(Path(tmp), args.python, [], log=lambda _m: None)

    print(f"Docker sandbox benchmark (base {base}, env {image}, {args.repeats} repeats, medians)")
    o = bench_overhead(image, args.repeats)
    ok = "OK" if o["overhead_ms"] < GOALS["overhead_ms"] else "MISSED"
    print(f"1. pytest run (50 tests): local {o['local_ms']:.0f} ms, "
          f"warm container {o['container_ms']:.0f} ms, "
          f"extra {o['overhead_ms']:.0f} ms  [goal < {GOALS['overhead_ms']:.0f} ms: {ok}]; "
          f"bare exec round trip {o['exec_true_ms']:.0f} ms")
    s = bench_start(image, args.repeats)
    ok = "OK" if s["start_s"] < GOALS["start_s"] else "MISSED"
    print(f"2. container start per task (to first exec): {s['start_s']:.2f} s  "
          f"[goal < {GOALS['start_s']} s: {ok}]; "
          f"stop {s['stop_s']:.2f} s")
    print("3. environment images of real projects (sdist from PyPI, deps + test extras, cold build):")
    for project in args.projects:
        r = bench_project(project, args.python, args.keep_images)
        print(f"   {r['project']}: build {r['build_s']:.1f} s (cache hit {r['hit_s']:.2f} s), image "
              f"{r['size_mb']:.0f} MB (+{r['added_mb']:.0f} MB over base); own tests in sandbox: "
              f"{r['tests']} ({r['test_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

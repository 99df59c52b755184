"""Where instances run: local worker processes (default) or Ray (optional, for sets that outgrow a machine).

An executor maps a picklable function over plain-dict items and yields results
as they complete, so the caller can show progress and append to the
predictions file as each instance finishes (which is what makes runs resumable).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

Job = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def default_workers() -> int:
    """min(2, cores): each instance runs a sandbox and tests; more would just contend."""
    return max(1, min(2, os.cpu_count() or 1))


class Executor(Protocol):
    def run(self, fn: Job, items: list[dict[str, Any]], shared: dict[str, Any]) -> Iterator[dict[str, Any]]:
        ...


class LocalExecutor:
    """A process pool bounded by cores; workers=1 runs in this process (easy to debug, no pickling)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, min(workers or default_workers(), os.cpu_count() or 1))

    def run(self, fn: Job, items: list[dict[str, Any]], shared: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if self.workers == 1:
            for item in items:
                yield fn(item, shared)
            return
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            pending: set[Future[dict[str, Any]]] = {pool.submit(fn, item, shared) for item in items}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()


class RayExecutor:
    """Ray tasks, one per instance (`pip install ray`).

    `address` joins an existing cluster (`ray start --head` on the machines); without it Ray starts a
    single-node one on this machine sized to `workers` CPUs (Ray 2.60 removed `local_mode`; this is
    what the tests use instead). Each task asks for one CPU, so Ray bounds the concurrency.
    """

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise RuntimeError("the Ray executor needs Ray: pip install 'ray[default]'") from exc
        self.ray = ray
        self.workers = workers or default_workers()
        self.address = address

    def run(self, fn: Job, items: list[dict[str, Any]], shared: dict[str, Any]) -> Iterator[dict[str, Any]]:
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
        try:
            remote = ray.remote(num_cpus=1, max_retries=0)(fn)
            shared_ref = ray.put(shared)
            pending = [remote.remote(item, shared_ref) for item in items]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield ray.get(ref)
        finally:
            if started_here:
                ray.shutdown()


def make_executor(kind: str, workers: int | None = None, address: str | None = None) -> Executor:
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(workers, address)
    raise ValueError(f"unknown executor {kind!r}: use local or ray")

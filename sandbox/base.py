"""The sandbox interface: start once per task, exec many times, stop always."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


class SandboxError(RuntimeError):
    """The sandbox cannot be used at all (no engine, no image); the CLI maps it to exit 3."""


@dataclass
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    oom_killed: bool = False

    @property
    def output(self) -> str:
        return self.stdout + (("\n" + self.stderr) if self.stderr else "")


class Sandbox(ABC):
    """A place to run commands against one worktree.

    `kind` names it in the report. `read_only` sandboxes must refuse to let a
    command change the worktree (review mode relies on it).
    """

    kind: str = "abstract"

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.root = Path(root)
        self.read_only = read_only

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def exec(self, command: list[str], timeout: float) -> ExecResult:
        """Run `command` (argv, cwd = repo root) and kill its whole process tree after `timeout` s."""

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

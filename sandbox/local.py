"""Run commands on the host, in the repository's own Python environment.

The local sandbox is the no-Docker path: a subprocess per command, in its own
process group so a timeout kills everything the command spawned (a test that
forks a sleeper must not outlive the run), with output kept bounded in memory.
A host process cannot be denied writes to the worktree, so in read-only mode the
commands run in a scratch copy of it (without .git and virtualenvs), removed at stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO

from sandbox.base import ExecResult, Sandbox, SandboxError

# Credentials of the agent itself; code the model wrote must not be able to read them.
SECRET_ENV = ("GLM_API_KEY", "ZAI_API_KEY", "GITHUB_TOKEN", "GH_TOKEN",
              "ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
READER_GRACE = 3.0  # seconds to wait for pipes a detached grandchild may still hold open
SCRATCH_SKIP = (".git", ".venv", "venv", "__pycache__", "node_modules", ".tox", ".nox", ".mypy_cache",
                ".pytest_cache", ".ruff_cache")


def repo_python(root: Path, environ: dict[str, str] | None = None) -> tuple[str, Path | None]:
    """The interpreter that runs the repo's code, and its venv dir if it lives in one.

    Order (DESIGN.md): an active virtualenv, the repo's `.venv/`, `python3`/`python`
    on PATH; the agent's own interpreter only when there is nothing else.
    """
    env = os.environ if environ is None else environ
    active = env.get("VIRTUAL_ENV")
    if active:
        exe = Path(active) / "bin" / "python"
        if os.access(exe, os.X_OK):
            return str(exe), Path(active)
    local = Path(root) / ".venv"
    exe = local / "bin" / "python"
    if os.access(exe, os.X_OK):
        return str(exe), local.resolve()
    for name in ("python3", "python"):
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return found, None
    return sys.executable, None


class _BoundedReader(threading.Thread):
    """Drain one pipe, keeping the first and last `limit / 2` bytes and counting the rest."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_len = 0
        self.dropped = 0

    def run(self) -> None:
        try:
            while True:
                chunk = self.stream.read1(65536)
                if not chunk:
                    break
                room = self.half - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail.append(chunk)
                    self.tail_len += len(chunk)
                    while self.tail_len - len(self.tail[0]) >= self.half:
                        self.tail_len -= len(self.tail[0])
                        self.dropped += len(self.tail.popleft())
        except (OSError, ValueError):
            pass

    def text(self) -> str:
        tail = b"".join(self.tail)
        if self.tail_len > self.half:
            extra = self.tail_len - self.half
            self.dropped += extra
            tail = tail[extra:]
        head = self.head.decode("utf-8", errors="replace")
        rest = tail.decode("utf-8", errors="replace")
        if self.dropped:
            return f"{head}\n[... {self.dropped} bytes of output cut ...]\n{rest}"
        return head + rest


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class LocalSandbox(Sandbox):
    """Commands run as host subprocesses with cwd = the worktree; see the module docstring."""

    kind = "local"

    def __init__(self, root: Path, *, read_only: bool = False, env_root: Path | None = None,
                 max_output_bytes: int = 2_000_000) -> None:
        """`env_root`: where the repo's `.venv` is (the user's checkout when `root` is a worktree)."""
        super().__init__(root, read_only=read_only)
        self.max_output_bytes = max_output_bytes
        self.python, self.venv = repo_python(Path(env_root) if env_root is not None else self.root)
        self._scratch: Path | None = None

    @property
    def cwd(self) -> Path:
        """Where commands run: the worktree, or its scratch copy in read-only mode."""
        return self._scratch / self.root.name if self._scratch is not None else self.root

    def start(self) -> None:
        if not self.root.is_dir():
            raise SandboxError(f"{self.root}: not a directory")
        if self.read_only and self._scratch is None:
            scratch = Path(tempfile.mkdtemp(prefix="agent-readonly-"))
            try:
                shutil.copytree(self.root, scratch / self.root.name, symlinks=True,
                                ignore=shutil.ignore_patterns(*SCRATCH_SKIP))
            except (OSError, shutil.Error) as exc:
                shutil.rmtree(scratch, ignore_errors=True)
                raise SandboxError(f"cannot copy {self.root} for a read-only run: {exc}") from exc
            self._scratch = scratch

    def stop(self) -> None:
        """Each exec cleans up its own process group; only a read-only scratch copy is left to remove."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if self.venv is not None:
            env["VIRTUAL_ENV"] = str(self.venv)
            env["PATH"] = str(self.venv / "bin") + os.pathsep + env.get("PATH", "")
        return env

    def argv(self, command: list[str]) -> list[str]:
        if command and command[0] == "python":
            return [self.python, *command[1:]]
        return list(command)

    def exec(self, command: list[str], timeout: float) -> ExecResult:
        if self.read_only and self._scratch is None:
            self.start()
        if not command:
            raise ValueError("empty command")
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                self.argv(command), cwd=self.cwd, env=self.environment(), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )
        except OSError as exc:
            return ExecResult(127, "", f"cannot run {command[0]}: {exc}", time.monotonic() - started)
        readers = [_BoundedReader(proc.stdout, self.max_output_bytes),
                   _BoundedReader(proc.stderr, self.max_output_bytes)]
        for reader in readers:
            reader.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # The whole group goes, on timeout and after a normal exit alike: leftovers
            # (servers, sleepers) would otherwise hold the pipes and outlive the task.
            _kill_group(proc.pid)
            proc.wait()
        deadline = time.monotonic() + READER_GRACE
        for reader in readers:
            reader.join(max(deadline - time.monotonic(), 0))
        held = any(reader.is_alive() for reader in readers)
        stdout, stderr = readers[0].text(), readers[1].text()
        if held:
            stderr += "\n[a detached process kept the output open; stopped reading]"
        if timed_out:
            stderr += f"\n[timed out after {timeout:g}s; the process group was killed]"
        return ExecResult(proc.returncode, stdout, stderr, time.monotonic() - started, timed_out=timed_out)

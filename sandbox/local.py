"""Run commands on the host, in the repository's own Python environment, isolated where possible.

The local sandbox is the no-Docker path: a subprocess per command, in its own
process group so a timeout kills everything the command spawned (a test that
forks a sleeper must not outlive the run), with output kept bounded in memory.
Each command runs under bubblewrap when it works here (sandbox/bwrap.py says what
that hides); otherwise unisolated, and `isolation` says so for the run line and
the report. The child environment is an allowlist, and PYTHONPATH puts the
worktree's import roots first (sandbox/importroots.py), so the code under test is
the worktree's. Read-only mode binds the worktree read-only under bubblewrap;
unisolated, it runs in a scratch copy (without .git and virtualenvs), removed at stop.
"""

from __future__ import annotations

import json
import os
import re
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
from sandbox.bwrap import Plan, find_bwrap, make_plan
from sandbox.importroots import CHECK_CODE, import_roots, top_level_packages

READER_GRACE = 3.0  # seconds to wait for pipes a detached grandchild may still hold open
SCRATCH_SKIP = (".git", ".venv", "venv", "__pycache__", "node_modules", ".tox", ".nox", ".mypy_cache",
                ".pytest_cache", ".ruff_cache")
# The child's environment: these names from ours (plus LC_*), nothing else; secrets never match.
PASS_ENV = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR", "VIRTUAL_ENV",
            "PYTHONHASHSEED", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONWARNINGS", "PYTHONFAULTHANDLER",
            "PYTHONDEVMODE", "PYTHONUNBUFFERED", "PYTHONNOUSERSITE", "PYTHONTRACEMALLOC"}


def agent_private_dirs(environ: dict[str, str] | None = None) -> list[Path]:
    """The agent's own state a command must not see: its home (other runs) and its config dir."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    agent_home = Path(env.get("AGENT_HOME") or home / ".local" / "share" / "agent")
    config = Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "agent"
    return [agent_home, config]


def repo_python(root: Path, environ: dict[str, str] | None = None,
                configured: str | None = None) -> tuple[str, Path | None, str]:
    """The interpreter that runs the repo's code, its venv dir if it lives in one, and where it came from.

    Order (DESIGN.md): the repo's `.venv/` (in the user's checkout), the active virtualenv
    (which may also hold the agent), `[sandbox] python` (a path, a name, or a version like
    "3.11" meaning `python3.11`), `python3`/`python` on PATH; the agent's own interpreter last.
    """
    env = os.environ if environ is None else environ
    local = Path(root) / ".venv"
    if os.access(local / "bin" / "python", os.X_OK):
        return str(local / "bin" / "python"), local.resolve(), "repo .venv"
    active = env.get("VIRTUAL_ENV")
    if active and os.access(Path(active) / "bin" / "python", os.X_OK):
        return str(Path(active) / "bin" / "python"), Path(active), "active virtualenv"
    if configured and configured.strip().lower() != "auto":  # "auto": the project's choice, for Docker
        name = f"python{configured}" if re.fullmatch(r"\d+(\.\d+)*", configured) else configured
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return found, None, "[sandbox] python"
    for name in ("python3", "python"):
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return found, None, f"{name} on PATH"
    return sys.executable, None, "the agent's interpreter"


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
                 max_output_bytes: int = 2_000_000, python: str | None = None,
                 hide: list[Path] | None = None, extra_env: dict[str, str] | None = None,
                 isolate: bool = True) -> None:
        """`env_root`: where the repo's `.venv` is (the user's checkout when `root` is a worktree);
        `python`: `[sandbox] python`; `hide`: more paths commands must not see (besides the agent's
        home and config dir); `extra_env`: variables the caller passes on explicitly;
        `isolate=False`: never use bubblewrap (the evals grader, tests of the unisolated path)."""
        super().__init__(root, read_only=read_only)
        self.max_output_bytes = max_output_bytes
        self.env_root = Path(env_root) if env_root is not None else self.root
        self.python, self.venv, self.python_source = repo_python(self.env_root, configured=python)
        self.hide = [*agent_private_dirs(), *(hide or [])]
        self.extra_env = dict(extra_env or {})
        self.bwrap, self.isolation = find_bwrap() if isolate else (None, "none (turned off by the caller)")
        self._scratch: Path | None = None  # read-only copy of the worktree (unisolated only)
        self._private: Path | None = None  # replacement files for bubblewrap's mounts
        self._plan: Plan | None = None

    @property
    def isolated(self) -> bool:
        return self.bwrap is not None

    @property
    def cwd(self) -> Path:
        """Where commands run: the worktree, or its scratch copy in unisolated read-only mode."""
        return self._scratch / self.root.name if self._scratch is not None else self.root

    def import_roots(self) -> list[Path]:
        """The worktree's import roots as commands see them (in the scratch copy when there is one)."""
        return import_roots(self.cwd)

    def describe(self) -> str:
        """One line for the run line: the interpreter, where it came from, and what is imported first."""
        roots = [p.relative_to(self.cwd.resolve()).as_posix() or "." for p in self.import_roots()]
        roots = ["." if r == "." else r + "/" for r in roots]
        return f"python {self.python} ({self.python_source}); imports the worktree first: {', '.join(roots)}"

    def start(self) -> None:
        if not self.root.is_dir():
            raise SandboxError(f"{self.root}: not a directory")
        if self.isolated and self._plan is None:
            self._private = Path(tempfile.mkdtemp(prefix="agent-bwrap-"))
            # Visible (read-only) even under the private /tmp: the user's checkout, its venv, the interpreter.
            needed = [p for p in (self.env_root, self.venv, Path(self.python).resolve().parent.parent) if p]
            self._plan = make_plan(self.bwrap, self.root, writable=not self.read_only, scratch=self._private,
                                   needed=needed, hide=self.hide)
        if self.read_only and not self.isolated and self._scratch is None:
            scratch = Path(tempfile.mkdtemp(prefix="agent-readonly-"))
            try:
                shutil.copytree(self.root, scratch / self.root.name, symlinks=True,
                                ignore=shutil.ignore_patterns(*SCRATCH_SKIP))
            except (OSError, shutil.Error) as exc:
                shutil.rmtree(scratch, ignore_errors=True)
                raise SandboxError(f"cannot copy {self.root} for a read-only run: {exc}") from exc
            self._scratch = scratch

    def stop(self) -> None:
        """Each exec cleans up its own process group; only the scratch copy and mount files are left."""
        for attr in ("_scratch", "_private"):
            path = getattr(self, attr)
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
                setattr(self, attr, None)
        self._plan = None

    def environment(self) -> dict[str, str]:
        """An allowlist of our variables, the venv, PYTHONPATH = the import roots, and the caller's extras."""
        env = {k: v for k, v in os.environ.items() if k in PASS_ENV or k.startswith("LC_")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in self.import_roots())
        if self.venv is not None:
            env["VIRTUAL_ENV"] = str(self.venv)
            env["PATH"] = str(self.venv / "bin") + os.pathsep + env.get("PATH", "")
        if self.isolated:
            env["TMPDIR"] = "/tmp"  # the private tmpfs; the host's TMPDIR is read-only inside
            # The real home is read-only inside: tests and tools that write caches or dotfiles
            # under ~ get the private /tmp (as in Docker); user-site packages stay importable.
            user_base = Path(env.get("HOME") or Path.home()) / ".local"
            if (user_base / "lib").is_dir():
                env["PYTHONUSERBASE"] = str(user_base)
            env["HOME"] = "/tmp"
        env.update(self.extra_env)
        return env

    def argv(self, command: list[str]) -> list[str]:
        if command and command[0] == "python":
            command = [self.python, *command[1:]]
        if self._plan is not None:
            return self._plan.argv(list(command), self.cwd)
        return list(command)

    def foreign_imports(self, timeout: float = 60) -> list[tuple[str, str]]:
        """The project's top-level packages that would not import from the worktree, with where they
        would import from instead ("not found" when nowhere); empty when all come from the worktree.

        Run in the sandbox with the test command's interpreter and environment, so an editable
        install or an installed release that wins there is caught before any model call.
        """
        names = top_level_packages(self.cwd, self.import_roots())
        if not names:
            return []
        result = self.exec(["python", "-c", CHECK_CODE, *names], timeout)
        try:
            found = json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            line = (result.output.strip().splitlines() or [f"exit {result.exit_code}"])[-1]
            return [(name, f"the import check did not run: {line}") for name in names]
        root = self.cwd.resolve()
        bad = []
        for name in names:
            where = found.get(name)
            if where is None:
                bad.append((name, "not found"))
            elif where.startswith("error: ") or not Path(where).resolve().is_relative_to(root):
                bad.append((name, where))
        return bad

    def exec(self, command: list[str], timeout: float) -> ExecResult:
        if (self.isolated and self._plan is None) or (self.read_only and self.cwd == self.root
                                                      and not self.isolated):
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

"""The Docker sandbox: one warm, network-less, read-only container per task, exec'd per command.

A warm container makes each command cost one `exec` (~0.1 s) instead of a container start.
Every command runs under `timeout -s KILL`, which puts itself in a new process group and kills
the whole group; a host-side backstop sweeps the container when even that does not return.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

from docker.errors import APIError, ImageNotFound, NotFound
from docker.types import Mount

from sandbox.base import ExecResult, Sandbox, SandboxError
from sandbox.base_image import VENV
from sandbox.engine import (
    LABEL,
    LABEL_HOST,
    LABEL_PID,
    LABEL_STARTED,
    connect,
    ensure_engine,
    owner_labels,
    process_start,
)
from sandbox.envplan import import_roots
from sandbox.worktreesite import ROOTS_VAR, write_site

IDLE_NAME = "agent-sandbox-idle"
BACKSTOP_GRACE = 5.0  # seconds past the in-container timeout before the host steps in
TMPFS = "rw,exec,nosuid,nodev,size=512m,mode=1777"
SITE_DIR = "/tmp/.agent-site"  # the worktree-first sitecustomize, read-only (a mountpoint in the tmpfs)
PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Kill every process in the container except init, the idle keeper and this shell.
SWEEP = (
    "for d in /proc/[0-9]*; do p=${d#/proc/}; case $p in 1|$$) continue;; esac; "
    f"case \"$(tr '\\0' ' ' < $d/cmdline 2>/dev/null)\" in {IDLE_NAME}*) continue;; esac; "
    "kill -9 $p 2>/dev/null; done; true"
)

_live: dict[str, DockerSandbox] = {}
_lock = threading.Lock()
_hooks_installed = False


class DockerSandbox(Sandbox):
    kind = "docker"

    def __init__(self, root: Path, *, image: str, read_only: bool = False, memory: str = "2g",
                 cpus: float = 1.5, pids: int = 512, network: str = "none") -> None:
        super().__init__(Path(root).resolve(), read_only=read_only)
        self.image = image
        self.memory, self.cpus, self.pids, self.network = memory, cpus, pids, network
        self.container = None
        self._placeholder: Path | None = None
        self._site: Path | None = None  # the sitecustomize that keeps the worktree's packages first
        self.name = f"agent-sandbox-{os.getpid()}-{secrets.token_hex(4)}"

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.container is not None:
            return
        client = ensure_engine()
        try:
            client.images.get(self.image)
        except ImageNotFound:
            raise SandboxError(f"sandbox image {self.image} is missing; fix: `agent sandbox build-base`, "
                               "then rerun (the environment image is built on first use)") from None
        gc(client=client)
        _install_hooks()
        stat = self.root.stat()
        # The code under test is the worktree's: its import roots come before site-packages, where a
        # test dependency may have installed another copy of the project.
        roots = ":".join("/repo" if r == "." else f"/repo/{r}" for r in import_roots(self.root))
        # ... and ahead of a package an installed `-nspkg.pth` put in sys.modules at startup (a legacy
        # install of a pkg_resources namespace package, jaraco.functools 2016): the sitecustomize forgets it
        self._site = write_site(Path(tempfile.mkdtemp(prefix="agent-dockersite-")))
        self._site.chmod(0o755)
        (self._site / "sitecustomize.py").chmod(0o644)
        environment = {"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "PATH": PATH, "VIRTUAL_ENV": VENV,
                       "LANG": "C.UTF-8", "PYTEST_ADDOPTS": "-p no:cacheprovider",
                       "PYTHONPATH": f"{SITE_DIR}:{roots}", ROOTS_VAR: roots, "GIT_CEILING_DIRECTORIES": "/"}
        self.container = client.containers.run(
            self.image, ["bash", "-c", f"exec -a {IDLE_NAME} sleep infinity"], detach=True, name=self.name,
            init=True, network_mode=self.network, read_only=True, tmpfs={"/tmp": TMPFS},
            mounts=[Mount("/repo", str(self.root), type="bind", read_only=self.read_only), *self._hide_git(),
                    Mount(SITE_DIR, str(self._site), type="bind", read_only=True)],
            working_dir="/repo", user=f"{stat.st_uid}:{stat.st_gid}", environment=environment,
            mem_limit=self.memory, memswap_limit=self.memory, pids_limit=self.pids,
            nano_cpus=int(self.cpus * 1e9), security_opt=["no-new-privileges"], cap_drop=["ALL"],
            labels=owner_labels())
        with _lock:
            _live[self.name] = self

    def _hide_git(self) -> list[Mount]:
        """Cover the worktree's `.git` read-only (its pointer and config stay out of reach): git in the
        container then finds no repository, versioneer-style tools fall back to "0+unknown" instead of
        tripping over a gitdir that points outside the container, and no code inside can rewrite the
        pointer host git follows (a mount point cannot be written, replaced or renamed from inside)."""
        dot_git = self.root / ".git"
        if dot_git.is_dir():
            return [Mount("/repo/.git", None, type="tmpfs", read_only=True, tmpfs_size=4096)]
        if not dot_git.is_file():
            return []
        self._placeholder = Path(tempfile.mkdtemp(prefix="agent-nogit-"))
        (self._placeholder / "git").write_text("gitdir: /nonexistent/no-repository-in-the-sandbox\n")
        (self._placeholder / "git").chmod(0o444)
        return [Mount("/repo/.git", str(self._placeholder / "git"), type="bind", read_only=True)]

    def stop(self) -> None:
        container, self.container = self.container, None
        for placeholder in (self._placeholder, self._site):
            if placeholder is not None:
                shutil.rmtree(placeholder, ignore_errors=True)
        self._placeholder = self._site = None
        with _lock:
            _live.pop(self.name, None)
        if container is not None:
            try:
                container.remove(force=True)
            except NotFound:
                pass

    def restart(self) -> None:
        self.stop()
        self.name = f"agent-sandbox-{os.getpid()}-{secrets.token_hex(4)}"
        self.start()

    # --- commands ----------------------------------------------------------------------------
    def exec(self, command: list[str], timeout: float) -> ExecResult:
        if self.container is None:
            self.start()
        argv = list(command)
        if argv and argv[0] in ("python", "python3"):
            argv[0] = f"{VENV}/bin/python"
        limit = max(1, int(timeout + 0.999))
        wrapped = ["timeout", "-s", "KILL", f"{limit}s", *argv]
        started_wall, started = time.time(), time.monotonic()
        try:
            code, out, err, backstop = self._run(wrapped, limit + BACKSTOP_GRACE)
        except APIError as exc:
            if not self._alive():
                self.restart()  # the container died (e.g. killed from outside): one fresh try
                code, out, err, backstop = self._run(wrapped, limit + BACKSTOP_GRACE)
            else:
                raise SandboxError(f"docker exec failed: {exc}") from exc
        duration = time.monotonic() - started
        timed_out = backstop or (code in (124, 137) and duration >= limit - 0.05)
        oom = code == 137 and not timed_out and self._oom_since(started_wall)
        if timed_out or oom:
            self._sweep()  # anything that left the process group (setsid, daemons) goes too
        return ExecResult(exit_code=code, stdout=out, stderr=err, duration=duration, timed_out=timed_out,
                          oom_killed=oom)

    def _run(self, argv: list[str], deadline: float) -> tuple[int, str, str, bool]:
        api = connect(timeout=None).api  # a test run may print nothing for minutes
        exec_id = api.exec_create(self.container.id, argv, workdir="/repo")["Id"]
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        future = pool.submit(api.exec_start, exec_id, demux=True)
        try:
            stdout, stderr = future.result(timeout=deadline)
        except concurrent.futures.TimeoutError:
            self._sweep()
            try:
                stdout, stderr = future.result(timeout=BACKSTOP_GRACE)
            except concurrent.futures.TimeoutError:
                self.restart()
                return 137, "", "sandbox: command did not stop; container restarted", True
            pool.shutdown(wait=False)
            return 137, _text(stdout), _text(stderr), True
        finally:
            pool.shutdown(wait=False)
        code = api.exec_inspect(exec_id).get("ExitCode")
        return (code if code is not None else -1), _text(stdout), _text(stderr), False

    def _sweep(self) -> None:
        try:
            self.container.exec_run(["sh", "-c", SWEEP])
        except (APIError, AttributeError):
            pass

    def _alive(self) -> bool:
        try:
            self.container.reload()
        except NotFound:
            return False
        return self.container.status == "running"

    def _oom_since(self, since: float) -> bool:
        """Did the container's cgroup hit its memory limit since `since` (an `oom` event)?"""
        client = ensure_engine()
        events = client.events(since=f"{since - 0.5:.3f}", until=f"{time.time() + 0.1:.3f}", decode=True,
                               filters={"container": self.container.id, "event": "oom"})
        return any(True for _ in events)


def _text(data: bytes | None) -> str:
    return data.decode(errors="replace") if data else ""


# --- clean-up: at exit, on SIGTERM/SIGHUP, and of strays left by killed runs ---------------------

def _cleanup_all() -> None:
    with _lock:
        boxes = list(_live.values())
    for box in boxes:
        try:
            box.stop()
        except Exception:  # best effort at exit: the engine may be gone
            pass


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds `with` blocks, then atexit removes what is left


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_cleanup_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _raise_exit)


def _owner_gone(labels: dict[str, str]) -> bool:
    if labels.get(LABEL_HOST) != socket.gethostname():
        return False  # another machine's process: we cannot tell
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    started = labels.get(LABEL_STARTED)
    return bool(started) and process_start(pid) not in ("", started)


def gc(force: bool = False, client=None) -> list[str]:
    """Remove labelled sandbox containers whose owner process is dead (all of them with `force`)."""
    client = client or ensure_engine()
    removed = []
    # another run may remove its container between the listing and the inspect of each: not an error
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}, ignore_removed=True):
        if force or _owner_gone(container.labels):
            try:
                container.remove(force=True)
                removed.append(container.name)
            except NotFound:
                pass
    return removed

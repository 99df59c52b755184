"""The container an environment build runs in: unprivileged, limited, and watched for leaked credentials.

The build runs the repository's own setup code (setup.py, build backends, `setup` commands), so
it gets no more than that code needs: a fixed non-root uid, no capabilities, no new privileges,
memory/pid/CPU limits, the network only while installing (and not at all when every package
source is local), and a copy of the repository without `.git`. Index credentials are passed
per `exec` only; before the commit, the build's changes are searched for them (`scan`).
"""

from __future__ import annotations

import io
import os
import re
import shlex
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from docker.errors import APIError, NotFound

from sandbox.base import SandboxError
from sandbox.engine import connect

BUILD_UID = 10001  # not root, not a typical host user: the image does not depend on who built it
MEMORY = "4g"
PIDS = 2048
STEP_TIMEOUT = 1800  # seconds, per step, enforced inside the container
PROGRESS_EVERY = 2.0  # seconds between progress lines
SKIP_DIRS = {".git", ".hg", ".svn", ".tox", ".nox", ".venv", "node_modules", "__pycache__", ".mypy_cache",
             ".pytest_cache", ".ruff_cache"}
# Config files a setup step may write with an index URL in them: removed (not fatal) when they do.
SCRUBBABLE = {"pip.conf", "pip.ini", "uv.toml", ".netrc", ".pypirc", "pydistutils.cfg", ".pydistutils.cfg"}
_ERROR_LINE = re.compile(r"error|×|╰─▶|fatal|exception|failed|not found|no matching", re.IGNORECASE)

Log = Callable[[str], None]


def tar_tree(root: Path, arcname: str, uid: int = BUILD_UID) -> tempfile.SpooledTemporaryFile:
    """The tree as a tar owned by the build user, without VCS metadata or caches (never `.git`)."""
    out = tempfile.SpooledTemporaryFile(max_size=64 << 20)

    def own(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if set(Path(info.name).parts) & SKIP_DIRS or info.name.endswith(".pyc"):
            return None
        if not (info.isfile() or info.isdir() or info.issym()):
            return None
        info.uid = info.gid = uid
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(str(root), arcname=arcname, filter=own)
    out.seek(0)
    return out


def tar_files(files: dict[str, bytes], uid: int = BUILD_UID, mode: int = 0o644,
              owners: dict[str, int] | None = None) -> bytes:
    """Files (None: a directory) owned by `uid`, or by `owners[name]` where given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.uid = info.gid = (owners or {}).get(name, uid)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def last_error(text: str) -> str:
    """The line of an installer's output that best says why it failed: the failing build's own last
    words (pip's `[end of output]`, uv's `[stderr]` block) when there are some, else the last error."""
    lines = [ln.strip() for ln in text.splitlines()]
    for marker in ("[end of output]", "[stderr]"):
        if marker in lines:
            at = lines.index(marker)
            block = lines[:at] if marker == "[end of output]" else lines[at + 1:]
            if marker == "[stderr]":
                block = block[:next((i for i, ln in enumerate(block) if ln.startswith(("hint:", "[stdout]"))),
                                    len(block))]
            words = [ln for ln in block if ln]
            if words:
                return words[-1][:300]
    lines = [ln for ln in lines if ln]
    for line in reversed(lines):
        if _ERROR_LINE.search(line) and not line.lower().startswith(("warning", "note:", "hint:")):
            return line[:300]
    return lines[-1][:300] if lines else "(no output)"


class BuildBox:
    """One build container; `run` streams a step's output to `log`, `commit` keeps the result."""

    def __init__(self, client, base: str, name: str, *, network: bool, mounts: list, labels: dict[str, str],
                 log: Log, cpus: float | None = None) -> None:
        self.client, self.log, self.network = client, log, network
        cpus = cpus or float(min(2, os.cpu_count() or 1))
        self.container = client.containers.run(
            base, ["sleep", "infinity"], detach=True, init=True, name=name, labels=labels,
            user=f"{BUILD_UID}:{BUILD_UID}", environment={"HOME": "/tmp", "USER": "build"},
            network_mode="bridge" if network else "none", mounts=mounts,
            tmpfs={"/tmp": "rw,exec,nosuid,nodev,size=1g,mode=1777"},
            cap_drop=["ALL"], security_opt=["no-new-privileges"], mem_limit=MEMORY, memswap_limit=MEMORY,
            pids_limit=PIDS, nano_cpus=int(cpus * 1e9))
        self.started = time.monotonic()

    def put(self, path: str, data) -> None:
        if not self.container.put_archive(path, data):
            raise SandboxError(f"environment build failed: could not copy files into {path}")

    def run(self, what: str, script: str, env: dict[str, str]) -> tuple[int, str]:
        """Run `script` as the build user; progress lines (step, seconds, last output line) go to `log`."""
        api = connect(timeout=None).api
        argv = ["timeout", "-s", "KILL", str(STEP_TIMEOUT), "sh", "-ec", script]
        exec_id = api.exec_create(self.container.id, argv, environment=env, workdir="/")["Id"]
        shown, tail = 0.0, ""
        chunks: list[str] = []
        self.log(f"environment: {what}")
        for chunk in api.exec_start(exec_id, stream=True):
            text = chunk.decode(errors="replace")
            chunks.append(text)
            lines = [ln for ln in re.split(r"[\r\n]", text) if ln.strip()]
            tail = lines[-1].strip() if lines else tail
            now = time.monotonic()
            if tail and now - shown >= PROGRESS_EVERY:
                shown = now
                self.log(f"environment: {what} · {now - self.started:.0f}s · {tail[:120]}")
        code = api.exec_inspect(exec_id).get("ExitCode")
        return (code if code is not None else -1), "".join(chunks)

    def must(self, what: str, script: str, env: dict[str, str]) -> str:
        code, out = self.run(what, script, env)
        if code != 0:
            raise SandboxError(f"environment build failed: {what} exited {code}: {last_error(out)}")
        return out

    def offline(self) -> None:
        """Cut the network: what runs after the installs needs none."""
        if not self.network:
            return
        try:
            self.client.networks.get("bridge").disconnect(self.container, force=True)
        except (APIError, NotFound) as exc:
            raise SandboxError(f"environment build failed: could not disconnect the network ({exc})") from exc
        self.network = False

    def scan(self, secrets: list[str], env: dict[str, str]) -> None:
        """Refuse to commit a credential: scrub it from known config files, fail on anything else."""
        if not secrets:
            return
        needles = [s.encode() for s in secrets]
        scrub, leaks = [], []
        for top in _changed_roots(self.container.diff() or []):
            try:
                stream, _stat = self.container.get_archive(top)
            except NotFound:
                continue
            parent = os.path.dirname(top.rstrip("/"))
            # read the whole stream even after a find: the engine holds the container until it ends
            with tarfile.open(fileobj=_Reader(stream), mode="r|") as tar:
                for member in tar:
                    data = member.linkname.encode() if member.issym() else (
                        tar.extractfile(member).read() if member.isfile() else b"")
                    if any(n in data for n in needles):
                        path = os.path.join(parent, member.name)
                        (scrub if os.path.basename(path) in SCRUBBABLE else leaks).append(path)
        if leaks:
            raise SandboxError(f"environment build failed: the build wrote an index credential into "
                               f"{', '.join(leaks[:3])}; the image was not kept")
        for path in scrub:
            self.must(f"remove {path}", shlex.join(["rm", "-f", path]), env)
            self.log(f"environment: removed {path}: it held an index credential")

    def commit(self, repository: str, tag: str, changes: list[str], secrets: list[str]) -> None:
        self.container.commit(repository=repository, tag=tag, changes=changes)
        image = self.client.images.get(f"{repository}:{tag}")
        config = image.attrs.get("Config") or {}
        recorded = " ".join([*(config.get("Env") or []), *(config.get("Cmd") or []),
                             *(str(h.get("CreatedBy", "")) + str(h.get("Comment", "")) for h in image.history())])
        if any(s in recorded for s in secrets):
            self.client.images.remove(image.id, force=True)
            raise SandboxError("environment build failed: an index credential reached the image's config; "
                               "the image was not kept")

    def remove(self) -> None:
        try:
            self.container.remove(force=True, v=True)  # with its scratch volume
        except NotFound:
            pass

    def remove_later(self) -> threading.Thread:
        """Remove the container off the caller's path once its image is committed: deleting the scratch
        volume (thousands of cached files) took 5-10 s of a build. Not a daemon: the process waits for it."""
        thread = threading.Thread(target=self.remove, name=f"remove-{self.container.name}")
        thread.start()
        return thread


def _changed_roots(diff: Iterable[dict]) -> list[str]:
    """The smallest set of paths that covers every added or changed file (a new dir covers its files)."""
    kinds = {d["Path"]: d.get("Kind") for d in diff}
    paths = sorted(p for p, k in kinds.items() if k in (0, 1))
    roots: list[str] = []
    for path in paths:
        if path == "/tmp" or path.startswith("/tmp/") or any(path.startswith(r + "/") for r in roots):
            continue
        if kinds[path] == 0 and any(q.startswith(path.rstrip("/") + "/") for q in paths):
            continue  # a changed directory: its changed children are listed themselves
        roots.append(path)
    return roots


class _Reader(io.RawIOBase):
    """A file object over the byte chunks `get_archive` streams, for `tarfile` in stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks, self.buffer = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self.buffer:
            try:
                self.buffer = next(self.chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self.buffer))
        target[:size], self.buffer = self.buffer[:size], self.buffer[size:]
        return size

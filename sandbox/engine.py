"""Connect to the Docker engine, or fail with a message that says how to get one."""

from __future__ import annotations

import os
import socket

import docker
from docker.errors import DockerException

from sandbox.base import SandboxError

ENGINE_FIX = (
    "start dockerd: `sudo nohup dockerd >/var/log/dockerd.log 2>&1 &` "
    "(install it first with `sudo apt-get install -y docker.io` on Debian/Ubuntu), "
    "or point DOCKER_HOST at a running engine; or use `--sandbox local`"
)

_clients: dict[object, docker.DockerClient] = {}


def connect(timeout: float | None = 60) -> docker.DockerClient:
    """Return a pinged client; `timeout=None` for calls that may stay silent for long (test runs)."""
    cached = _clients.get(timeout)
    if cached is not None:
        return cached
    try:
        client = docker.from_env(timeout=timeout) if timeout is not None else _untimed_client()
        client.ping()
    except DockerException as exc:
        raise SandboxError(f"no Docker engine reachable ({_short(exc)}); fix: {ENGINE_FIX}") from exc
    except Exception as exc:  # requests/urllib3 errors surface unwrapped on some paths
        raise SandboxError(f"no Docker engine reachable ({_short(exc)}); fix: {ENGINE_FIX}") from exc
    _clients[timeout] = client
    return client


def _untimed_client() -> docker.DockerClient:
    """docker.from_env cannot express "no read timeout"; set it on the API client after creation."""
    client = docker.from_env()
    client.api.timeout = None
    return client


def ensure_engine() -> docker.DockerClient:
    """The engine client used for image and container management (raises SandboxError with the fix)."""
    return connect()


def engine_status() -> tuple[bool, str]:
    """(reachable, version or fix) for `agent doctor`."""
    try:
        version = ensure_engine().version()
    except SandboxError as exc:
        return False, str(exc)
    return True, f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"


def _short(exc: BaseException) -> str:
    """`<engine address>: <the OS's reason>`, never the nested reprs docker/requests/urllib3 print."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    cause = _os_cause(exc, set())
    if cause is not None:
        return f"{host}: {cause.strerror}"
    text = str(exc).strip().splitlines()
    line = text[-1] if text else type(exc).__name__
    if "(" in line and ("Error(" in line or "('" in line):  # a nested repr: say only its head
        line = line.split(":", 1)[0].split("(", 1)[0].strip() or type(exc).__name__
    return f"{host}: {line[:200]}"


def _os_cause(exc: BaseException, seen: set[int]) -> OSError | None:
    """The innermost OSError with a reason, searched through causes, contexts, `reason` and args."""
    if id(exc) in seen:
        return None
    seen.add(id(exc))
    nested = [exc.__cause__, exc.__context__, getattr(exc, "reason", None), *getattr(exc, "args", ())]
    for inner in nested:
        if isinstance(inner, BaseException):
            found = _os_cause(inner, seen)
            if found is not None:
                return found
    if isinstance(exc, OSError) and exc.strerror:
        return exc
    return None


LABEL = "agent.sandbox"
LABEL_PID = "agent.owner_pid"
LABEL_HOST = "agent.owner_host"
LABEL_STARTED = "agent.owner_started"


def process_start(pid: int) -> str:
    """Start time of `pid` in clock ticks (guards against pid reuse); "" when unknown."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def owner_labels() -> dict[str, str]:
    """Labels that tie a container to this process, so `gc` can tell strays from live ones."""
    return {LABEL: "1", LABEL_PID: str(os.getpid()), LABEL_HOST: socket.gethostname(),
            LABEL_STARTED: process_start(os.getpid())}

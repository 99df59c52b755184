"""Where runs and caches live ($AGENT_HOME, $XDG_CACHE_HOME) and how a run is named."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import TextIO


def agent_home() -> Path:
    return Path(os.environ.get("AGENT_HOME") or Path.home() / ".local" / "share" / "agent")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agent"


def new_run_dir(slug: str) -> Path:
    """A fresh run directory, readable by the user only: trajectories hold their code and prompts."""
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug[:24]}-{secrets.token_hex(3)}"
    path = agent_home() / "runs" / run_id
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=False)
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path


def open_private(path: Path, mode: str = "w") -> TextIO:
    """Open a run file as text, created 0600 whatever the umask (a run's files are the user's alone)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, encoding="utf-8")


def write_private(path: Path, text: str) -> None:
    with open_private(path) as handle:
        handle.write(text)

"""Where runs and caches live ($AGENT_HOME, $XDG_CACHE_HOME) and how a run is named."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path


def agent_home() -> Path:
    return Path(os.environ.get("AGENT_HOME") or Path.home() / ".local" / "share" / "agent")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agent"


def new_run_dir(slug: str) -> Path:
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug[:24]}-{secrets.token_hex(3)}"
    path = agent_home() / "runs" / run_id
    path.mkdir(parents=True, exist_ok=False)
    return path

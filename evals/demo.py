"""`agent demo`: the whole fix flow on a generated repo against the bundled scripted model.

No key and no network: the model is the fake GLM server on loopback, playing
the turns a good model would play, so a newcomer sees every stage for real
(worktree, sandbox, reproduction, summary, loop, verification, commit, report).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evals.fake_glm import FakeGLM
from evals.sample_repo import TARGET, fixing_script, make_sample_repo

DEMO_KEY = "demo-key-not-secret"


def docker_ready(python: str = "3.11") -> tuple[bool, str]:
    """Whether the Docker sandbox can run now, and if not, why."""
    try:
        from sandbox.base_image import base_image_status
        from sandbox.engine import ensure_engine

        ensure_engine()
        exists, tag = base_image_status(python)
    except Exception as exc:  # noqa: BLE001 - any failure means: fall back to local
        return False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not exists:
        return False, f"base image {tag} missing: run `agent sandbox build-base`"
    return True, tag


def run_demo(sandbox: str | None, progress: Callable[[str], None]) -> tuple[dict[str, Any], int]:
    from agent.fix import FixOptions, run_fix

    if sandbox is None:
        ok, why = docker_ready()
        sandbox = "docker" if ok else "local"
        if not ok:
            progress(f"demo: Docker sandbox unavailable ({why}); using the local sandbox")
    scratch = Path(tempfile.mkdtemp(prefix="agent-demo-"))
    saved_home = os.environ.get("AGENT_HOME")
    # The demo's runs go to a temporary AGENT_HOME, not the user's: nothing of it outlives the command.
    os.environ["AGENT_HOME"] = str(scratch / "home")
    try:
        repo = make_sample_repo(scratch / "shop")
        progress(f"demo: sample repository at {repo} with a failing test {TARGET}")
        with FakeGLM(turns=fixing_script(), api_key=DEMO_KEY) as server:
            progress(f"demo: scripted GLM server at {server.base_url}")
            options = FixOptions(task=TARGET, repo=repo, api_key=DEMO_KEY,
                                 overrides={"model.base_url": server.base_url, "model.profile": "zai",
                                            "sandbox.kind": sandbox})
            report, code = run_fix(options, progress)
        if report.get("patch"):
            progress("demo: the change the agent committed on its branch:\n" + report["patch"].rstrip())
    finally:
        if saved_home is None:
            os.environ.pop("AGENT_HOME", None)
        else:
            os.environ["AGENT_HOME"] = saved_home
        shutil.rmtree(scratch, ignore_errors=True)
    progress(f"demo: removed {scratch} (the sample repository and the run directory)")
    return report, code

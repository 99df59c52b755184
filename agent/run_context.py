"""One run's machinery, built the same way for `fix` and `review`; each keeps only what is its own.

In the order a run needs it: the settings and the key (checked before anything is made), the run
directory and its trajectory (secrets redacted), the budget, the sandbox (`make_sandbox`, the one
factory, also used by `agent summary --run` and the evals grader), the model client and the loop
built from all of these. `stopped` is the one mapping from any exception to a status, so every
path out of a run, Ctrl-C and our own bugs included, still writes report.json and the stop event.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.budget import Budget, usd_prices
from agent.config import Settings
from agent.errors import EXIT_INTERRUPTED, AgentError, BadInput, EnvironmentProblem
from agent.loop import Loop, LoopOutcome
from agent.model.errors import ModelError
from agent.model.pricing import cost_of
from agent.model.types import Usage
from agent.policy import Policy
from agent.report import exit_code_for, write_report
from agent.runs import new_run_dir
from agent.trajectory import Trajectory
from agent.verify import Verification
from sandbox.base import Sandbox, SandboxError
from tools.base import Tool, ToolContext

ClientFactory = Callable[[Settings, "str | None"], Any]


def api_key_from_env() -> str | None:
    return os.environ.get("GLM_API_KEY") or os.environ.get("ZAI_API_KEY") or None


def default_client(settings: Settings, api_key: str | None) -> Any:
    from agent.model.client import client_from_settings

    return client_from_settings(settings, api_key)


def _local_versions(settings: Settings, root: Path, checkout: Path, log: Callable[[str], None],
                    version: str | None, date: str | None) -> tuple[str, list[str] | None]:
    """(Python, pins) of the user's working local environment when `[sandbox] mirror_local` asks to build
    the Docker one like it; when it does not and that environment exists, a one-line offer, once per image."""
    from sandbox.environment import AUTO, environment_status
    from sandbox.envplan import dist_name
    from sandbox.localpins import pins, project_environment, venv_python
    from sandbox.releases import RELEASES

    python = settings.sandbox.python
    venv = project_environment(checkout, os.environ.get("VIRTUAL_ENV"))
    if venv is None:
        return python, None
    if not settings.sandbox.mirror_local:
        if not environment_status(root, python, settings.sandbox.setup, version=version, date=date)[0]:
            log(f"hint: {venv} is this project's local environment; --mirror-local (or [sandbox] mirror_local) "
                "builds the Docker one with its package versions")
        return python, None
    local_python = venv_python(venv)
    if python.strip().lower() in AUTO and local_python in RELEASES:
        python = local_python
    found = pins(venv, {"glm-agent", dist_name(root) or ""})
    log(f"environment: as {venv} has it: {len(found)} package versions (Python {local_python or '?'})")
    return python, found


def make_sandbox(settings: Settings, root: Path, *, env_root: Path | None = None, read_only: bool = False,
                 build: bool = True, log: Callable[[str], None] = lambda line: None) -> Sandbox:
    """The one sandbox factory: `settings.sandbox` decides kind, interpreter, image and limits.

    `build=False` never builds a Docker environment (a review must not run the change's setup code
    with network): without an image for these dependency files it raises SandboxError.
    """
    kind = settings.sandbox.kind
    if kind == "local":
        from sandbox.local import LocalSandbox

        return LocalSandbox(root, read_only=read_only, env_root=env_root, python=settings.sandbox.python)
    if kind != "docker":
        raise BadInput(f"unknown sandbox {kind!r}: use docker or local")
    from agent.gitops import commit_date, describe_version
    from sandbox.docker import DockerSandbox
    from sandbox.environment import ensure_environment, environment_status

    # keyed by the tree the tests run on (HEAD's files), not the user's dirty checkout; the version and
    # date come from host git: the build gets no `.git`
    version, date = describe_version(root), commit_date(root)
    python, pins = settings.sandbox.python, None
    if build:
        python, pins = _local_versions(settings, root, env_root or root, log, version, date)
        image = ensure_environment(root, python, settings.sandbox.setup, log=log, version=version, date=date,
                                   pins=pins)
    else:
        exists, image = environment_status(root, python, settings.sandbox.setup, version=version, date=date)
        if not exists:
            raise SandboxError(f"no environment image {image} for these dependency files (none is built here)")
    return DockerSandbox(root, image=image, read_only=read_only, memory=settings.sandbox.memory,
                         cpus=settings.sandbox.cpus, pids=settings.sandbox.pids)


def sandbox_isolation(kind: str) -> str:
    """What isolates commands: "docker", "bubblewrap", or "none (why)" for a local run without it."""
    if kind != "local":
        return kind
    from sandbox.bwrap import find_bwrap

    return find_bwrap()[1]


def sandbox_label(kind: str) -> str:
    """The run line's `sandbox ...`: `local (bubblewrap)`, `local (unisolated: why)`, or the kind."""
    isolation = sandbox_isolation(kind)
    if kind != "local":
        return kind
    return f"local ({isolation})" if isolation == "bubblewrap" else f"local (unisolated: {isolation[6:-1]})"


@dataclass
class RunContext:
    """Settings, key, run directory, trajectory, budget, sandbox, client and loop of one run."""

    settings: Settings
    api_key: str | None
    progress: Callable[[str], None]
    client_factory: ClientFactory | None = None
    started: float = field(default_factory=time.monotonic)
    run_dir: Path | None = None
    trajectory: Trajectory | None = None
    budget: Budget | None = None
    sandbox: Sandbox | None = None
    client: Any = None
    loop: Loop | None = None
    exit_override: int | None = None

    @classmethod
    def check(cls, settings: Settings, api_key: str | None, progress: Callable[[str], None],
              client_factory: ClientFactory | None = None) -> RunContext:
        """Bad input and a missing key are said before anything is made (exit 2 / exit 3)."""
        usd_prices(settings)  # a cost limit needs a price
        key = api_key if api_key is not None else api_key_from_env()
        if not key and not settings.profile().get("self_hosted"):
            raise EnvironmentProblem("no API key: set GLM_API_KEY (or ZAI_API_KEY), or try `agent demo`")
        return cls(settings, key, progress, client_factory)

    def open(self, slug: str) -> Path:
        """The run directory, its trajectory (the key and tokens redacted) and the budget, clock started."""
        self.run_dir = new_run_dir(slug)
        self.trajectory = Trajectory(self.run_dir / "trajectory.jsonl", secrets=[
            self.api_key, os.environ.get("GITHUB_TOKEN"), os.environ.get("GH_TOKEN")])
        self.budget = Budget(self.settings.budget, usd_prices(self.settings), started=self.started)
        return self.run_dir

    def charge_probe(self, usage: Usage) -> None:
        """The preflight's one-token request is billed too: it counts against the budget and the report."""
        assert self.budget is not None and self.trajectory is not None, "open() first"
        cost = cost_of(usage, self.settings.prices())
        self.budget.charge_attempt(usage, cost)
        self.trajectory.event("probe", usage=usage.to_dict(), cost=cost)

    def start_sandbox(self, root: Path, **kwargs: Any) -> Sandbox:
        self.sandbox = make_sandbox(self.settings, root, log=self.progress, **kwargs)
        self.sandbox.start()
        return self.sandbox

    def make_loop(self, tools: list[Tool], ctx: ToolContext, verifier: Callable[[], Verification], *,
                  mode: str | None, seeds: list[str], nudge: str = "nudge.md") -> Loop:
        """The model client and the loop, both from the settings."""
        assert self.trajectory is not None and self.budget is not None, "open() first"
        settings = self.settings
        self.client = (self.client_factory or default_client)(settings, self.api_key)
        self.loop = Loop(
            client=self.client, tools=tools, ctx=ctx, budget=self.budget,
            policy=Policy(settings.policy, forced_mode=mode, default_mode=settings.model.default_mode),
            trajectory=self.trajectory, verifier=verifier, prices=settings.prices(),
            max_output=settings.model.max_tokens,
            context_limit=min(settings.model.context_window, settings.loop.prompt_ceiling or 1 << 62),
            max_observation_chars=settings.loop.max_observation_chars, seeds=seeds, progress=self.progress,
            nudge=nudge)
        return self.loop

    def stopped(self, exc: BaseException) -> LoopOutcome:
        """The one mapping from an exception to how the run ended (the loop's calls and cost kept)."""
        if isinstance(exc, KeyboardInterrupt):
            status, reason = "unresolved", "interrupted by the user"
            self.exit_override = EXIT_INTERRUPTED
        elif isinstance(exc, (AgentError, ModelError, SandboxError)):
            status, reason = "error", str(exc)  # said once, by the CLI's report line
        else:
            status, reason = "error", f"internal error: {type(exc).__name__}: {exc} (traceback in the trajectory)"
            if self.trajectory is not None:
                self.trajectory.event("internal_error", traceback=traceback.format_exc())
        outcome = self.loop.outcome if self.loop is not None else LoopOutcome(status, reason)
        outcome.status, outcome.stop_reason = status, reason
        return outcome

    def close(self) -> None:
        """Stop the sandbox and the client; best effort (gc sweeps stray containers)."""
        if self.sandbox is not None:
            try:
                self.sandbox.stop()
            except Exception:  # noqa: BLE001
                pass
        if self.client is not None:
            self.client.close()

    def finish(self, report: dict[str, Any], **stop: Any) -> tuple[dict[str, Any], int]:
        """report.json, the stop event and the exit code: the end of every run that opened a directory."""
        assert self.run_dir is not None and self.trajectory is not None
        write_report(self.run_dir, report)
        self.trajectory.event("stop", status=report["status"], stop_reason=report["stop_reason"],
                              usage=report["usage"], cost=report["cost"], calls=report.get("calls"), **stop)
        self.trajectory.close()
        code = self.exit_override if self.exit_override is not None else exit_code_for(report["status"])
        return report, code

    def discard(self) -> None:
        """A run that never started (bad input found after setup): nothing of it is kept."""
        import shutil

        self.close()
        if self.trajectory is not None:
            self.trajectory.close()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)

"""`agent fix`, composed: worktree, sandbox, reproduction, scope and summary, loop, commit, report.

Every path out of here (resolved, budget spent, model error, Ctrl-C) commits
what the agent changed on its own branch and writes report.json, so nothing
is lost and the user always gets an account of what happened and what it cost.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import gitops, integrity, reproduce
from agent.budget import Budget
from agent.config import Settings, load_settings
from agent.errors import EXIT_INTERRUPTED, BadInput, EnvironmentProblem
from agent.loop import Loop, LoopOutcome
from agent.model.errors import ModelError
from agent.policy import Policy
from agent.prompting import render
from agent.report import build_report, exit_code_for, write_report
from agent.runs import cache_dir, new_run_dir
from agent.task import Task
from agent.trajectory import Trajectory
from agent.verify import Verification, verify
from sandbox.base import Sandbox, SandboxError
from tools.base import ToolContext, ToolLimits
from tools.registry import fix_tools
from tools.testing import TestRun, is_test_file, run_pytest


@dataclass
class FixOptions:
    task: str
    repo: Path = Path(".")
    tests: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted settings from flags
    mode: str | None = None
    allow_test_edits: bool = False
    api_key: str | None = None
    client_factory: Callable[[Settings, str | None], Any] | None = None


def api_key_from_env() -> str | None:
    return os.environ.get("GLM_API_KEY") or os.environ.get("ZAI_API_KEY") or None


def make_sandbox(settings: Settings, worktree: Path, user_repo: Path, log: Callable[[str], None],
                 read_only: bool = False) -> Sandbox:
    kind = settings.sandbox.kind
    if kind == "local":
        from sandbox.local import LocalSandbox

        return LocalSandbox(worktree, read_only=read_only, env_root=user_repo)
    if kind != "docker":
        raise BadInput(f"unknown sandbox {kind!r}: use docker or local")
    from sandbox.docker import DockerSandbox
    from sandbox.environment import ensure_environment

    # The environment is keyed by the tree the tests run on (HEAD's files), not the user's dirty checkout.
    image = ensure_environment(worktree, settings.sandbox.python, settings.sandbox.setup, log=log)
    return DockerSandbox(worktree, image=image, read_only=read_only, memory=settings.sandbox.memory,
                         cpus=settings.sandbox.cpus, pids=settings.sandbox.pids)


def _summarise(worktree: Path, task: Task, traceback: str, scopes: list[str], tokens: int,
               log: Callable[[str], None], executed: Any = ()) -> tuple[Any, Any, Any]:
    """Index, scope and summary of the worktree; `agent summary` renders the same from the same inputs."""
    from agent.summary import summarise

    index, scope, summary = summarise(worktree, task.targets, scopes, tokens, traceback=traceback,
                                      task_text=task.text, cache_dir=cache_dir(), executed=executed)
    for note in summary.notes[:5]:
        log(f"summary: {note}")
    return index, scope, summary


def _check_scopes(root: Path, scopes: list[str]) -> list[str]:
    clean = []
    for scope in scopes:
        path = (root / scope).resolve()
        if not path.is_relative_to(root.resolve()) or not path.is_dir():
            raise BadInput(f"--scope {scope}: not a directory inside the repository")
        clean.append(path.relative_to(root.resolve()).as_posix())
    return clean


def _reproduction_text(run: TestRun, limit: int = 6000) -> str:
    from tools.textutil import cut_middle

    return cut_middle(run.output.strip(), limit)


def run_fix(options: FixOptions, progress: Callable[[str], None]) -> tuple[dict[str, Any], int]:
    """Run one task; returns (report, exit code). Raises BadInput/EnvironmentProblem before any run dir."""
    repo = gitops.open_repo(options.repo.resolve())
    user_root = Path(repo.working_tree_dir).resolve()
    settings = load_settings(user_root, options.overrides, warn=progress)
    task = Task.parse(options.task, options.tests)
    if not task.text:
        raise BadInput("empty task: give a test selector or a description")
    for target in task.target_files:
        if not (user_root / target).is_file():
            raise BadInput(f"no such test file in the repository: {target}")
    scopes = _check_scopes(user_root, options.scopes)
    profile = settings.profile()
    api_key = options.api_key if options.api_key is not None else api_key_from_env()
    if not api_key and not profile.get("self_hosted"):
        raise EnvironmentProblem("no API key: set GLM_API_KEY (or ZAI_API_KEY), or try `agent demo`")

    started = time.monotonic()
    run_dir = new_run_dir(task.slug)
    trajectory = Trajectory(run_dir / "trajectory.jsonl",
                            secrets=[api_key, os.environ.get("GITHUB_TOKEN"), os.environ.get("GH_TOKEN")])
    worktree = gitops.create_worktree(repo, task.slug, run_dir / "worktree")
    base_config = integrity.snapshot(worktree.path)  # before any code of the repository runs
    notes: list[str] = []
    if worktree.user_tree_dirty:
        notes.append("your checkout has uncommitted changes; they are not part of this run (it starts from HEAD)")
        progress("note: " + notes[-1])
    trajectory.event("start", task=task.text, targets=task.targets, branch=worktree.branch,
                     base_commit=worktree.base_commit, model=settings.model.name, base_url=settings.model.base_url,
                     profile=settings.model.profile, sandbox=settings.sandbox.kind)
    progress(f"run {run_dir.name} · branch {worktree.branch} · sandbox {settings.sandbox.kind}")

    test_command = shlex.split(settings.sandbox.test_command)
    timeout = float(settings.sandbox.test_timeout)
    selection = task.target_files
    outcome = LoopOutcome("error", "")
    baseline: TestRun | None = None
    final: TestRun | None = None
    budget = Budget(settings.budget, settings.prices().get("usd"))
    sandbox: Sandbox | None = None
    client = None
    exit_override: int | None = None
    loop: Loop | None = None
    try:
        sandbox = make_sandbox(settings, worktree.path, user_root, progress)
        sandbox.start()
        baseline = run_pytest(sandbox, selection, test_command, timeout)
        trajectory.event("test_run", purpose="reproduce", run=baseline.to_dict())
        reproduce.gate(baseline, task.targets, roots=[worktree.path, worktree.path / "src"],
                       interpreter=getattr(sandbox, "python", None) or settings.sandbox.kind)
        progress(f"reproduced: {baseline.short_summary()}")

        from agent.spectrum import executed_definitions  # a traced rerun of the targets; [] on any failure

        executed = executed_definitions(sandbox, baseline, task.targets, test_command, timeout, progress)
        index, scope, summary = _summarise(worktree.path, task, baseline.output, scopes,
                                           settings.loop.summary_tokens, progress, executed)
        ctx = ToolContext(
            root=worktree.path, sandbox=sandbox, target_tests=list(task.targets), test_command=test_command,
            test_timeout=timeout, scope_fence=scopes, allow_test_edits=options.allow_test_edits, index=index,
            protected_paths=lambda rel: (is_test_file(rel) or rel in task.target_files
                                         or integrity.is_loaded_implicitly(rel)),
            limits=ToolLimits(**settings.tools.model_dump()))
        messages = [
            {"role": "system", "content": render("system.md") + render("repo_summary.md",
                                                                        repo_summary=summary.repo_part)},
            {"role": "user", "content": render(
                "task_fix.md", task_summary=summary.task_part, task=task.text,
                targets="\n".join(f"- {t}" for t in task.targets) or "- (none given: keep the suite green)",
                test_command=" ".join(test_command), reproduction=_reproduction_text(baseline),
                notes=("\nScope: work inside " + ", ".join(scopes) + "; edits elsewhere are refused.\n")
                if scopes else "")},
        ]
        factory = options.client_factory or default_client
        client = factory(settings, api_key)
        loop = Loop(
            client=client, tools=fix_tools(shell=getattr(sandbox, "isolated", sandbox.kind == "docker")),
            ctx=ctx, budget=budget,
            policy=Policy(settings.policy, forced_mode=options.mode, default_mode=settings.model.default_mode),
            trajectory=trajectory,
            verifier=lambda: _verify_task(worktree, task, sandbox, selection, baseline, test_command, timeout,
                                          base_config, options.allow_test_edits),
            prices=settings.prices(), max_output=settings.model.max_tokens,
            context_limit=min(settings.model.context_window, settings.loop.prompt_ceiling or 1 << 62),
            chars_per_token=settings.loop.chars_per_token,
            max_observation_chars=settings.loop.max_observation_chars, seeds=list(scope.seed_files),
            progress=progress)
        outcome = loop.run(messages)
        if outcome.verification is not None and outcome.verification.runs:
            final = outcome.verification.runs[-1]
    except KeyboardInterrupt:
        outcome = _stopped(loop, "unresolved", "interrupted by the user")
        exit_override = EXIT_INTERRUPTED
        progress("interrupted: committing partial work")
    except (BadInput, reproduce.ReproductionProblem):  # nothing of a run that never started is kept
        _cleanup(sandbox, client, trajectory)
        gitops.discard_worktree(repo, worktree)
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    except (ModelError, SandboxError, EnvironmentProblem) as exc:
        outcome = _stopped(loop, "error", f"error: {exc}")
        progress(f"error: {exc}")
    except Exception as exc:  # noqa: BLE001 - a bug of ours must still leave the commit and the report
        outcome = _stopped(loop, "error", f"internal error: {type(exc).__name__}: {exc}")
        trajectory.event("internal_error", traceback=traceback.format_exc())
        progress(f"internal error: {type(exc).__name__}: {exc} (traceback in the trajectory)")
    finally:
        if sandbox is not None and final is None and baseline is not None and outcome.status != "error" \
                and exit_override is None:
            try:
                final = run_pytest(sandbox, selection, test_command, timeout)
                trajectory.event("test_run", purpose="final", run=final.to_dict())
            except Exception as exc:  # noqa: BLE001 - the report must still be written
                notes.append(f"final test run failed: {exc}")
        _cleanup(sandbox, client, None)
    try:
        commit = gitops.commit_all(worktree, _commit_message(task, outcome))
        patch = gitops.patch_since_base(worktree)
    except gitops.GitError as exc:  # e.g. the sandbox tampered with .git: nothing of the worktree is kept
        commit, patch = None, ""
        outcome = _stopped(loop, "error", f"error: {exc}")
        progress(f"error: {exc}")
    (run_dir / "patch.diff").write_text(patch, encoding="utf-8")
    gitops.release_worktree(repo, worktree)  # the branch stays; the user can check it out
    report = build_report(
        task=task, outcome=outcome, worktree=worktree, commit=commit, patch=patch, budget=budget,
        baseline=baseline, final=final, run_dir=run_dir, sandbox_kind=settings.sandbox.kind, notes=notes,
        elapsed=time.monotonic() - started)
    write_report(run_dir, report)
    trajectory.event("stop", status=report["status"], stop_reason=report["stop_reason"], usage=report["usage"],
                     cost=report["cost"], calls=report["calls"])
    trajectory.close()
    return report, exit_override if exit_override is not None else exit_code_for(report["status"])


def _verify_task(worktree: gitops.Worktree, task: Task, sandbox: Sandbox, selection: list[str],
                 baseline: TestRun, test_command: list[str], timeout: float, base_config: dict[str, str],
                 allow_test_edits: bool) -> Verification:
    """Targets pass twice with no regressions, under the base commit's test configuration (checked
    before and after the runs: code under test could rewrite it mid-run); a task without targets must
    at least have changed something."""
    if not task.targets and not gitops.has_changes(worktree):
        return Verification(False, "no change was made, and the task names no test to check")
    reason = integrity.tampering(base_config, worktree.path, allow_test_edits=allow_test_edits)
    if reason:
        return Verification(False, reason)
    verdict = verify(sandbox, targets=task.targets, selection=selection, baseline=baseline,
                     test_command=test_command, timeout=timeout)
    reason = integrity.tampering(base_config, worktree.path, allow_test_edits=allow_test_edits,
                                 baseline_output=baseline.output, outputs=tuple(r.output for r in verdict.runs))
    if reason:
        return Verification(False, reason, verdict.targets_failing, verdict.newly_failing, verdict.runs)
    return verdict


def _stopped(loop: Loop | None, status: str, reason: str) -> LoopOutcome:
    """The loop's outcome so far (calls, Max cost) with the status that ended it."""
    outcome = loop.outcome if loop is not None else LoopOutcome(status, reason)
    outcome.status, outcome.stop_reason = status, reason
    return outcome


def _cleanup(sandbox: Sandbox | None, client: Any, trajectory: Trajectory | None) -> None:
    if sandbox is not None:
        try:
            sandbox.stop()
        except Exception:  # noqa: BLE001 - best effort; gc sweeps strays
            pass
    if client is not None:
        client.close()
    if trajectory is not None:
        trajectory.close()


def _commit_message(task: Task, outcome: LoopOutcome) -> str:
    title = task.text if len(task.text) <= 60 else task.text[:57] + "..."
    state = "fix" if outcome.status == "resolved" else "partial work on"
    return f"agent: {state} {title}\n\nStatus: {outcome.status}\nStop reason: {outcome.stop_reason}\n"


def default_client(settings: Settings, api_key: str | None) -> Any:
    from agent.model.client import client_from_settings

    return client_from_settings(settings, api_key)

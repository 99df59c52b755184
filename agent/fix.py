"""`agent fix`, composed: worktree, sandbox, reproduction, scope and summary, loop, commit, report.

Every path out of here (resolved, budget spent, model error, Ctrl-C) commits
what the agent changed on its own branch and writes report.json, so nothing
is lost and the user always gets an account of what happened and what it cost.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import gitops, integrity, reproduce
from agent.config import Settings, load_settings
from agent.errors import BadInput
from agent.loop import LoopOutcome
from agent.model.types import Usage
from agent.preflight import preflight
from agent.prompting import render
from agent.report import build_report
from agent.reproduction_phase import ReproductionPhase, given_verdict
from agent.run_context import RunContext, sandbox_isolation, sandbox_label
from agent.runs import cache_dir, write_private
from agent.task import Task
from agent.verify import Verification, verify
from sandbox.importroots import import_roots
from sandbox.pytest_runs import TestRun, is_test_file, run_pytest
from sandbox.versionfile import write_version_files
from tools.base import ToolContext, ToolLimits
from tools.registry import fix_tools


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
    from sandbox.text import cut_middle

    return cut_middle(run.output.strip(), limit)


def run_fix(options: FixOptions, progress: Callable[[str], None]) -> tuple[dict[str, Any], int]:
    """Run one task; returns (report, exit code). Bad input and an unusable environment are raised
    (exit 2 / 3) before anything is made, or undone when found at the reproduction."""
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
    run = RunContext.check(settings, options.api_key, progress, options.client_factory)
    probes: list[Usage] = []
    notes = preflight(settings, run.api_key, user_root, probes)  # key, endpoint, sandbox: before anything is made
    run_dir = run.open(task.slug)
    worktree = gitops.create_worktree(repo, task.slug, run_dir / "worktree")
    worktree.generated = write_version_files(worktree.path, gitops.describe_version(repo.root))
    for rel in worktree.generated:  # git-ignored output of the project's build, which the tests import
        progress(f"wrote {rel} from git describe, as the project's build does")
    fix = _Fix(run, task, worktree, user_root, options, scopes, notes)
    for usage in probes:  # after the start event: the probe is the run's first spend
        run.charge_probe(usage)
    outcome = LoopOutcome("error", "")
    try:
        fix.reproduce()
        outcome = fix.work()
    except _Done as done:
        outcome = done.outcome
    except (BadInput, reproduce.ReproductionProblem):  # nothing of a run that never started is kept
        run.discard()
        gitops.discard_worktree(repo, worktree)
        raise
    except (KeyboardInterrupt, Exception) as exc:  # noqa: BLE001 - the work is committed, the report written
        outcome = run.stopped(exc)
        if run.exit_override is not None:
            progress("interrupted: committing partial work")
    finally:
        fix.final_run(outcome)
        run.close()
    return fix.conclude(repo, outcome)


class _Fix:
    """What is `fix`'s own: the worktree, the reproduction, the prompt, the verdict, the commit."""

    def __init__(self, run: RunContext, task: Task, worktree: gitops.Worktree, user_root: Path,
                 options: FixOptions, scopes: list[str], notes: list[str]) -> None:
        self.run, self.task, self.worktree, self.user_root = run, task, worktree, user_root
        self.options, self.scopes, self.notes = options, scopes, list(notes)
        self.base_config = integrity.snapshot(worktree.path)  # before any code of the repository runs
        self.test_command = shlex.split(run.settings.sandbox.test_command)
        self.timeout = float(run.settings.sandbox.test_timeout)
        self.baseline: TestRun | None = None
        self.final: TestRun | None = None
        self.phase: ReproductionPhase | None = None  # a task without targets: the model reproduces first
        for note in self.notes:
            run.progress("note: " + note)
        if worktree.user_tree_dirty:
            self.notes.append("your checkout has uncommitted changes; they are not part of this run "
                              "(it starts from HEAD)")
            run.progress("note: " + self.notes[-1])
        settings = run.settings
        run.trajectory.event("start", task=task.text, targets=task.targets, branch=worktree.branch,
                             base_commit=worktree.base_commit, model=settings.model.name,
                             base_url=settings.model.base_url, profile=settings.model.profile,
                             sandbox=settings.sandbox.kind)
        run.progress(f"run {run.run_dir.name} · branch {worktree.branch} · sandbox "
                     f"{sandbox_label(settings.sandbox.kind)}")

    def _tests(self, selection: list[str]) -> TestRun:
        return run_pytest(self.run.sandbox, selection, self.test_command,
                          min(self.timeout, self.run.budget.seconds_left()))

    def reproduce(self) -> None:
        """The targets once, in the worktree's code; the gate says whether the model may be called."""
        run, task = self.run, self.task
        sandbox = run.start_sandbox(self.worktree.path, env_root=self.user_root)
        if hasattr(sandbox, "describe"):
            run.progress(f"{sandbox.kind} sandbox: {sandbox.describe()}")
        foreign = sandbox.foreign_imports() if hasattr(sandbox, "foreign_imports") else []
        if foreign:
            raise reproduce.ReproductionProblem("the project does not import from the worktree: " + "; ".join(
                f"{name} from {where}" for name, where in foreign))
        self.baseline = self._tests(task.target_files)
        run.trajectory.event("test_run", purpose="reproduce", run=self.baseline.to_dict())
        if self.baseline.timed_out and run.budget.seconds_left() <= 0:
            raise _Done(LoopOutcome("budget_exhausted", f"budget_time: time limit reached "
                                    f"({run.budget.elapsed:.0f}s of {run.settings.budget.max_seconds:.0f}s) "
                                    "during the reproduction"))
        reproduce.gate(self.baseline, task.targets, roots=import_roots(self.worktree.path),
                       interpreter=getattr(sandbox, "python", None) or run.settings.sandbox.kind)
        run.progress(f"reproduced: {self.baseline.short_summary()}")

    def work(self) -> LoopOutcome:
        """Summary, prompt and the loop, until the harness's verdict or a limit."""
        run, task, settings = self.run, self.task, self.run.settings
        from agent.spectrum import executed_definitions  # a traced rerun of the targets; [] on any failure

        executed = executed_definitions(run.sandbox, self.baseline, task.targets, self.test_command,
                                        min(self.timeout, run.budget.seconds_left()), run.progress)
        index, scope, summary = _summarise(self.worktree.path, task, self.baseline.output, self.scopes,
                                           settings.loop.summary_tokens, run.progress, executed)
        if not task.targets:
            self.phase = ReproductionPhase(
                worktree=self.worktree, settings=settings, budget=run.budget, trajectory=run.trajectory,
                progress=run.progress, base_config=self.base_config, baseline=self.baseline,
                run_tests=self._tests, allow_test_edits=self.options.allow_test_edits)
        ctx = ToolContext(
            root=self.worktree.path, sandbox=run.sandbox, target_tests=list(task.targets),
            test_command=self.test_command, test_timeout=self.timeout, scope_fence=self.scopes,
            allow_test_edits=self.options.allow_test_edits, index=index,
            protected_paths=lambda rel: (is_test_file(rel) or rel in task.target_files
                                         or integrity.is_loaded_implicitly(rel)),
            limits=ToolLimits(**settings.tools.model_dump()))
        if self.phase is not None:
            self.phase.bind(ctx)
        reproducing = self.phase is not None
        messages = [
            {"role": "system", "content": render("system_reproduce.md" if reproducing else "system.md")
             + render("repo_summary.md", repo_summary=summary.repo_part)},
            {"role": "user", "content": render(
                "task_reproduce.md" if reproducing else "task_fix.md", task_summary=summary.task_part, task=task.text,
                turns=self.phase.turn_share if self.phase else "",
                targets="\n".join(f"- {t}" for t in task.targets) or "- (none given: keep the suite green)",
                test_command=" ".join(self.test_command), reproduction=_reproduction_text(self.baseline),
                notes=("\nScope: work inside " + ", ".join(self.scopes) + "; edits elsewhere are refused.\n")
                if self.scopes else "")},
        ]
        shell = sandbox_isolation(settings.sandbox.kind) in ("docker", "bubblewrap")
        loop = run.make_loop(fix_tools(shell=shell, reproduce=reproducing), ctx, self.verify, mode=self.options.mode,
                             seeds=list(scope.seed_files))
        outcome = loop.run(messages)
        if outcome.verification is not None and outcome.verification.runs:
            self.final = outcome.verification.runs[-1]
        return outcome

    def final_run(self, outcome: LoopOutcome) -> None:
        """The report's "after": the last verification, else one more run (not after an error or Ctrl-C)."""
        run = self.run
        if run.sandbox is None or self.final is not None or self.baseline is None or outcome.status == "error" \
                or run.exit_override is not None:
            return
        try:
            if run.budget.seconds_left() <= 0:
                self.notes.append("final test run skipped: the time limit is spent")
                return
            if self.phase is not None and self.phase.accepted is None:
                return  # nothing to judge: the report's verdict is "none"
            self.final = self._tests(self.phase.selection() if self.phase else self.task.target_files)
            run.trajectory.event("test_run", purpose="final", run=self.final.to_dict())
        except Exception as exc:  # noqa: BLE001 - the report must still be written
            self.notes.append(f"final test run failed: {exc}")

    def conclude(self, repo: Any, outcome: LoopOutcome) -> tuple[dict[str, Any], int]:
        """Commit, patch, release the worktree (the branch stays only with a commit), report."""
        run, worktree, phase = self.run, self.worktree, self.phase
        if phase is not None:
            outcome.status, outcome.stop_reason = phase.settle(outcome.status, outcome.stop_reason)
        try:
            commit = gitops.commit_all(worktree, _commit_message(self.task, outcome))
            patch = gitops.patch_since_base(worktree)
        except gitops.GitError as exc:  # e.g. the sandbox tampered with .git: nothing of the worktree is kept
            commit, patch = None, ""
            outcome.status, outcome.stop_reason = "error", str(exc)
        write_private(run.run_dir / "patch.diff", patch)
        gitops.release_worktree(repo, worktree)
        branch_dropped = commit is None and gitops.drop_branch_if_unused(repo, worktree)
        report = build_report(
            task=self.task, outcome=outcome, worktree=worktree, commit=commit, patch=patch, budget=run.budget,
            baseline=phase.accepted.before if phase and phase.accepted else self.baseline, final=self.final,
            run_dir=run.run_dir, targets=phase.targets if phase else None,
            verdict=phase.verdict(self.final) if phase else given_verdict(self.task.targets),
            sandbox_kind=run.settings.sandbox.kind, sandbox_isolation=sandbox_isolation(run.settings.sandbox.kind),
            notes=self.notes, elapsed=time.monotonic() - run.started)
        if branch_dropped:
            report["branch"] = None
        return run.finish(report)

    def verify(self) -> Verification:
        """Targets pass twice with no regressions, under the base commit's test configuration (checked
        before and after the runs: code under test could rewrite it mid-run). A task without targets is
        judged by its accepted reproduction (frozen as accepted), and without one it is never resolved."""
        task, worktree, allow, phase = self.task, self.worktree, self.options.allow_test_edits, self.phase
        if phase is not None and phase.accepted is None:
            return Verification(False, render("reproduction/missing.md").strip())
        targets, selection = (phase.targets, phase.selection()) if phase else (task.targets, task.target_files)
        reference = phase.reference() if phase else self.base_config
        reason = (phase.tampering() if phase else None) or integrity.tampering(reference, worktree.path,
                                                                                allow_test_edits=allow)
        if reason:
            return Verification(False, reason)
        verdict = verify(self.run.sandbox, targets=targets, selection=selection,
                         baseline=self.baseline, test_command=self.test_command, timeout=self.timeout,
                         time_left=self.run.budget.seconds_left)
        reason = (phase.tampering() if phase else None) or integrity.tampering(
            reference, worktree.path, allow_test_edits=allow, baseline_output=self.baseline.output,
            outputs=tuple(r.output for r in verdict.runs))
        if reason:
            return Verification(False, reason, verdict.targets_failing, verdict.newly_failing, verdict.runs)
        return verdict


class _Done(Exception):
    """An early end before the loop that is not an error (the time ran out during the reproduction)."""

    def __init__(self, outcome: LoopOutcome) -> None:
        super().__init__(outcome.stop_reason)
        self.outcome = outcome


def _commit_message(task: Task, outcome: LoopOutcome) -> str:
    title = task.text if len(task.text) <= 60 else task.text[:57] + "..."
    state = "fix" if outcome.status == "resolved" else "partial work on"
    return f"agent: {state} {title}\n\nStatus: {outcome.status}\nStop reason: {outcome.stop_reason}\n"

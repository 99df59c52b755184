"""The reproduction phase of a task that names no failing test: the model writes the test first, and the
harness holds it to it.

Without a failing test, "resolved" could only mean "changed something and broke nothing", which is no
evidence that the issue is fixed. So the run starts here:
- writes are limited to tests: new test files, or new test functions in existing test files (an edit
  to a file the base commit has must only insert lines, and must not rebind a name the file defined);
  a source edit is refused, in the words of prompts/refusals/reproduce_first.md;
- `reproduce` hands test ids to `check`, which runs them on the base commit's code (source changes,
  however made, are set aside for that run) under the base test configuration: each must be new,
  collected, and fail, and not by an error collecting, importing or setting up the test itself, nor
  by a module missing from the environment. A refusal quotes pytest;
- accepted tests are the targets from then on, and every test file the run changed is frozen at its
  accepted bytes: edits are refused, and the verdict is given only while they are unchanged.
  `reproduce(reopen=true)` goes back (recorded in the trajectory), and the next set is checked alike;
- until a set is accepted the phase has its own share of the turn and cost budget ([reproduction] in
  the config); a run that ends without an accepted reproduction is `no_reproduction`, never
  `resolved`, with the attempted test committed on the branch for a person to finish.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from agent import gitops, integrity
from agent.budget import Budget, PhaseCap
from agent.config import Settings
from agent.prompting import render
from agent.reproduce import environment_cause, first_error
from prompts import refusal
from sandbox.importroots import import_roots
from sandbox.pytest_runs import TestRun, is_test_file, selector_file
from sandbox.text import cut_middle
from tools.base import Observation, ToolContext

_FAILURES = re.compile(r"^=+ (FAILURES|ERRORS) =+$", re.M)
_PARAMS = re.compile(r"\[.*\]$")
STATUS = "no_reproduction"


@dataclass
class Accepted:
    """A reproduction the harness accepted: its tests, the frozen files and their run on the base code."""

    tests: list[str]
    files: dict[str, str]  # test file -> sha256 of its bytes when accepted
    before: TestRun
    turn: int


def is_reproduction_file(rel: str) -> bool:
    """A file pytest collects tests from (not conftest.py, which decides how every test runs)."""
    return is_test_file(rel) and PurePosixPath(rel).name != "conftest.py"


def _bindings(body: list[ast.stmt]) -> Counter[str]:
    """How often each name is bound by the statements of one scope (def, class, assignment, import)."""
    names: Counter[str] = Counter()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] += 1
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names[leaf.id] += 1
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] += 1
    return names


def _scopes(tree: ast.Module) -> dict[str, Counter[str]]:
    """'' (the module) and each top-level class -> the names bound there."""
    scopes = {"": _bindings(tree.body)}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            scopes[node.name] = _bindings(node.body)
    return scopes


def defined_tests(text: str) -> set[str]:
    """Qualified names (`test_x`, `TestY::test_z`) of the tests a file defines, as pytest would name them."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            found.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            found.update(f"{node.name}::{item.name}" for item in node.body
                         if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test"))
    return found


def only_adds(base: str, new: str, *, strict: bool = False) -> str | None:
    """Why `new` is not `base` with lines added (nothing changed, removed or rebound), or None.

    Text that does not parse yet passes (a test is written in steps) unless `strict`: the check of a
    reproduction reads the file as pytest will.
    """
    matcher = difflib.SequenceMatcher(None, base.splitlines(), new.splitlines(), autojunk=False)
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            return f"the edit would change or remove existing lines ({i1 + 1}-{i2} at the base commit)"
    try:
        before, after = _scopes(ast.parse(base)), _scopes(ast.parse(new))
    except SyntaxError as exc:
        return f"it does not parse ({exc.msg}, line {exc.lineno})" if strict else None
    for scope, names in before.items():
        for name, count in names.items():
            if after.get(scope, Counter())[name] != count:
                where = f"class {scope}" if scope else "the module"
                return f"the edit would bind `{name}` again in {where}, replacing what the base commit defines"
    return None


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "<missing>"


class ReproductionPhase:
    """State and rules of one task's reproduction: the write guard, the check, the freeze, the budget share."""

    def __init__(self, *, worktree: gitops.Worktree, settings: Settings, budget: Budget, trajectory: Any,
                 progress: Callable[[str], None], base_config: dict[str, str], baseline: TestRun,
                 run_tests: Callable[[list[str]], TestRun], allow_test_edits: bool = False) -> None:
        self.worktree, self.budget, self.trajectory, self.progress = worktree, budget, trajectory, progress
        self.base_config, self.baseline, self.run_tests = base_config, baseline, run_tests
        self.allow_test_edits = allow_test_edits
        self.limits = settings.reproduction
        self.turn_share = max(1, int(settings.budget.max_turns * self.limits.turns_share))
        self.cost_share = settings.budget.max_cost_usd * self.limits.cost_share
        self.accepted: Accepted | None = None
        self.ctx: ToolContext | None = None
        self.checks = self.reopened = 0
        self.last_refusal = ""
        self._spent_turns, self._spent_cost = 0, 0.0
        self._opened_at: tuple[int, float] | None = None
        self._open()

    # -- the phase and its budget ---------------------------------------------------------------
    def _open(self) -> None:
        """Enter the phase: its budget share is what earlier visits left of it."""
        budget = self.budget
        self._opened_at = (budget.turns, budget.cost_usd)
        budget.phase = PhaseCap("reproduction", budget.turns + self.turn_share - self._spent_turns,
                                budget.cost_usd + self.cost_share - self._spent_cost,
                                "the reproduction phase (no failing test accepted yet)")

    def _close(self) -> None:
        if self._opened_at is not None:
            self._spent_turns += self.budget.turns - self._opened_at[0]
            self._spent_cost += self.budget.cost_usd - self._opened_at[1]
        self._opened_at, self.budget.phase = None, None

    @property
    def targets(self) -> list[str]:
        return list(self.accepted.tests) if self.accepted else []

    def bind(self, ctx: ToolContext) -> ToolContext:
        """Give the tools the phase's write guard and check (the loop hears of neither)."""
        self.ctx = ctx
        ctx.protected_paths, ctx.write_guard, ctx.reproduction = None, self.guard, self.request
        return ctx

    # -- writes ----------------------------------------------------------------------------------
    def guard(self, rel: str, content: str | None) -> str | None:
        """The refusal for writing `content` to `rel` in the current phase, or None."""
        if self.accepted is not None:
            if rel in self.accepted.files:
                return refusal("frozen_reproduction", path=rel, tests=", ".join(self.accepted.tests))
            if not self.allow_test_edits and (is_test_file(rel) or integrity.is_loaded_implicitly(rel)):
                return refusal("protected", path=rel)
            return None
        if integrity.is_loaded_implicitly(rel):
            return refusal("protected", path=rel)
        if not is_reproduction_file(rel):
            return refusal("reproduce_first", path=rel)
        base = gitops.base_bytes(self.worktree, rel)
        if base is None or content is None:
            return None
        why = only_adds(base.decode("utf-8", errors="replace"), content)
        return refusal("existing_tests", path=rel, why=why) if why else None

    # -- the check -------------------------------------------------------------------------------
    def request(self, tests: list[str], reopen: bool) -> Observation:
        """What `reproduce` asked: go back to the phase, or check these tests (and accept them)."""
        if reopen:
            return self.reopen()
        if self.accepted is not None:
            return Observation(f"error: a reproduction is already accepted ({', '.join(self.accepted.tests)}); "
                               "to replace it, call reproduce with reopen=true first", ok=False)
        self.checks += 1
        refused, run = self._judge(tests)
        event = {"action": "refused" if refused else "accepted", "tests": tests, "check": self.checks}
        self.trajectory.event("reproduction", **event, reason=refused or "",
                              run=run.to_dict() if run is not None else None)
        if refused:
            self.last_refusal = refused.splitlines()[0]
            self.progress(f"reproduction refused: {self.last_refusal[len('reproduction refused: '):][:160]}")
            return Observation(refused, ok=False, data={"reproduction": "refused"})
        assert run is not None
        return self._accept(tests, run)

    def _judge(self, tests: list[str]) -> tuple[str | None, TestRun | None]:
        """(refusal text or None, the run on the base code)."""
        why = self._not_new(tests) or self._changed()
        if why:
            return why, None
        plan, unsafe = self._set_aside()
        if unsafe:
            return unsafe, None
        with self._base_code(plan):
            run = self.run_tests(tests)
        shown = ", ".join(tests)
        output = _failures(run.output, self.limits.output_chars * 2)
        if run.timed_out:
            return render("reproduction/timed_out.md", tests=shown, seconds=f"{run.duration:.0f}",
                          output=output), run
        missing = [t for t in tests if not run.matches(t)]
        if missing:
            return render("reproduction/not_collected.md", tests=", ".join(missing), output=output), run
        errored = [t for t in tests if "error" in run.matching(t).values()]
        if errored:
            return render("reproduction/errored.md", tests=", ".join(errored), error=first_error(run.output),
                          output=output), run
        passing = [t for t in tests if "failed" not in run.matching(t).values()]
        if passing:
            outcomes = ", ".join(f"{t} {'/'.join(sorted(set(run.matching(t).values())))}" for t in passing)
            return render("reproduction/passes.md", tests=", ".join(passing), outcomes=outcomes,
                          output=output), run
        cause = environment_cause(run.output, import_roots(self.worktree.path))
        if cause:
            return render("reproduction/environment.md", tests=shown, cause=cause, output=output), run
        return None, run

    def _not_new(self, tests: list[str]) -> str | None:
        """Why these ids are not new tests in test files, or None."""
        for test in tests:
            path = selector_file(test)
            if "::" not in test or not is_reproduction_file(path):
                return render("reproduction/not_new.md", why=f"`{test}` is not the node id of a test in a test "
                                                            "file (`path/test_x.py::test_name`)")
            if not (self.worktree.path / path).is_file():
                return render("reproduction/not_new.md", why=f"{path} does not exist")
            base = gitops.base_bytes(self.worktree, path)
            name = _PARAMS.sub("", test.split("::", 1)[1])
            if base is not None and name in defined_tests(base.decode("utf-8", errors="replace")):
                return render("reproduction/not_new.md", why=f"`{test}` exists at the base commit")
        return None

    def _changed(self) -> str | None:
        """Why the test configuration or existing tests differ from the base commit, beyond added tests."""
        for rel in integrity.changed(self.base_config, integrity.snapshot(self.worktree.path)):
            base = gitops.base_bytes(self.worktree, rel)
            path = self.worktree.path / rel
            if not is_reproduction_file(rel) or not path.is_file():
                return render("reproduction/changed.md", why=f"{rel} differs from the base commit")
            if base is not None:
                why = only_adds(base.decode("utf-8", errors="replace"),
                                path.read_text(encoding="utf-8", errors="replace"), strict=True)
                if why:
                    return render("reproduction/changed.md", why=f"{rel}: {why}")
        return None

    def _set_aside(self) -> tuple[list[tuple[str, Path, bytes | None]], str | None]:
        """(changed non-test files with their base bytes, or a refusal when one cannot be swapped safely)."""
        root = self.worktree.path.resolve()
        plan = []
        for rel in gitops.changed_paths(self.worktree):
            if is_reproduction_file(rel):
                continue
            path = root / rel
            if path.parent.resolve() != path.parent or not path.parent.resolve().is_relative_to(root):
                return [], render("reproduction/changed.md", why=f"{rel} lies under a symlink")
            plan.append((rel, path, gitops.base_bytes(self.worktree, rel)))
        return plan, None

    @contextmanager
    def _base_code(self, plan: list[tuple[str, Path, bytes | None]]) -> Iterator[None]:
        """The base commit's version of every changed file that is not a test, for the duration of a run
        (symlinks are moved, never followed)."""
        saved: list[tuple[Path, Path | None]] = []
        aside = self.worktree.path.parent / "reproduction-aside"  # the run directory: outside every sandbox
        try:
            for index, (_, path, base) in enumerate(plan):
                kept = None
                if path.is_symlink() or path.exists():
                    aside.mkdir(exist_ok=True)
                    kept = aside / str(index)
                    path.rename(kept)
                saved.append((path, kept))
                if base is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(base)
            if plan:
                self.progress(f"reproduction: {len(plan)} changed source file(s) set aside for the check")
            yield
        finally:
            for path, kept in reversed(saved):
                if path.is_symlink() or path.is_file():
                    path.unlink()
                if kept is not None:
                    kept.rename(path)

    def _accept(self, tests: list[str], run: TestRun) -> Observation:
        files = sorted(rel for rel in gitops.changed_paths(self.worktree) if is_reproduction_file(rel))
        frozen = {rel: _digest(self.worktree.path / rel) for rel in files}
        self.accepted = Accepted(list(tests), frozen, run, self.budget.turns)
        self._close()
        if self.ctx is not None:
            self.ctx.target_tests = list(tests)
        self.progress(f"reproduction accepted: {', '.join(tests)} fail on the base code "
                      f"({run.short_summary()})")
        text = render("reproduction/accepted.md", tests=", ".join(tests), files=", ".join(files) + " are",
                      output=_failures(run.output, self.limits.output_chars))
        return Observation(text, data={"reproduction": "accepted", "tests": tests, "files": files})

    def reopen(self) -> Observation:
        if self.accepted is None:
            return Observation(render("reproduction/not_open.md").strip(), ok=False)
        old = self.accepted
        self.accepted, self.reopened = None, self.reopened + 1
        if self.ctx is not None:
            self.ctx.target_tests = []
        self.trajectory.event("reproduction", action="reopened", tests=old.tests, files=sorted(old.files))
        self.progress(f"reproduction reopened: {', '.join(old.tests)} are no longer the targets")
        self._open()
        return Observation(render("reproduction/reopened.md", tests=", ".join(old.tests),
                                  files=", ".join(sorted(old.files))).strip(),
                           data={"reproduction": "reopened"})

    # -- the verdict -----------------------------------------------------------------------------
    def reference(self) -> dict[str, str]:
        """What the test configuration must be for a verdict: the base commit plus the accepted test files."""
        assert self.accepted is not None
        return {**self.base_config, **self.accepted.files}

    def tampering(self) -> str | None:
        """Why the frozen reproduction no longer is what was accepted (whatever wrote it), or None."""
        assert self.accepted is not None
        moved = [rel for rel, digest in self.accepted.files.items() if _digest(self.worktree.path / rel) != digest]
        if moved:
            return (f"the accepted reproduction changed: {', '.join(moved)} differ from the version the harness "
                    "accepted; the verdict is given only against it")
        return None

    def selection(self) -> list[str]:
        """What a verdict runs: every file of the baseline suite and the reproduction's files."""
        assert self.accepted is not None
        files = {selector_file(node) for node in self.baseline.outcomes}
        return sorted(files | {selector_file(t) for t in self.accepted.tests})

    def settle(self, status: str, reason: str) -> tuple[str, str]:
        """The run's final status: without an accepted reproduction it is never resolved."""
        if self.accepted is not None or status == "error":
            return status, reason
        self._close()
        return STATUS, f"no reproduction accepted: {reason}" if reason else "no reproduction accepted"

    def verdict(self, final: TestRun | None) -> dict[str, Any]:
        """The report's `verdict` for this task: the reproduction with its outputs, or none."""
        if self.accepted is None:
            return {"kind": "none", "tests": [], "checks": self.checks, "reopened": self.reopened,
                    "last_refusal": self.last_refusal}
        acc, limit = self.accepted, self.limits.output_chars
        after = None
        if final is not None:
            after = {"outcomes": {t: ("passed" if final.passed(t) else "failed") for t in acc.tests},
                     "output": _target_lines(final, acc.tests, limit)}
        return {"kind": "reproduction", "tests": acc.tests, "files": sorted(acc.files), "accepted_turn": acc.turn,
                "checks": self.checks, "reopened": self.reopened,
                "before": {"outcomes": {t: "failed" for t in acc.tests},
                           "output": _failures(acc.before.output, limit)},
                "after": after}


def _failures(output: str, limit: int) -> str:
    """pytest's failure section (else its whole output), cut in the middle to `limit` characters."""
    match = _FAILURES.search(output)
    text = output[match.start():] if match else output
    return cut_middle(text.strip(), limit)


def _target_lines(run: TestRun, tests: list[str], limit: int) -> str:
    """The lines of a (whole-suite) run that name the reproduction's tests, its failures, and its last line."""
    names = tuple(tests)
    lines = [line for line in run.output.splitlines() if line.startswith(names)]
    failing = [t for t in tests if not run.passed(t)]
    if failing:
        lines.append(_failures(run.output, limit // 2))
    tail = [line for line in run.output.splitlines() if line.strip()][-1:] if run.output.strip() else []
    return cut_middle("\n".join(lines + tail), limit)


def given_verdict(targets: list[str]) -> dict[str, Any]:
    """The report's `verdict` for a task that named its failing tests."""
    return {"kind": "given", "tests": list(targets)}

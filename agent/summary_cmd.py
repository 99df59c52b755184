"""`agent summary`: the structural summary exactly as `fix` puts it in the prompt."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

from agent import gitops
from agent.config import load_settings
from agent.errors import BadInput
from agent.prompting import render
from agent.runs import cache_dir
from agent.task import Task


def summary_text(repo: Path, tests: list[str], scopes: list[str], tokens: int | None, *, run: bool = False,
                 sandbox: str | None = None, log: Callable[[str], None] = lambda s: None) -> str:
    from agent.summary import summary_for

    git_repo = gitops.open_repo(Path(repo).resolve())
    root = Path(git_repo.working_tree_dir).resolve()
    task = Task.parse(tests[0] if tests else "", tests)  # as `agent fix TEST --test ...` would parse it
    check_targets(root, task.targets)
    settings = load_settings(root, {"sandbox.kind": sandbox})
    traceback = None
    executed: list = []
    if run and tests:
        from agent.run_context import make_sandbox
        from agent.spectrum import executed_definitions
        from sandbox.pytest_runs import run_pytest

        box = make_sandbox(settings, root, env_root=root, read_only=True, log=log)
        command = shlex.split(settings.sandbox.test_command)
        with box:
            result = run_pytest(box, task.target_files, command, settings.sandbox.test_timeout)
            executed = executed_definitions(box, result, task.targets, command, settings.sandbox.test_timeout, log)
        traceback = result.output
    tokens = tokens or settings.loop.summary_tokens
    summary = summary_for(root, task.targets, scopes, tokens, traceback=traceback, task_text=task.text,
                          cache_dir=cache_dir(), executed=executed)
    return render("repo_summary.md", repo_summary=summary.repo_part) + "\n" + summary.task_part


def check_targets(root: Path, targets: list[str]) -> None:
    """Each selector names a file that exists and, when it names a test, a test defined there (exit 2).

    Without --run nothing is collected, so a name is checked against the file's `def`/`class` lines.
    """
    for target in targets:
        path, _, rest = target.partition("::")
        file = root / path
        if not file.is_file():
            raise BadInput(f"no such test file in the repository: {path}")
        names = [re.sub(r"\[.*$", "", part) for part in rest.split("::") if part]
        if not names:
            continue
        text = file.read_text(encoding="utf-8", errors="replace")
        for name in names:
            if not re.search(rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b", text, re.MULTILINE):
                raise BadInput(f"no test matches {target}: {path} defines no {name}")

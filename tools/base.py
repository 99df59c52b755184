"""What every tool shares: the Tool shape, the context it runs in, and safe dispatch.

A tool is data plus one function: `name`, `description`, a pydantic `Args`
model (its JSON schema is exactly what the model sees), a `writes` flag, and
`run(args, ctx) -> Observation`. Dispatch turns bad arguments and refused
paths into observations, so a confused model gets feedback, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from prompts import refusal
from sandbox.base import Sandbox
from sandbox.pytest_runs import TestRun


class ToolRefused(Exception):
    """Raised inside a tool for a request it must not carry out; becomes an observation."""


@dataclass
class Observation:
    """What the model reads back, and the call's effects, which the loop reacts to (it never asks
    which tool ran). `data` carries structured facts for the trajectory (never shown to the model)."""

    text: str
    ok: bool = True
    data: dict[str, Any] = field(default_factory=dict)
    paths: tuple[str, ...] = ()  # repo-relative files the call read or changed: the policy's working set
    test_run: TestRun | None = None  # the tests the call ran
    verify: bool = False  # the call asks the harness for its verdict


@dataclass(frozen=True)
class ToolLimits:
    """How much a tool shows at once; the loop may fill these from config."""

    search_line_chars: int = 200  # a matching line longer than this is cut around the match
    view_lines: int = 200  # window `view` shows when no range (or too wide a range) is asked
    view_line_chars: int = 1000
    listing_entries: int = 300  # directory entries `view` lists
    snippet_context: int = 3  # lines shown around an edit, and around candidates
    edit_candidates: int = 3  # nearest snippets shown when `old` is not found
    test_output_chars: int = 6000  # failure output `run_tests` shows (head and tail kept)


@dataclass
class ToolContext:
    """Everything a tool may touch. Built by the loop once per task."""

    root: Path
    sandbox: Sandbox | None = None
    target_tests: list[str] = field(default_factory=list)
    test_command: list[str] = field(default_factory=lambda: ["python", "-m", "pytest"])
    test_timeout: float = 300.0
    scope_fence: list[str] = field(default_factory=list)  # repo-relative dirs; empty = no fence
    protected_paths: Callable[[str], bool] | None = None  # True for test files edits must not touch
    # The harness's own rule for a write, when it has one (a task's reproduction phase): given the path and,
    # when known, the file's whole new text, a refusal to show the model, or None. It replaces protected_paths.
    write_guard: Callable[[str, str | None], str | None] | None = None
    # The harness's check of a reproduction (`reproduce`): (test ids, reopen) -> what the model reads back.
    reproduction: Callable[[list[str], bool], Observation] | None = None
    allow_test_edits: bool = False
    index: Any = None  # the structural-summary index (outline), passed in by the loop
    touched: set[str] = field(default_factory=set)  # repo-relative paths viewed/edited, for policy
    comments: list[dict[str, Any]] = field(default_factory=list)  # review mode findings
    finished: str | None = None  # the summary passed to `finish`
    limits: ToolLimits = field(default_factory=ToolLimits)


class Tool:
    """Base class: subclasses set the class attributes and implement `run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[BaseModel]]
    writes: ClassVar[bool] = False
    sandboxed: ClassVar[bool] = False  # its writes go through the sandbox (a read-only sandbox stops them)

    def run(self, args: BaseModel, ctx: ToolContext) -> Observation:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The OpenAI/GLM function declaration; key order is fixed so the prompt prefix is byte-stable."""
        params = cls.Args.model_json_schema()
        params.pop("title", None)
        for prop in params.get("properties", {}).values():
            prop.pop("title", None)
        return {
            "type": "function",
            "function": {"name": cls.name, "description": cls.description, "parameters": params},
        }


def schemas(tools: Iterable[Tool]) -> list[dict[str, Any]]:
    return [tool.schema() for tool in tools]


def dispatch(tools: dict[str, Tool], name: str, raw_arguments: str, ctx: ToolContext) -> Observation:
    """Run one tool call; every failure the model can cause comes back as an observation."""
    tool = tools.get(name)
    if tool is None:
        return Observation(f"error: unknown tool {name!r}; available: {', '.join(sorted(tools))}", ok=False)
    try:
        payload = json.loads(raw_arguments or "{}")
    except json.JSONDecodeError as exc:
        return Observation(
            f"error: arguments of {name} are not valid JSON ({exc.msg} at {exc.pos})", ok=False
        )
    if not isinstance(payload, dict):
        return Observation(f"error: arguments of {name} must be a JSON object", ok=False)
    try:
        args = tool.Args.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        return Observation(f"error: invalid arguments for {name}: {problems}", ok=False)
    try:
        return tool.run(args, ctx)
    except ToolRefused as exc:
        return Observation(f"refused: {exc}", ok=False)
    except OSError as exc:  # e.g. a path through a file, a permission: the model's to correct
        return Observation(f"error: {name} failed: {exc.strerror or exc}", ok=False)


def resolve_path(ctx: ToolContext, path: str, *, must_exist: bool = True) -> Path:
    """Resolve a model-given path inside the repo root, or refuse.

    Refuses absolute paths, `..` escapes and symlinks whose target leaves the repo.
    """
    if not path or "\x00" in path:
        raise ToolRefused("empty or invalid path")
    candidate = Path(path)
    if candidate.is_absolute():
        raise ToolRefused(f"{path}: absolute paths are not allowed; use a path relative to the repo root")
    root = ctx.root.resolve()
    full = (root / candidate).resolve()
    if full != root and root not in full.parents:
        raise ToolRefused(f"{path}: outside the repository")
    if must_exist and not full.exists():
        raise ToolRefused(f"{path}: no such file or directory")
    return full


def check_writable(ctx: ToolContext, rel: str, content: str | None = None) -> None:
    """Refuse writes to git metadata, protected test files, and paths outside the scope fence.

    `content` (the file's whole new text) is given once a tool knows it, for the harness's write guard.
    """
    parts = Path(rel).parts
    if ".git" in parts:
        raise ToolRefused(f"{rel}: git metadata is not editable")
    if ctx.write_guard is not None:
        reason = ctx.write_guard(rel, content)
        if reason:
            raise ToolRefused(reason)
    elif ctx.protected_paths is not None and not ctx.allow_test_edits and ctx.protected_paths(rel):
        raise ToolRefused(refusal("protected", path=rel))
    if ctx.scope_fence and not in_scope(ctx, rel):
        fence = ", ".join(ctx.scope_fence)
        raise ToolRefused(refusal("out_of_scope", path=rel, fence=fence))


def in_scope(ctx: ToolContext, rel: str) -> bool:
    """True when `rel` lies under one of the scope-fence directories (or there is no fence)."""
    if not ctx.scope_fence:
        return True
    for fence in ctx.scope_fence:
        f = fence.strip("/").removeprefix("./")
        if f in ("", ".") or rel == f or rel.startswith(f + "/"):
            return True
    return False


def relative(ctx: ToolContext, full: Path) -> str:
    return full.resolve().relative_to(ctx.root.resolve()).as_posix() or "."

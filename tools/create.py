"""`create`: write a new file; never overwrites, so existing work is changed only through `edit`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from prompts import tool_text
from tools.base import Observation, Tool, ToolContext, ToolRefused, check_writable, relative, resolve_path
from tools.textutil import plural


class CreateArgs(BaseModel):
    path: str = Field(description="New file's path, relative to the repo root; parent directories are made.")
    content: str = Field(description="The whole content of the new file.")


class Create(Tool):
    name = "create"
    description = tool_text("create")
    Args = CreateArgs
    writes = True

    def run(self, args: CreateArgs, ctx: ToolContext) -> Observation:
        if args.path.endswith("/"):
            raise ToolRefused(f"{args.path}: a file path is needed, not a directory")
        full = resolve_path(ctx, args.path, must_exist=False)
        rel = relative(ctx, full)
        if full.exists() or full.is_symlink():
            raise ToolRefused(f"{rel} already exists; use edit to change it")
        check_writable(ctx, rel, args.content)
        parent = full.parent
        if parent.exists() and not parent.is_dir():
            raise ToolRefused(f"{relative(ctx, parent)} is a file, not a directory")
        parent.mkdir(parents=True, exist_ok=True)
        with open(full, "x", encoding="utf-8", newline="") as handle:
            handle.write(args.content)
        ctx.touched.add(rel)
        lines = args.content.count("\n") + (0 if args.content.endswith("\n") or not args.content else 1)
        return Observation(f"created {rel} ({plural(lines, 'line')})",
                           paths=(rel,), data={"path": rel, "created": True, "edited": True})

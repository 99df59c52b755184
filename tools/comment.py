"""`comment`: a review finding on one line of one file (review mode only; writes nothing)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from prompts import tool_text
from tools.base import Observation, Tool, ToolContext, ToolRefused, relative, resolve_path
from tools.view import read_text


class CommentArgs(BaseModel):
    path: str = Field(description="File the comment is about, relative to the repo root.")
    line: int = Field(ge=1, description="1-based line the comment refers to (a line of the new version).")
    body: str = Field(min_length=1, description="The review comment: the problem, and a concrete suggestion.")


class Comment(Tool):
    name = "comment"
    description = tool_text("comment")
    Args = CommentArgs

    def run(self, args: CommentArgs, ctx: ToolContext) -> Observation:
        full = resolve_path(ctx, args.path)
        if full.is_dir():
            raise ToolRefused(f"{args.path} is a directory; comment on a line of a file")
        rel = relative(ctx, full)
        text, _ = read_text(full)
        if text is None:
            raise ToolRefused(f"{rel} is a binary file")
        total = len(text.splitlines())
        if args.line > total:
            raise ToolRefused(f"{rel} has {total} lines; line {args.line} is past the end")
        finding = {"path": rel, "line": args.line, "body": args.body.strip()}
        if finding in ctx.comments:
            return Observation(f"this comment on {rel}:{args.line} was already recorded", ok=False)
        ctx.comments.append(finding)
        ctx.touched.add(rel)
        return Observation(f"comment recorded on {rel}:{args.line} ({len(ctx.comments)} so far)",
                           paths=(rel,), data={"comment": finding})

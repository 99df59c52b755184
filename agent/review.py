"""`agent review`: a read-only review of base..head, as inline comments on lines of the diff.

Read-only by construction, three times over: the head revision is materialised from
git objects into a private repository in the run directory (borrowing the user's
objects through `alternates`, so nothing is written to the user's `.git`); the tool
set has no writing tool and no tool that runs commands; and the user's refs, index
and working tree are compared before and after, failing loudly on any change.

Noise control lives here too: a finding must sit on a file line the model could see
(the `comment` tool checks the line exists), at most `max_findings` are kept, none
that repeats an earlier review's comment, and nothing at all when nothing was found.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import gitops
from agent.config import Settings, load_settings
from agent.diffs import FileDiff, parse_diff
from agent.errors import BadInput, EnvironmentProblem
from agent.loop import LoopOutcome
from agent.prompting import render
from agent.report import spend
from agent.run_context import RunContext
from agent.runs import cache_dir
from agent.task import slugify
from agent.verify import Verification
from sandbox.base import SandboxError
from tools.base import Observation, ToolContext, ToolLimits, ToolRefused
from tools.comment import Comment, CommentArgs
from tools.registry import review_tools


class ReadOnlyViolation(EnvironmentProblem):
    """The user's repository changed during a review: a bug to report, never to hide."""


# -- git (through the one git module) --------------------------------------------------------
def resolve_commit(root: Path, ref: str) -> str:
    out = gitops.output(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if not out:
        raise BadInput(f"no such revision in {root}: {ref}")
    return out


def default_base(root: Path, head: str) -> str:
    """Where a local review starts: the fork point from the upstream or main branch, else head~1."""
    for candidate in ("@{upstream}", "origin/HEAD", "origin/main", "origin/master", "main", "master"):
        sha = gitops.output(root, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}")
        if not sha:
            continue
        fork = gitops.output(root, "merge-base", sha, head)
        if fork and fork != head:
            return fork
    parent = gitops.output(root, "rev-parse", "--verify", "--quiet", f"{head}~1^{{commit}}")
    if not parent:
        raise BadInput("nothing to review: give --base (the head commit has no parent)")
    return parent


def repo_state(root: Path) -> dict[str, Any]:
    """What a read-only run must leave exactly as it found it: HEAD, every ref, the index, the tree."""
    index = Path(gitops.run(root, "rev-parse", "--path-format=absolute", "--git-path", "index").strip())
    return {
        "head": gitops.output(root, "rev-parse", "--verify", "--quiet", "HEAD") or "",
        "symbolic_head": gitops.output(root, "symbolic-ref", "--quiet", "HEAD") or "",
        "refs": gitops.run(root, "for-each-ref", "--format=%(refname) %(objectname)"),
        "index": hashlib.sha256(index.read_bytes()).hexdigest() if index.is_file() else None,
        "status": gitops.run(root, "status", "--porcelain=v1", "-uall", "-z"),
    }


def state_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    names = {"head": "HEAD", "symbolic_head": "the checked-out branch", "refs": "refs",
             "index": "the index", "status": "the working tree"}
    return [names[key] for key in before if before[key] != after.get(key)]


def materialise(user_root: Path, commit: str, dest: Path) -> Path:
    """A private repository at `dest` holding `commit`'s files, reading the user's objects only."""
    common = Path(gitops.run(user_root, "rev-parse", "--path-format=absolute", "--git-common-dir").strip())
    dest.mkdir(parents=True)
    gitops.run(dest, "init", "--quiet", write=True)
    (dest / ".git" / "objects" / "info" / "alternates").write_text(str(common / "objects") + "\n")
    gitops.run(dest, "read-tree", commit, write=True)
    gitops.run(dest, "checkout-index", "--all", "--force", write=True)
    return dest


def review_diff(root: Path, fork: str, head: str) -> list[FileDiff]:
    """The files of fork..head with head-side line numbers; fixed prefixes whatever the user's config says."""
    return parse_diff(gitops.run(root, "diff", "--no-color", "--find-renames", "-U3", "--src-prefix=a/",
                                 "--dst-prefix=b/", fork, head))


# -- the diff --------------------------------------------------------------------------------
def render_diff(files: list[FileDiff], limit: int) -> str:
    """The diff as the model reads it: per file, head-side line numbers on added and context lines."""
    parts: list[str] = []
    used = 0
    for item in files:
        title = f"## {item.path} ({item.status}" + (f" from {item.old_path}" if item.old_path else "") + ")"
        body = "\n".join(item.lines) if item.status not in ("deleted", "binary") else "(no head-side lines)"
        block = f"{title}\n```\n{body}\n```"
        if used + len(block) > limit:
            parts.append(f"{title}\n(diff not shown: the review's diff budget is spent; use `view` to read it)")
            continue
        parts.append(block)
        used += len(block)
    return "\n\n".join(parts)


# -- findings --------------------------------------------------------------------------------
def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def is_duplicate(finding: dict[str, Any], earlier: list[dict[str, Any]]) -> bool:
    """Same file and the same point (lines move between pushes, so the text decides)."""
    body = _norm(finding["body"])
    for prior in earlier:
        if prior.get("path") != finding["path"]:
            continue
        ratio = difflib.SequenceMatcher(None, body, _norm(str(prior.get("body", "")))).ratio()
        same_line = prior.get("line") == finding["line"]
        if ratio >= 0.8 or (same_line and ratio >= 0.5):
            return True
    return False


@dataclass
class FindingGate:
    """What a `comment` must pass before it is recorded: the limit, and no repeats of earlier reviews."""

    anchors: dict[str, set[int]]
    prior: list[dict[str, Any]]
    max_findings: int
    repeats: int = 0

    def anchored(self, path: str, line: int) -> bool:
        return line in self.anchors.get(path, set())


class ReviewComment(Comment):
    """`comment` with the review's noise rules; same name, arguments and schema as the plain tool."""

    def __init__(self, gate: FindingGate) -> None:
        self.gate = gate

    def run(self, args: CommentArgs, ctx: ToolContext) -> Observation:
        if len(ctx.comments) >= self.gate.max_findings:
            raise ToolRefused(f"this review keeps at most {self.gate.max_findings} findings and has them; "
                              "call `finish` now")
        path = args.path.strip().removeprefix("./")
        if is_duplicate({"path": path, "line": args.line, "body": args.body}, self.gate.prior):
            self.gate.repeats += 1
            raise ToolRefused("an earlier review of this pull request already made this point; it is not repeated")
        observation = super().run(args, ctx)
        finding = observation.data.get("comment")
        if observation.ok and finding and not self.gate.anchored(finding["path"], finding["line"]):
            observation.text += (" (note: that line is not an added line of the diff, so the finding goes in "
                                 "the review's body rather than inline)")
        return observation


def format_unanchored(findings: list[dict[str, Any]]) -> str:
    return "\n".join(f"- `{f['path']}` line {f['line']}: {f['body']}" for f in findings)


_UNANCHORED = re.compile(r"^- `([^`]+)` line (\d+): (.+)$", re.MULTILINE)


def parse_unanchored(body: str) -> list[dict[str, Any]]:
    """Findings an earlier review put in its body (the format `format_unanchored` writes)."""
    return [{"path": m.group(1), "line": int(m.group(2)), "body": m.group(3)} for m in _UNANCHORED.finditer(body)]


# -- the run ---------------------------------------------------------------------------------
@dataclass
class ReviewOptions:
    repo: Path = Path(".")
    base: str | None = None
    head: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    prior_comments: list[dict[str, Any]] = field(default_factory=list)  # earlier reviews' findings
    max_findings: int | None = None
    mode: str | None = None
    api_key: str | None = None
    client_factory: Callable[[Settings, str | None], Any] | None = None


def run_review(repo: Path, base: str | None = None, head: str | None = None, *,
               options: ReviewOptions | None = None,
               progress: Callable[[str], None] = lambda line: None) -> tuple[dict[str, Any], int]:
    """Review base..head (from their merge base, as a pull request shows it); returns (report, exit code)."""
    opts = options or ReviewOptions()
    user = gitops.open_repo(Path(repo).resolve())
    user_root = Path(user.working_tree_dir).resolve()
    head_sha = resolve_commit(user_root, head or "HEAD")
    base_sha = resolve_commit(user_root, base) if base else default_base(user_root, head_sha)
    fork = gitops.output(user_root, "merge-base", base_sha, head_sha) or base_sha
    # Settings come from the base side: the change under review must not choose where the key goes.
    trusted = gitops.output(user_root, "show", f"{fork}:.agent.toml") or ""
    settings = load_settings(user_root, opts.overrides, repo_config=trusted, warn=progress)
    run = RunContext.check(settings, opts.api_key, progress, opts.client_factory)
    max_findings = opts.max_findings if opts.max_findings is not None else settings.review.max_findings
    before = repo_state(user_root)
    files = review_diff(user_root, fork, head_sha)
    run_dir = run.open("review-" + slugify(head_sha[:12]))
    run.trajectory.event("start", mode="review", base=base_sha, head=head_sha, merge_base=fork,
                         files=[f.path for f in files], max_findings=max_findings, model=settings.model.name,
                         base_url=settings.model.base_url, prior_comments=len(opts.prior_comments))
    progress(f"review {run_dir.name} · {fork[:10]}..{head_sha[:10]} · {len(files)} files changed")
    gate = FindingGate({f.path: f.added for f in files}, list(opts.prior_comments), max_findings)
    outcome, ctx, notes = LoopOutcome("unresolved", ""), None, []
    try:
        if not files:
            outcome = LoopOutcome("reviewed", "empty diff: nothing to review")
        elif max_findings <= 0:
            outcome = LoopOutcome("reviewed", "max_findings is 0: nothing may be posted")
        else:
            tree = materialise(user_root, head_sha, run_dir / "head")
            notes.append(_read_only_sandbox(run, tree))
            ctx, messages = _prepare(tree, files, opts, settings, fork, head_sha, max_findings, progress,
                                     can_run_tests=run.sandbox is not None)
            ctx.sandbox = run.sandbox
            tools = [ReviewComment(gate) if tool.name == "comment" else tool
                     for tool in review_tools(run_tests=run.sandbox is not None)]
            loop = run.make_loop(tools, ctx, lambda: Verification(True, "review finished"), mode=opts.mode,
                                 seeds=[f.path for f in files], nudge="review_nudge.md")
            outcome = loop.run(messages)
            if outcome.status == "resolved":
                outcome.status, outcome.stop_reason = "reviewed", "finished"
    except (KeyboardInterrupt, Exception) as exc:  # noqa: BLE001 - the report and the read-only check still run
        outcome = run.stopped(exc)
    finally:
        run.close()
        shutil.rmtree(run_dir / "head", ignore_errors=True)
    changed = state_changes(before, repo_state(user_root))
    if changed:
        outcome.status = "error"
        outcome.stop_reason = "read-only check failed: the review changed " + ", ".join(changed)
        progress("ERROR: " + outcome.stop_reason)
    report, code = run.finish(_report(outcome, run, ctx, gate, files, notes, changed, base_sha, head_sha, fork,
                                      max_findings), read_only_unchanged=not changed)
    if changed:
        raise ReadOnlyViolation(f"{outcome.stop_reason} (report: {run_dir / 'report.json'})")
    return report, code


def _report(outcome: LoopOutcome, run: RunContext, ctx: ToolContext | None, gate: FindingGate,
            files: list[FileDiff], notes: list[str], changed: list[str], base: str, head: str, fork: str,
            max_findings: int) -> dict[str, Any]:
    findings = list(ctx.comments) if ctx is not None else []
    inline = [f for f in findings if gate.anchored(f["path"], f["line"])]
    loose = [f for f in findings if not gate.anchored(f["path"], f["line"])]
    return {
        "kind": "review",
        "status": outcome.status,
        "stop_reason": outcome.stop_reason,
        "base": base, "head": head, "merge_base": fork,
        "files": [{"path": f.path, "status": f.status, "added_lines": len(f.added)} for f in files],
        "comments": [{"path": f["path"], "line": f["line"], "body": f["body"]} for f in inline],
        "unanchored": [{"path": f["path"], "line": f["line"], "body": f["body"]} for f in loose],
        "body": format_unanchored(loose),
        "summary": (ctx.finished or "") if ctx is not None else "",
        "repeats_suppressed": gate.repeats,
        "max_findings": max_findings,
        "read_only": {"unchanged": not changed, "changed": changed},
        "sandbox": run.sandbox.kind if run.sandbox is not None else "none",
        "notes": [n for n in notes if n],
        **spend(run.budget, outcome),
        "elapsed_seconds": round(time.monotonic() - run.started, 2),
        "run_dir": str(run.run_dir),
    }


def _read_only_sandbox(run: RunContext, tree: Path) -> str:
    """Start a Docker sandbox with the head tree mounted read-only, or say why tests will not run.

    The change under review is untrusted code: it runs only behind Docker's read-only mount and
    `--network none`, never on the host, so without Docker the review reads but does not run.
    A review never builds an environment (that would run the change's setup code with network):
    it uses the image an earlier `agent fix` or `.ci/` build made for the same dependency files.
    """
    if run.settings.sandbox.kind != "docker":
        return "tests not run: the review runs the change's code only in the Docker sandbox"
    try:
        run.start_sandbox(tree, read_only=True, build=False)
    except (SandboxError, EnvironmentProblem) as exc:
        run.sandbox = None
        why = str(exc).splitlines()[0]
        run.progress(f"review: no Docker sandbox ({why}); reading without running tests")
        return f"tests not run: {why}"
    return ""


def _prepare(tree: Path, files: list[FileDiff], opts: ReviewOptions, settings: Settings, fork: str, head: str,
             max_findings: int, progress: Callable[[str], None],
             can_run_tests: bool = False) -> tuple[ToolContext, list[dict[str, Any]]]:
    """The tool context on the head tree, and the prompt: system + repo map, then the diff."""
    from agent.summary import RepoIndex, render_summary
    from agent.summary.scope import Scope

    index = RepoIndex.build(tree, cache_dir=cache_dir())
    changed = [f.path for f in files if f.status not in ("deleted", "binary") and f.path in index.files]
    scope = Scope(seed_files=changed, dirs=sorted({str(Path(p).parent) for p in changed}), fence=[],
                  weights={p: 1.0 for p in changed})
    summary = render_summary(index, scope, settings.loop.summary_tokens)
    for note in summary.notes[:3]:
        progress(f"summary: {note}")
    ctx = ToolContext(root=tree, sandbox=None, index=index, limits=ToolLimits(**settings.tools.model_dump()))
    prior = "\n".join(f"- {p.get('path')}:{p.get('line')}: {str(p.get('body', ''))[:300]}"
                      for p in opts.prior_comments[:50])
    listing = "\n".join(f"- {f.path} ({f.status}" + (f" from {f.old_path}" if f.old_path else "") + ")"
                        for f in files)
    messages = [
        {"role": "system", "content": render("review_system.md", max_findings=max_findings,
                                             run_tests=render("review_run_tests.md") if can_run_tests else "")
         + render("repo_summary.md", repo_summary=summary.repo_part)},
        {"role": "user", "content": render(
            "review_task.md", task_summary=summary.task_part, base=fork[:12], head=head[:12], files=listing,
            diff=render_diff(files, settings.review.diff_chars),
            max_findings=max_findings,
            prior=("\n# Already said by earlier reviews (do not repeat)\n" + prior + "\n") if prior else "")},
    ]
    return ctx, messages

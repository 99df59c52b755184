"""`agent action`: the GitHub Action's entry point, driven by the standard Actions environment.

issues (opened with the trigger phrase, or labelled) and issue_comment (with the trigger
phrase) run `fix` on the workspace, push the branch, open a pull request that links the
issue and comment with the report; a failed run comments why and what it cost, and opens
nothing. pull_request (opened, synchronize, reopened) runs the read-only review and posts
one review, or nothing when there is no finding. Only users with write access may trigger
a run; bots only when allowed. Every decision is logged to stderr (the Actions log).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import gitops
from agent.config import split_list
from agent.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_RESOLVED, EXIT_UNRESOLVED, AgentError
from agent.github import GitHub, GitHubError
from agent.redact import redact

MARKER = "<!-- glm-agent -->"
_SELECTOR = re.compile(r"(?<![\w/.-])([\w./-]+\.py::[\w\[\]\-.,=:]+)")
PUSH_DENIED = ("403", "permission", "denied", "not allowed", "protected branch", "authentication failed",
               "could not read username", "write access")


class ActionError(AgentError):
    """The Action cannot run: a missing variable or an unreadable event (exit 2)."""

    exit_code = EXIT_BAD_INPUT


@dataclass
class ActionEnv:
    event_name: str
    event: dict[str, Any]
    repository: str
    token: str
    api_url: str
    workspace: Path
    server_url: str = "https://github.com"
    trigger: str = "/agent"
    labels: list[str] = field(default_factory=lambda: ["agent"])
    allow_bots: str = ""
    sandbox: str = ""

    @classmethod
    def from_environ(cls, environ: dict[str, str]) -> ActionEnv:
        missing = [name for name in ("GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "GITHUB_REPOSITORY", "GITHUB_TOKEN")
                   if not environ.get(name)]
        if missing:
            raise ActionError("not running in GitHub Actions: missing " + ", ".join(missing))
        try:
            event = json.loads(Path(environ["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ActionError(f"cannot read the event payload: {exc}") from None
        return cls(
            event_name=environ["GITHUB_EVENT_NAME"], event=event, repository=environ["GITHUB_REPOSITORY"],
            token=environ["GITHUB_TOKEN"], api_url=environ.get("GITHUB_API_URL") or "https://api.github.com",
            workspace=Path(environ.get("GITHUB_WORKSPACE") or "."),
            server_url=environ.get("GITHUB_SERVER_URL") or "https://github.com",
            trigger=environ.get("AGENT_TRIGGER", "").strip() or "/agent",
            labels=split_list(environ.get("AGENT_LABELS", "agent")),
            allow_bots=environ.get("AGENT_ALLOW_BOTS", "").strip(),
            sandbox=environ.get("AGENT_SANDBOX", "").strip())

    def overrides(self) -> dict[str, Any]:
        return {"sandbox.kind": sandbox_kind(self.sandbox)}  # the budgets, critical globs etc. come as AGENT_*


def sandbox_kind(requested: str) -> str:
    """Docker unless the workflow names `local`: a missing engine is an error, never a silent fallback
    to running the repository's and the model's code on the runner, next to the tokens."""
    kind = (requested or "docker").strip().lower()
    return "docker" if kind == "auto" else kind


def has_trigger(text: str | None, trigger: str) -> bool:
    return bool(text) and re.search(rf"(?<!\S){re.escape(trigger)}(?!\S)", text or "") is not None


def test_selectors(text: str, workspace: Path) -> list[str]:
    """Test node ids named in the text whose file exists in the workspace (in order, once)."""
    from sandbox.pytest_runs import is_test_file

    found: list[str] = []
    for raw in _SELECTOR.findall(text or ""):
        selector = raw.rstrip(".,:;)")
        path = selector.split("::", 1)[0]
        if selector not in found and is_test_file(path) and (workspace / path).is_file():
            found.append(selector)
    return found


# -- who may trigger -------------------------------------------------------------------------
def is_bot(user: dict[str, Any]) -> bool:
    return user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")


def authorised(env: ActionEnv, gh: GitHub, user: dict[str, Any], log: Callable[[str], None]) -> bool:
    login = str(user.get("login") or "")
    if not login:
        log("permission check: the event names no user; refused")
        return False
    if is_bot(user):
        allowed = split_list(env.allow_bots)
        if env.allow_bots.lower() in ("true", "1", "yes") or login in allowed:
            log(f"permission check: {login} is a bot allowed by allow-bots; accepted")
            return True
        log(f"permission check: {login} is a bot and allow-bots does not name it; ignored")
        return False
    ok, role = gh.can_write(login)
    log(f"permission check: {login} has {role!r} on {env.repository}; "
        + ("accepted" if ok else "refused (write access is required)"))
    return ok


# -- report text -----------------------------------------------------------------------------
def _money(report: dict[str, Any]) -> str:
    cost = report.get("cost") or {"usd": 0.0, "rmb": 0.0}
    return f"¥{cost['rmb']:.4f} / ${cost['usd']:.4f}"


def _tests_line(report: dict[str, Any]) -> str:
    tests = report.get("tests") or {}
    parts = []
    for label in ("before", "after"):
        run = tests.get(label)
        if run:
            targets = ", ".join(f"`{t}` {s}" for t, s in run.get("targets", {}).items()) or "no targets"
            counts = ", ".join(f"{n} {k}" for k, n in run.get("counts", {}).items() if n)
            parts.append(f"{label}: {targets}" + (f" ({counts})" if counts else ""))
    return "; ".join(parts) or "not run"


def _verdict_line(report: dict[str, Any]) -> str:
    """Which kind of evidence the verdict rests on: given tests, the agent's reproduction, or none."""
    verdict = report.get("verdict") or {}
    tests = ", ".join(f"`{t}`" for t in verdict.get("tests") or [])
    kind = verdict.get("kind")
    if kind == "given":
        return f"**given**: the failing tests named in the request ({tests})"
    if kind == "reproduction":
        return ("**reproduction**: tests written by the agent, checked by the harness to fail on the base commit "
                f"({tests})")
    if kind == "none":
        return "**none**: no failing test was named and no reproduction was accepted, so nothing shows the issue fixed"
    return "not stated"


def _fenced(text: str) -> str:
    """A code block that `text` cannot close early (a fence longer than any run of backticks in it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text.strip()}\n{fence}"


def reproduction_section(report: dict[str, Any]) -> str:
    """For a reproduction verdict: its tests, failing on the base commit and passing after, in pytest's words."""
    verdict = report.get("verdict") or {}
    if verdict.get("kind") != "reproduction":
        return ""
    before, after = verdict.get("before") or {}, verdict.get("after") or {}
    tests = ", ".join(f"`{t}`" for t in verdict.get("tests") or [])
    files = ", ".join(f"`{f}`" for f in verdict.get("files") or [])
    parts = ["### Reproduction",
             f"No failing test was named, so the agent wrote {tests} (in {files}); the harness ran "
             "them on the base commit, where they fail, before any source change was allowed.",
             "**Before** (base commit):", _fenced(before.get("output") or "(no output)")]
    if after:
        states = ", ".join(f"`{t}` {s}" for t, s in (after.get("outcomes") or {}).items())
        parts += [f"**After** (this branch): {states}", _fenced(after.get("output") or "(no output)")]
    return "\n\n".join(parts)


def report_table(report: dict[str, Any], pr_url: str | None = None) -> str:
    usage = report.get("usage") or {}
    rows = [("Status", f"**{report.get('status')}**: {report.get('stop_reason', '')}")]
    if pr_url:
        rows.append(("Pull request", pr_url))
    if report.get("branch"):
        rows.append(("Branch", f"`{report['branch']}`" + (f" at `{report['commit'][:12]}`"
                                                          if report.get("commit") else "")))
    rows += [
        ("Verdict", _verdict_line(report)),
        ("Tests", _tests_line(report)),
        ("Turns", str(report.get("turns", 0))),
        ("Tokens", f"in {usage.get('input_tokens', 0)} (cached {usage.get('cached_tokens', 0)}, "
                   f"{usage.get('cached_share', 0.0):.0%}), out {usage.get('output_tokens', 0)}"),
        ("Cost", _money(report)),
    ]
    if report.get("sandbox"):
        rows.append(("Sandbox", _sandbox_line(report)))
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v.replace('|', '∣')} |" for k, v in rows)


def _sandbox_line(report: dict[str, Any]) -> str:
    if report.get("sandbox") == "docker":
        return "Docker (no network, read-only root, resource limits)"
    isolation = report.get("sandbox_isolation") or "unisolated"
    warning = "**unisolated**: the repository's tests and the model's code ran on the runner itself" \
        if isolation.startswith(("unisolated", "none")) else isolation
    return f"local, as the workflow asked ({warning})"


# -- git (through the one git module; the token reaches only fetch and push) ------------------
def auth_env(token: str, server_url: str) -> dict[str, str]:
    """The token as an `http.<server>/.extraheader` for one git command: in its environment, never
    in argv (`ps` shows argv to every user) and never in a config file the run could read."""
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{server_url.rstrip('/')}/.extraheader",
            "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}"}


def strip_persisted_auth(workspace: Path, log: Callable[[str], None]) -> int:
    """Remove `http.*.extraheader` that actions/checkout persisted in the repository's config (or a file
    it includes): a worktree shares that config, so code the run executes could read the token there."""
    listed = gitops.call(workspace, "config", "--show-origin", "--show-scope", "--null", "--get-regexp",
                         r"^http\..*\.extraheader$")
    removed = 0
    entries = listed.stdout.split(b"\0")
    # --null prints scope, origin and "name\nvalue" as three NUL-terminated fields per entry
    for scope, origin, pair in zip(entries[0::3], entries[1::3], entries[2::3], strict=False):
        if scope.decode() not in ("local", "worktree") or not origin.startswith(b"file:"):
            continue
        name = pair.split(b"\n", 1)[0].decode()
        where = Path(os.fsdecode(origin[len(b"file:"):]))
        where = where if where.is_absolute() else workspace / where
        gitops.run(workspace, "config", "--file", str(where), "--unset-all", name, write=True)
        removed += 1
    if removed:
        log(f"removed {removed} persisted credential header(s) from the checkout's git config; "
            "the token is given to push and fetch only")
    return removed


def push_branch(workspace: Path, branch: str, token: str, server_url: str = "https://github.com") -> str | None:
    """Push to origin; None on success, else a one-line reason (token scrubbed)."""
    try:
        proc = gitops.call(workspace, "push", "--quiet", "--no-verify", "origin",
                           f"refs/heads/{branch}:refs/heads/{branch}", write=True,
                           timeout=gitops.NETWORK_TIMEOUT, env=auth_env(token, server_url))
    except gitops.GitError as exc:
        return f"git push failed: {exc}"
    if proc.returncode == 0:
        return None
    text = proc.stderr.strip() or proc.text.strip()
    text = redact(text, [token, auth_env(token, server_url)["GIT_CONFIG_VALUE_0"]])
    last = " ".join(text.splitlines()[-3:])
    if any(word in text.lower() for word in PUSH_DENIED):
        return ("the workflow's token cannot push to this repository (give the job `permissions: contents: write`): "
                + last)
    return f"git push failed: {last}"


def ensure_commits(workspace: Path, shas: list[str], log: Callable[[str], None], token: str = "",
                   server_url: str = "https://github.com") -> None:
    for sha in shas:
        if gitops.call(workspace, "cat-file", "-e", f"{sha}^{{commit}}").returncode != 0:
            log(f"fetching {sha[:12]} from origin")
            gitops.call(workspace, "fetch", "--quiet", "--no-tags", "origin", sha, write=True,
                        timeout=gitops.NETWORK_TIMEOUT, env=auth_env(token, server_url) if token else None)


# -- the events ------------------------------------------------------------------------------
def run_action(environ: dict[str, str] | None = None, log: Callable[[str], None] | None = None) -> tuple[dict, int]:
    """Handle one event; returns (outcome for stdout, exit code)."""
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    env = ActionEnv.from_environ(dict(os.environ if environ is None else environ))
    say(f"agent action: {env.event_name}.{env.event.get('action', '')} on {env.repository}")
    with GitHub(env.token, env.repository, env.api_url, log=say) as gh:
        if env.event_name in ("issues", "issue_comment"):
            return handle_issue(env, gh, say)
        if env.event_name in ("pull_request", "pull_request_target"):
            return handle_pull_request(env, gh, say)
    say(f"event {env.event_name} is not handled; nothing to do")
    return {"outcome": "ignored", "reason": f"event {env.event_name}"}, EXIT_RESOLVED


def _issue_request(env: ActionEnv) -> tuple[str | None, dict[str, Any]]:
    """(why it triggers or None, the user who triggered it)."""
    event, action = env.event, env.event.get("action")
    issue = event.get("issue") or {}
    if env.event_name == "issues":
        if action == "opened" and (has_trigger(issue.get("body"), env.trigger)
                                   or has_trigger(issue.get("title"), env.trigger)):
            return "opened with the trigger phrase", event.get("sender") or issue.get("user") or {}
        if action == "labeled" and (event.get("label") or {}).get("name") in env.labels:
            return f"labelled {event['label']['name']}", event.get("sender") or {}
        return None, {}
    if action != "created" or issue.get("pull_request"):
        return None, {}
    comment = event.get("comment") or {}
    if not has_trigger(comment.get("body"), env.trigger):
        return None, {}
    return f"commented {env.trigger}", comment.get("user") or event.get("sender") or {}


def handle_issue(env: ActionEnv, gh: GitHub, say: Callable[[str], None]) -> tuple[dict, int]:
    from agent.fix import FixOptions, run_fix

    why, user = _issue_request(env)
    if why is None:
        say("no trigger (phrase or label) in this event; nothing to do")
        return {"outcome": "ignored", "reason": "no trigger"}, EXIT_RESOLVED
    if not authorised(env, gh, user, say):
        return {"outcome": "refused", "user": user.get("login")}, EXIT_RESOLVED
    issue = env.event["issue"]
    number = int(issue["number"])
    body = issue.get("body") or ""
    request = ""
    if env.event_name == "issue_comment":
        request = re.sub(rf"(?<!\S){re.escape(env.trigger)}(?!\S)", "", env.event["comment"].get("body") or "").strip()
    text = f"Issue #{number}: {issue.get('title', '').strip()}\n\n{body.strip()}"
    if request and request.lower() not in ("fix", "fix this", "fix it"):
        text += f"\n\nRequest from @{user.get('login')}: {request}"
    targets = test_selectors(body + "\n" + request, env.workspace)
    say(f"issue #{number} ({why} by {user.get('login')}); targets: {', '.join(targets) or 'none'}")
    options = FixOptions(task=text, repo=env.workspace, tests=targets, overrides=env.overrides())
    strip_persisted_auth(env.workspace, say)  # before the run: its code must not find the token in .git/config
    try:
        report, code = run_fix(options, say)
    except AgentError as exc:
        return _fail(gh, number, f"the run could not start: {exc}", None, exc.exit_code, say)
    except Exception as exc:  # noqa: BLE001 - config/model errors: the issue still hears why
        return _fail(gh, number, f"the run could not start: {exc}", None, EXIT_ENVIRONMENT, say)
    if report["status"] == "no_reproduction" and report.get("commit"):
        return _attempt_pushed(env, gh, number, report, code, say)
    if report["status"] != "resolved":
        return _fail(gh, number, f"the agent did not resolve this issue ({report['stop_reason']})", report,
                     code, say)
    if not report.get("commit"):
        return _fail(gh, number, "nothing to change: " + report["stop_reason"], report, EXIT_UNRESOLVED, say)
    problem = push_branch(env.workspace, report["branch"], env.token, env.server_url)
    if problem:
        return _fail(gh, number, problem, report, EXIT_ENVIRONMENT, say)
    base = (env.event.get("repository") or {}).get("default_branch") or "main"
    try:
        pr = gh.create_pull_request(
            head=report["branch"], base=base, title=f"agent: {issue.get('title', '').strip()} (#{number})"[:250],
            body=f"Fixes #{number}\n\n{report_table(report)}\n\n"
                 + (reproduction_section(report) + "\n\n" if reproduction_section(report) else "") + MARKER)
    except GitHubError as exc:
        hint = " (the workflow needs `permissions: pull-requests: write`, and the repository must allow " \
               "Actions to create pull requests)" if exc.status in (403, 404) else ""
        return _fail(gh, number, f"the branch `{report['branch']}` was pushed, but opening the pull request "
                                 f"failed: {exc.message}{hint}", report, EXIT_ENVIRONMENT, say)
    url = pr.get("html_url") or pr.get("url")
    gh.comment_on_issue(number, f"Opened {url} for this issue.\n\n{report_table(report, url)}\n\n{MARKER}")
    say(f"opened {url}")
    return {"outcome": "pull_request", "pull_request": url, "report": _brief(report)}, code


def _attempt_pushed(env: ActionEnv, gh: GitHub, number: int, report: dict[str, Any], code: int,
                    say: Callable[[str], None]) -> tuple[dict, int]:
    """No failing test was accepted: the attempted test is pushed on its branch for a person to finish
    (a branch, never a pull request: nothing on it is a verified fix)."""
    why = f"the agent could not write a test that fails on this issue ({report['stop_reason']})"
    problem = push_branch(env.workspace, report["branch"], env.token, env.server_url)
    if problem:
        return _fail(gh, number, f"{why}; pushing its attempt failed: {problem}", report, code, say)
    say(f"no reproduction; the attempt is on {report['branch']}")
    gh.comment_on_issue(number, f"The agent could not fix this issue: {why}.\n\nIts attempted test is on the "
                                f"branch `{report['branch']}` for someone to finish; no pull request was opened."
                                f"\n\n{report_table(report)}\n\n{MARKER}")
    return {"outcome": "no_reproduction", "branch": report["branch"], "report": _brief(report)}, code


def _fail(gh: GitHub, number: int, why: str, report: dict[str, Any] | None, code: int,
          say: Callable[[str], None]) -> tuple[dict, int]:
    say(f"failed: {why}")
    text = f"The agent could not fix this issue: {why}.\n\nNo pull request was opened."
    if report is not None:
        text += f"\n\n{report_table(report)}"
    else:
        text += "\n\nCost: ¥0.0000 / $0.0000 (no model call was made)."
    gh.comment_on_issue(number, text + f"\n\n{MARKER}")
    return {"outcome": "failed", "reason": why, "report": _brief(report) if report else None}, code or EXIT_UNRESOLVED


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report.get(k) for k in ("status", "stop_reason", "branch", "commit", "turns", "usage", "cost",
                                       "run_dir", "comments", "unanchored") if k in report}


def prior_findings(gh: GitHub, number: int) -> list[dict[str, Any]]:
    """What earlier reviews on this pull request already said: inline comments and body findings."""
    from agent.review import parse_unanchored

    found = [{"path": c.get("path"), "line": c.get("line") or c.get("original_line"), "body": c.get("body", "")}
             for c in gh.list_review_comments(number)]
    for review in gh.list_reviews(number):
        found.extend(parse_unanchored(review.get("body") or ""))
    return found


def handle_pull_request(env: ActionEnv, gh: GitHub, say: Callable[[str], None]) -> tuple[dict, int]:
    from agent.review import ReviewOptions, run_review

    if env.event.get("action") not in ("opened", "synchronize", "reopened"):
        say(f"pull_request.{env.event.get('action')} is not reviewed; nothing to do")
        return {"outcome": "ignored", "reason": "action"}, EXIT_RESOLVED
    pr = env.event["pull_request"]
    if not authorised(env, gh, env.event.get("sender") or pr.get("user") or {}, say):
        return {"outcome": "refused", "user": (env.event.get("sender") or {}).get("login")}, EXIT_RESOLVED
    number, base, head = int(pr["number"]), pr["base"]["sha"], pr["head"]["sha"]
    ensure_commits(env.workspace, [base, head], say, env.token, env.server_url)
    prior = prior_findings(gh, number)
    say(f"reviewing #{number} {base[:10]}..{head[:10]} ({len(prior)} earlier findings)")
    options = ReviewOptions(prior_comments=prior, overrides=env.overrides())
    report, code = run_review(env.workspace, base, head, options=options, progress=say)
    if report["status"] == "error":
        say(f"review failed: {report['stop_reason']}")
        return {"outcome": "failed", "report": _brief(report)}, code
    if not report["comments"] and not report["unanchored"]:
        say("no findings: nothing posted")
        return {"outcome": "no_findings", "report": _brief(report)}, code
    count = len(report["comments"]) + len(report["unanchored"])
    usage = report["usage"]
    header = (f"Agent review of `{head[:12]}`: {count} finding{'s' if count != 1 else ''}.\n\n"
              + (report["body"] + "\n\n" if report["body"] else "")
              + f"<sub>{report['turns']} turns · {usage['input_tokens']} tokens in "
                f"({usage['cached_share']:.0%} cached), {usage['output_tokens']} out · {_money(report)}</sub>\n"
              + MARKER)
    review, moved = gh.create_review(number, commit_id=head, body=header, comments=report["comments"],
                                     anchors=lambda: gh.diff_anchors(number))
    say(f"posted review {review.get('id')} with {len(report['comments']) - len(moved)} inline comment(s)"
        + (f"; {len(moved)} moved into the body" if moved else ""))
    return {"outcome": "reviewed", "review": review.get("id"), "moved": len(moved),
            "report": _brief(report)}, code


def write_outputs(outcome: dict[str, Any], path: str | None) -> None:
    """The step's outputs (`outcome`, `pull-request`) for later steps of the workflow."""
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"outcome={outcome.get('outcome', '')}\n")
        if outcome.get("pull_request"):
            handle.write(f"pull-request={outcome['pull_request']}\n")

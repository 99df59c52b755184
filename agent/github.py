"""GitHub's REST API over httpx: just what the Action needs, with GitHub's rate limits honoured.

Primary limits (`x-ratelimit-remaining: 0`) wait until `x-ratelimit-reset`; secondary
limits (403/429 with `retry-after`) wait that long; 5xx are retried with backoff. The
sleep is injectable so tests run instantly. The token is sent only as a header and never
appears in a message, a log line or a repr.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from agent.diffs import patch_lines
from agent.errors import EXIT_ENVIRONMENT, AgentError
from agent.redact import redact
from agent.retry import backoff, parse_retry_after

WRITE_ROLES = ("admin", "maintain", "write")
API_VERSION = "2022-11-28"


class GitHubError(AgentError):
    """A request GitHub refused; `status` and GitHub's own message, never the token."""

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, status: int, message: str, method: str, path: str) -> None:
        super().__init__(f"GitHub {method} {path}: HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_wait: float = 900.0  # longest single wait for a rate-limit reset


class GitHub:
    """One repository's API client (`owner/name`)."""

    def __init__(self, token: str, repository: str, api_url: str = "https://api.github.com", *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 retry: RetryPolicy | None = None, log: Callable[[str], None] = lambda line: None,
                 timeout: float = 30.0) -> None:
        if "/" not in repository:
            raise ValueError(f"repository must be owner/name, not {repository!r}")
        self.repository = repository
        self._token = token
        self._sleep, self._clock, self._log = sleep, clock, log
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout, follow_redirects=True, headers={
            "Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION, "User-Agent": "glm-agent-action"})

    def __repr__(self) -> str:
        return f"GitHub(repository={self.repository!r}, api_url={str(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return redact(text, [self._token])

    def _wait_for(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying `response`, or None when it is not worth retrying."""
        status = response.status_code
        headers = response.headers
        if status in (403, 429):
            hinted = parse_retry_after(headers)
            if hinted is not None:
                return hinted
            if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
                return max(float(headers["x-ratelimit-reset"]) - self._clock(), 0.0) + 1.0
            if status == 429 or "secondary rate limit" in response.text.lower():
                return 60.0
            return None
        if status in (500, 502, 503, 504):
            return None  # decided by the attempt count in `request`
        return None

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                accept: str | None = None) -> httpx.Response:
        headers = {"Accept": accept} if accept else None
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= self.retry.max_attempts:
                    raise GitHubError(0, self._scrub(f"{type(exc).__name__}: {exc}"), method, path) from None
                self._backoff(attempt, f"{type(exc).__name__}")
                continue
            if response.status_code < 400:
                self._respect_primary_limit(response)
                return response
            wait = self._wait_for(response)
            if wait is None and response.status_code >= 500:
                wait = backoff(attempt, self.retry.backoff_base, self.retry.backoff_cap)
            if wait is None or attempt >= self.retry.max_attempts:
                raise GitHubError(response.status_code, self._message(response), method, path)
            wait = min(wait, self.retry.max_wait)
            self._log(f"github: {method} {path} → {response.status_code}; retrying in {wait:.0f}s "
                      f"(attempt {attempt} of {self.retry.max_attempts})")
            self._sleep(wait)

    def _backoff(self, attempt: int, why: str) -> None:
        wait = backoff(attempt, self.retry.backoff_base, self.retry.backoff_cap)
        self._log(f"github: {why}; retrying in {wait:.1f}s")
        self._sleep(wait)

    def _respect_primary_limit(self, response: httpx.Response) -> None:
        """When the last call spent the quota, wait for the reset before the next one."""
        if response.headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in response.headers:
            wait = min(max(float(response.headers["x-ratelimit-reset"]) - self._clock(), 0.0) + 1.0,
                       self.retry.max_wait)
            self._log(f"github: rate limit spent; waiting {wait:.0f}s for the reset")
            self._sleep(wait)

    def _message(self, response: httpx.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            return self._scrub(response.text[:300])
        message = str(data.get("message", "")) if isinstance(data, dict) else ""
        errors = data.get("errors") if isinstance(data, dict) else None
        if errors:
            details = [e if isinstance(e, str) else e.get("message") or e.get("code") or str(e) for e in errors]
            message += " (" + "; ".join(str(d) for d in details) + ")"
        return self._scrub(message or response.reason_phrase)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body).json()

    def paginate(self, path: str, per_page: int = 100) -> Iterator[Any]:
        """Every item of a list endpoint, following `Link: <...>; rel="next"`."""
        url: str | None = path
        params: dict[str, Any] | None = {"per_page": per_page}
        while url:
            response = self.request("GET", url, params=params)
            items = response.json()
            yield from items
            url = response.links.get("next", {}).get("url")
            params = None  # the next link carries its own query

    # -- endpoints -------------------------------------------------------------------------------
    @property
    def _repo(self) -> str:
        return f"/repos/{self.repository}"

    def get_issue(self, number: int) -> dict[str, Any]:
        return self.get(f"{self._repo}/issues/{number}")

    def comment_on_issue(self, number: int, body: str) -> dict[str, Any]:
        return self.post(f"{self._repo}/issues/{number}/comments", {"body": body})

    def create_pull_request(self, *, head: str, base: str, title: str, body: str) -> dict[str, Any]:
        return self.post(f"{self._repo}/pulls", {"head": head, "base": base, "title": title, "body": body})

    def get_pull_request(self, number: int) -> dict[str, Any]:
        return self.get(f"{self._repo}/pulls/{number}")

    def pull_request_files(self, number: int) -> list[dict[str, Any]]:
        return list(self.paginate(f"{self._repo}/pulls/{number}/files"))

    def pull_request_diff(self, number: int) -> str:
        return self.request("GET", f"{self._repo}/pulls/{number}", accept="application/vnd.github.diff").text

    def list_reviews(self, number: int) -> list[dict[str, Any]]:
        return list(self.paginate(f"{self._repo}/pulls/{number}/reviews"))

    def list_review_comments(self, number: int) -> list[dict[str, Any]]:
        return list(self.paginate(f"{self._repo}/pulls/{number}/comments"))

    def permission(self, user: str) -> str:
        """The user's role on the repository (admin, maintain, write, triage, read, none)."""
        try:
            data = self.get(f"{self._repo}/collaborators/{user}/permission")
        except GitHubError as exc:
            if exc.status == 404:
                return "none"
            raise
        role = data.get("role_name") or data.get("permission") or "none"
        return str(role)

    def can_write(self, user: str) -> tuple[bool, str]:
        role = self.permission(user)
        return role in WRITE_ROLES, role

    def create_review(self, number: int, *, commit_id: str, body: str, comments: list[dict[str, Any]],
                      anchors: Callable[[], dict[str, set[int]]] | None = None) -> tuple[dict[str, Any], list[dict]]:
        """Post one COMMENT review; returns (review, comments moved into the body).

        A 422 means GitHub could not place some comment on the diff: the comments outside
        GitHub's own diff (from `anchors()`, the pull request's files) move into the body and
        the review is posted again; if it is refused again, every comment moves into the body.
        """
        inline = [dict(c, side="RIGHT") for c in comments]
        moved: list[dict[str, Any]] = []
        for attempt in range(3):
            payload = {"commit_id": commit_id, "event": "COMMENT", "body": _with_moved(body, moved),
                       "comments": [{"path": c["path"], "line": c["line"], "side": "RIGHT", "body": c["body"]}
                                    for c in inline]}
            try:
                return self.post(f"{self._repo}/pulls/{number}/reviews", payload), moved
            except GitHubError as exc:
                if exc.status != 422 or not inline:
                    raise
                valid = anchors() if anchors is not None and attempt == 0 else {}
                keep = [c for c in inline if c["line"] in valid.get(c["path"], set())]
                if len(keep) == len(inline):
                    keep = []
                self._log(f"github: review refused ({exc.message}); moving {len(inline) - len(keep)} "
                          "comment(s) into the review body")
                moved.extend(c for c in inline if c not in keep)
                inline = keep
        raise GitHubError(422, "review refused even without inline comments", "POST", f"pulls/{number}/reviews")

    def diff_anchors(self, number: int) -> dict[str, set[int]]:
        """Head-side lines GitHub accepts a RIGHT comment on: every + and context line of each patch."""
        anchors: dict[str, set[int]] = {}
        for item in self.pull_request_files(number):
            anchors[item["filename"]] = patch_lines(item.get("patch") or "")
        return anchors


def _with_moved(body: str, moved: list[dict[str, Any]]) -> str:
    if not moved:
        return body
    from agent.review import format_unanchored

    return (body.rstrip() + "\n\n" if body.strip() else "") + format_unanchored(moved)

"""A fake GitHub REST API on loopback, shaped like the real endpoints the Action uses.

It keeps issues, comments, pull requests (with their files' patches), reviews and review
comments in memory, answers with GitHub's status codes and JSON shapes, paginates with
`Link` headers, sends rate-limit headers, can throw one secondary-limit 403 with
`retry-after`, answers 422 to a review comment outside its diff, and records every request.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

SECONDARY_MESSAGE = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                     "If you reach out to GitHub Support for help, please include the request ID.")
_HUNK_HEADER = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
DIFF_422 = ("Pull request review thread line must be part of the diff and Pull request review thread diff hunk "
            "can't be blank")


def commentable_lines(patch: str) -> set[int]:
    """RIGHT-side lines GitHub lets a review comment sit on: the added and context lines of each hunk.

    The fake's own reading of a patch, written apart from the client's parser so it can catch its bugs.
    """
    lines: set[int] = set()
    number: int | None = None
    for raw in patch.split("\n"):
        header = _HUNK_HEADER.match(raw)
        if header:
            number = int(header.group(1))
        elif number is not None and raw[:1] in ("+", " "):
            lines.add(number)
            number += 1
    return lines


def user(login: str, kind: str = "User") -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10**7, "type": kind,
            "html_url": f"https://github.com/{login}"}


def pull_files_from_git(repo: Path, base: str, head: str) -> list[dict[str, Any]]:
    """The `GET /pulls/{n}/files` items for base...head, computed with git like GitHub does."""
    names = subprocess.run(["git", "diff", "--name-status", f"{base}...{head}"], cwd=repo, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    files = []
    for line in names:
        status, name = line.split("\t", 1)
        patch = subprocess.run(["git", "diff", f"{base}...{head}", "--", name], cwd=repo, check=True,
                               capture_output=True, text=True).stdout
        body = patch[patch.index("@@"):] if "@@" in patch else ""
        files.append({"sha": "0" * 40, "filename": name,
                      "status": {"A": "added", "D": "removed", "M": "modified"}.get(status[0], "modified"),
                      "additions": body.count("\n+"), "deletions": body.count("\n-"), "changes": 0,
                      "patch": body.rstrip("\n")})
    return files


class FakeGitHub:
    def __init__(self, repository: str = "octo/shop", token: str = "ghs_fake_token_0123456789",
                 permissions: dict[str, str] | None = None, origin: Path | None = None,
                 secondary_limit_once: str | None = None, rate_remaining: int = 4999) -> None:
        self.repository = repository
        self.token = token
        self.permissions = permissions if permissions is not None else {"alice": "write"}
        self.origin = origin  # a bare repo: a pull request's head branch must exist there
        self.secondary_limit_once = secondary_limit_once  # regex of "METHOD path" to refuse once
        self.rate_remaining = rate_remaining
        self.rate_reset = int(time.time()) + 3600
        self.issues: dict[int, dict[str, Any]] = {}
        self.issue_comments: dict[int, list[dict[str, Any]]] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.files: dict[int, list[dict[str, Any]]] = {}
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.review_comments: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self._ids = 1000
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- fixtures ----------------------------------------------------------------------------
    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def add_issue(self, number: int, title: str, body: str, author: str = "alice") -> dict[str, Any]:
        issue = {"id": self.next_id(), "number": number, "title": title, "body": body, "state": "open",
                 "user": user(author), "labels": [], "html_url": self.html(f"issues/{number}")}
        self.issues[number] = issue
        return issue

    def add_pull(self, number: int, base: dict[str, Any], head: dict[str, Any],
                 files: list[dict[str, Any]], author: str = "alice") -> dict[str, Any]:
        pull = {"id": self.next_id(), "number": number, "state": "open", "title": f"PR {number}",
                "user": user(author), "base": base, "head": head, "html_url": self.html(f"pull/{number}")}
        self.pulls[number] = pull
        self.files[number] = files
        return pull

    def html(self, rest: str) -> str:
        return f"https://github.com/{self.repository}/{rest}"

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def calls(self, method: str, pattern: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and re.search(pattern, r["path"])]

    def __enter__(self) -> FakeGitHub:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- routing -----------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, str], body: Any, accept: str,
               ) -> tuple[int, Any, dict[str, str]]:
        prefix = f"/repos/{self.repository}"
        if not path.startswith(prefix + "/"):
            return 404, {"message": "Not Found"}, {}
        rest = path[len(prefix):]
        routes = [
            ("GET", r"/issues/(\d+)", self._get_issue),
            ("GET", r"/issues/(\d+)/comments", lambda n: self._list(self.issue_comments.get(int(n), []))),
            ("POST", r"/issues/(\d+)/comments", lambda n: self._comment_issue(int(n), body)),
            ("POST", r"/pulls", lambda: self._create_pull(body)),
            ("GET", r"/pulls/(\d+)", lambda n: self._get_pull(int(n), accept)),
            ("GET", r"/pulls/(\d+)/files", lambda n: self._list(self.files.get(int(n), []))),
            ("GET", r"/pulls/(\d+)/reviews", lambda n: self._list(self.reviews.get(int(n), []))),
            ("POST", r"/pulls/(\d+)/reviews", lambda n: self._create_review(int(n), body)),
            ("GET", r"/pulls/(\d+)/comments", lambda n: self._list(self.review_comments.get(int(n), []))),
            ("GET", r"/collaborators/([^/]+)/permission", self._permission),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, rest)
            if verb == method and match:
                return handler(*match.groups())
        return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, {}

    def _list(self, items: list[Any]) -> tuple[int, Any, dict[str, str]]:
        return 200, ("__list__", items), {}

    def _get_issue(self, number: str) -> tuple[int, Any, dict[str, str]]:
        issue = self.issues.get(int(number))
        return (200, issue, {}) if issue else (404, {"message": "Not Found"}, {})

    def _comment_issue(self, number: int, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if number not in self.issues and number not in self.pulls:
            return 404, {"message": "Not Found"}, {}
        if not isinstance(body, dict) or not body.get("body"):
            return 422, {"message": "Validation Failed", "errors": [{"field": "body", "code": "missing_field"}]}, {}
        comment = {"id": self.next_id(), "body": body["body"], "user": user("github-actions[bot]", "Bot"),
                   "html_url": self.html(f"issues/{number}#issuecomment-{self._ids}")}
        self.issue_comments.setdefault(number, []).append(comment)
        return 201, comment, {}

    def _create_pull(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        missing = [k for k in ("head", "base", "title") if not body.get(k)]
        if missing:
            return 422, {"message": "Validation Failed",
                         "errors": [{"field": k, "code": "missing_field"} for k in missing]}, {}
        if self.origin is not None:
            found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{body['head']}"],
                                   cwd=self.origin, capture_output=True, text=True)
            if found.returncode != 0:
                return 422, {"message": "Validation Failed",
                             "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}]}, {}
        number = max([*self.issues, *self.pulls, 0]) + 1
        pull = self.add_pull(number, {"ref": body["base"]}, {"ref": body["head"], "sha": found.stdout.strip()
                                                              if self.origin is not None else ""}, [])
        pull.update(title=body["title"], body=body.get("body", ""))
        return 201, pull, {}

    def _get_pull(self, number: int, accept: str) -> tuple[int, Any, dict[str, str]]:
        pull = self.pulls.get(number)
        if pull is None:
            return 404, {"message": "Not Found"}, {}
        if "diff" in accept:
            text = "".join(f"diff --git a/{f['filename']} b/{f['filename']}\n{f.get('patch', '')}\n"
                           for f in self.files.get(number, []))
            return 200, ("__text__", text), {}
        return 200, pull, {}

    def _create_review(self, number: int, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if number not in self.pulls:
            return 404, {"message": "Not Found"}, {}
        if body.get("event") not in ("COMMENT", "APPROVE", "REQUEST_CHANGES", None):
            return 422, {"message": "Unprocessable Entity", "errors": ["event is not valid"]}, {}
        valid = {f["filename"]: commentable_lines(f.get("patch") or "") for f in self.files.get(number, [])}
        for comment in body.get("comments") or []:
            if comment.get("side", "RIGHT") != "RIGHT" or comment.get("line") not in valid.get(comment.get("path"),
                                                                                               set()):
                return 422, {"message": "Unprocessable Entity", "errors": [DIFF_422],
                             "documentation_url": "https://docs.github.com/rest/pulls/reviews"}, {}
        review = {"id": self.next_id(), "user": user("github-actions[bot]", "Bot"), "body": body.get("body", ""),
                  "state": "COMMENTED", "commit_id": body.get("commit_id"),
                  "html_url": self.html(f"pull/{number}#pullrequestreview-{self._ids}")}
        self.reviews.setdefault(number, []).append(review)
        for comment in body.get("comments") or []:
            self.review_comments.setdefault(number, []).append({
                "id": self.next_id(), "pull_request_review_id": review["id"], "path": comment["path"],
                "line": comment["line"], "original_line": comment["line"], "side": "RIGHT",
                "body": comment["body"], "commit_id": body.get("commit_id"), "user": review["user"]})
        return 200, review, {}

    def _permission(self, login: str) -> tuple[int, Any, dict[str, str]]:
        role = self.permissions.get(login)
        if role is None:
            return 404, {"message": "Not Found"}, {}
        legacy = {"maintain": "write", "triage": "read"}.get(role, role)
        return 200, {"permission": legacy, "role_name": role, "user": user(login)}, {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FakeGitHub

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = self.owner
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with fake._lock:
            fake.requests.append({"method": method, "path": url.path, "query": query, "body": body,
                                  "authorization": self.headers.get("Authorization", ""),
                                  "accept": self.headers.get("Accept", "")})
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                return self._send(401, {"message": "Bad credentials",
                                        "documentation_url": "https://docs.github.com/rest"}, {})
            key = f"{method} {url.path}"
            if fake.secondary_limit_once and re.search(fake.secondary_limit_once, key):
                fake.secondary_limit_once = None
                return self._send(403, {"message": SECONDARY_MESSAGE}, {"retry-after": "1"})
            fake.rate_remaining = max(fake.rate_remaining - 1, 0)
            status, payload, headers = fake.handle(method, url.path, query, body, self.headers.get("Accept", ""))
        if isinstance(payload, tuple) and payload[0] == "__list__":
            payload, headers = self._page(url.path, query, payload[1])
        self._send(status, payload, headers)

    def _page(self, path: str, query: dict[str, str], items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        per_page = min(int(query.get("per_page", 30)), 100)
        page = int(query.get("page", 1))
        last = max((len(items) + per_page - 1) // per_page, 1)
        links = []
        base = f"{self.owner.base_url}{path}"
        if page < last:
            links.append(f'<{base}?{urlencode({"per_page": per_page, "page": page + 1})}>; rel="next"')
            links.append(f'<{base}?{urlencode({"per_page": per_page, "page": last})}>; rel="last"')
        if page > 1:
            links.append(f'<{base}?{urlencode({"per_page": per_page, "page": 1})}>; rel="first"')
        headers = {"Link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page: page * per_page], headers

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        if isinstance(payload, tuple) and payload[0] == "__text__":
            data, kind = payload[1].encode(), "text/plain; charset=utf-8"
        else:
            data, kind = json.dumps(payload).encode(), "application/json; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ratelimit-limit", "5000")
        self.send_header("x-ratelimit-remaining", str(self.owner.rate_remaining))
        self.send_header("x-ratelimit-reset", str(self.owner.rate_reset))
        self.send_header("x-ratelimit-resource", "core")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

"""The Action's token reaches only the push (issue 13): not the checkout's git config, not argv.

actions/checkout persists `http.https://github.com/.extraheader` (in `.git/config`, or in a file
that config includes); a worktree shares that config, so code the run executes could read the
token with `git config`. The repository's conftest.py here does exactly that at reproduction and
writes what it found into the worktree, which the agent commits and pushes.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from agent.action import push_branch
from evals.fake_glm import FakeGLM
from evals.sample_repo import FILES, TARGET, fixing_script, git, make_sample_repo
from tests.conftest import TEST_KEY
from tests.fake_github import FakeGitHub, user
from tests.test_action import REPOSITORY, issue_payload, origin_branches, run_action

LEAKY_CONFTEST = '''\
"""Reads the git config the way model-written code could, and leaves what it saw in the worktree."""
import subprocess
from pathlib import Path

root = Path(__file__).resolve().parent
seen = subprocess.run(["git", "config", "--get-regexp", "extraheader"], cwd=root, capture_output=True, text=True)
(root / "leak.txt").write_text("git config saw: " + seen.stdout + "\\n")
'''


def basic(token: str) -> str:
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


def test_the_fix_run_cannot_read_the_checkouts_persisted_token(tmp_path, agent_env):
    source = make_sample_repo(tmp_path / "source", {**FILES, "conftest.py": LEAKY_CONFTEST})
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(source, "push", "-q", str(origin), "main")
    workspace = tmp_path / "workspace"
    git(tmp_path, "clone", "-q", str(origin), str(workspace))
    site = {"origin": origin, "workspace": workspace, "tmp": tmp_path}
    body = f"/agent\n\n`{TARGET}` fails."
    event = {"action": "opened", "issue": issue_payload(7, body), "repository": REPOSITORY, "sender": user("alice")}
    with FakeGitHub(origin=origin) as fake, FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as glm:
        header = f"AUTHORIZATION: basic {basic(fake.token)}"
        # as actions/checkout leaves it: in .git/config (v4) and in a file the config includes (v6)
        git(workspace, "config", "http.https://github.com/.extraheader", header)
        included = tmp_path / "runner-temp" / "git-credentials.config"
        included.parent.mkdir()
        included.write_text(f'[http "https://github.com/"]\n\textraheader = {header}\n')
        git(workspace, "config", "include.path", str(included))
        assert git(workspace, "config", "--get-regexp", "extraheader").count(basic(fake.token)) == 2
        fake.add_issue(7, event["issue"]["title"], body)
        result = run_action(site, agent_env, fake, glm, "issues", event)
        token = fake.token
    assert result.code == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["outcome"] == "pull_request"
    branch = outcome["report"]["branch"]
    assert branch in origin_branches(origin)
    leak = git(origin, "show", f"{branch}:leak.txt")
    assert leak.startswith("git config saw:")
    assert basic(token) not in leak and token not in leak, "the run read the token from the git config"
    assert "removed 2 persisted credential header(s)" in result.stderr
    assert basic(token) not in (workspace / ".git" / "config").read_text() + included.read_text()


class _Recorder(BaseHTTPRequestHandler):
    """A git remote over HTTP that refuses every push, noting what the client sent and what `ps` showed."""

    seen: list[dict[str, str]] = []
    token = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        argv = []
        for proc in Path("/proc").iterdir():
            try:
                argv.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
        self.seen.append({"authorization": self.headers.get("Authorization", ""),
                          "argv_with_token": str(any(self.token in a or basic(self.token) in a for a in argv))})
        self.send_response(403)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"Permission to octo/shop.git denied to github-actions[bot].\n")

    def log_message(self, *args: object) -> None:
        pass


def test_the_push_alone_gets_the_token_through_its_environment(tmp_path):
    workspace = make_sample_repo(tmp_path / "workspace")
    git(workspace, "branch", "agent/fix-1")
    token = "ghs_push_only_0123456789abcdef"
    _Recorder.seen, _Recorder.token = [], token
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        git(workspace, "remote", "add", "origin", f"{url}/octo/shop.git")
        problem = push_branch(workspace, "agent/fix-1", token, server_url=url)
    finally:
        server.shutdown()
        server.server_close()
    assert problem is not None and "cannot push" in problem and token not in problem
    assert _Recorder.seen, "git never reached the remote"
    assert _Recorder.seen[0]["authorization"] == f"basic {basic(token)}"
    assert _Recorder.seen[0]["argv_with_token"] == "False", "the token was visible in a process's argv"
    assert basic(token) not in (workspace / ".git" / "config").read_text()
    assert "GIT_CONFIG_COUNT" not in os.environ

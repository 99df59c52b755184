"""The GitHub REST client against the fake GitHub over real HTTP: auth, pages, limits, 422, secrecy."""

from __future__ import annotations

import pytest

from agent.github import GitHub, GitHubError
from tests.fake_github import FakeGitHub

TOKEN = "ghs_fake_token_0123456789"


def client(fake: FakeGitHub, sleeps: list[float], **kwargs) -> GitHub:
    return GitHub(TOKEN, fake.repository, fake.base_url, sleep=sleeps.append, **kwargs)


def test_pagination_follows_link_headers():
    with FakeGitHub() as fake:
        fake.add_pull(3, {"sha": "a" * 40}, {"sha": "b" * 40}, [])
        fake.review_comments[3] = [{"id": i, "path": "x.py", "line": i, "body": f"c{i}"} for i in range(1, 8)]
        sleeps: list[float] = []
        with client(fake, sleeps) as gh:
            items = list(gh.paginate(f"/repos/{fake.repository}/pulls/3/comments", per_page=3))
        gets = fake.calls("GET", r"/pulls/3/comments$")
    assert [c["id"] for c in items] == list(range(1, 8))
    assert [r["query"].get("page", "1") for r in gets] == ["1", "2", "3"]
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in gets)


def test_secondary_limit_waits_retry_after_then_succeeds():
    with FakeGitHub(secondary_limit_once=r"POST .*/issues/5/comments") as fake:
        fake.add_issue(5, "bug", "body")
        sleeps: list[float] = []
        with client(fake, sleeps) as gh:
            comment = gh.comment_on_issue(5, "hello")
        posts = fake.calls("POST", r"/issues/5/comments$")
    assert comment["body"] == "hello"
    assert sleeps == [1.0] and len(posts) == 2
    assert len(fake.issue_comments[5]) == 1


def test_spent_primary_limit_waits_until_reset():
    with FakeGitHub(rate_remaining=1) as fake:
        fake.add_issue(5, "bug", "body")
        now = fake.rate_reset - 30
        sleeps: list[float] = []
        with client(fake, sleeps, clock=lambda: now) as gh:
            assert gh.get_issue(5)["title"] == "bug"
    assert sleeps == [31.0]  # remaining hit 0: wait for the reset (+1 s) before the next call


def test_permission_roles_and_unknown_user():
    with FakeGitHub(permissions={"alice": "admin", "bob": "maintain", "carol": "triage", "dan": "read"}) as fake:
        with client(fake, []) as gh:
            verdicts = {u: gh.can_write(u) for u in ("alice", "bob", "carol", "dan", "eve")}
    assert verdicts == {"alice": (True, "admin"), "bob": (True, "maintain"), "carol": (False, "triage"),
                        "dan": (False, "read"), "eve": (False, "none")}


def test_token_never_in_errors_or_repr():
    with FakeGitHub(token="ghs_other_token") as fake:
        gh = client(fake, [])
        with pytest.raises(GitHubError) as caught:
            gh.get_issue(1)
        gh.close()
    assert caught.value.status == 401 and "Bad credentials" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(gh)


def test_review_comment_outside_the_diff_moves_into_the_body():
    patch = "@@ -1,3 +1,4 @@\n a\n+b\n c\n d"
    with FakeGitHub() as fake:
        fake.add_pull(9, {"sha": "a" * 40}, {"sha": "b" * 40}, [
            {"filename": "x.py", "status": "modified", "patch": patch},
            {"filename": "big.py", "status": "modified"},  # GitHub sends no patch for a large diff
        ])
        comments = [{"path": "x.py", "line": 2, "body": "inside"}, {"path": "big.py", "line": 10, "body": "outside"}]
        with client(fake, []) as gh:
            review, moved = gh.create_review(9, commit_id="b" * 40, body="Summary", comments=comments,
                                             anchors=lambda: gh.diff_anchors(9))
        posts = fake.calls("POST", r"/pulls/9/reviews$")
    assert len(posts) == 2  # refused once with 422, then posted
    assert moved == [{"path": "big.py", "line": 10, "body": "outside", "side": "RIGHT"}]
    assert posts[1]["body"]["comments"] == [{"path": "x.py", "line": 2, "side": "RIGHT", "body": "inside"}]
    assert "`big.py` line 10: outside" in review["body"] and review["body"].startswith("Summary")
    assert fake.review_comments[9][0]["path"] == "x.py"

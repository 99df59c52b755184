"""`agent action` end to end, in a subprocess: event payloads shaped like GitHub's, the fake GitHub
over real HTTP, a bare repository as `origin`, the scripted model, the local sandbox."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import FIXED_LINE, TARGET, fixing_script, git, make_sample_repo
from tests.conftest import TEST_KEY, run_cli
from tests.fake_github import FakeGitHub, pull_files_from_git, user
from tests.test_review import EMPTY, FINISH, add_feature, comment

REPO = "octo/shop"
REPOSITORY = {"id": 1296269, "name": "shop", "full_name": REPO, "owner": user("octo", "Organization"),
              "private": False, "default_branch": "main", "html_url": f"https://github.com/{REPO}"}


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    return make_site(tmp_path)


def make_site(tmp_path: Path) -> dict[str, Path]:
    """`origin` (bare) holding the sample repo, and the job's workspace cloned from it."""
    source = make_sample_repo(tmp_path / "source")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(source, "push", "-q", str(origin), "main")
    git(tmp_path, "clone", "-q", str(origin), str(tmp_path / "workspace"))
    return {"origin": origin, "workspace": tmp_path / "workspace", "tmp": tmp_path}


def issue_payload(number: int, body: str, author: str = "alice") -> dict:
    return {"id": 90000 + number, "number": number, "title": "Discount is ten times too big", "body": body,
            "user": user(author), "labels": [], "state": "open", "comments": 0,
            "html_url": f"https://github.com/{REPO}/issues/{number}"}


def run_action(site: dict, env: dict, fake: FakeGitHub, glm: FakeGLM, name: str, event: dict, **extra: str):
    path = site["tmp"] / f"event-{name}.json"
    path.write_text(json.dumps(event))
    full = dict(env, GITHUB_EVENT_NAME=name, GITHUB_EVENT_PATH=str(path), GITHUB_REPOSITORY=REPO,
                GITHUB_TOKEN=fake.token, GITHUB_API_URL=fake.base_url, GITHUB_WORKSPACE=str(site["workspace"]),
                GITHUB_ACTIONS="true", AGENT_SANDBOX="local", AGENT_BASE_URL=glm.base_url)
    full.update(extra)
    result = run_cli(["action"], full)
    assert fake.token not in result.stdout + result.stderr and TEST_KEY not in result.stdout + result.stderr
    return result


def origin_branches(origin: Path) -> list[str]:
    return git(origin, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


def test_issue_with_the_trigger_becomes_a_pull_request(site, agent_env):
    body = f"/agent\n\nApplying a 10% discount to 200 gives 20. `{TARGET}` fails."
    event = {"action": "opened", "issue": issue_payload(7, body), "repository": REPOSITORY, "sender": user("alice")}
    with FakeGitHub(origin=site["origin"]) as fake, FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as glm:
        fake.add_issue(7, event["issue"]["title"], body)
        result = run_action(site, agent_env, fake, glm, "issues", event)
        task = glm.requests[0]["messages"][1]["content"]
    assert result.code == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["outcome"] == "pull_request" and outcome["report"]["status"] == "resolved"
    assert "permission check: alice has 'write'" in result.stderr
    assert "Issue #7: Discount is ten times too big" in task and TARGET in task
    branch = outcome["report"]["branch"]
    assert branch in origin_branches(site["origin"])
    assert FIXED_LINE.strip() in git(site["origin"], "show", f"{branch}:shop/cart.py")
    (pull,) = fake.calls("POST", r"/pulls$")
    assert pull["body"]["head"] == branch and pull["body"]["base"] == "main"
    assert pull["body"]["body"].startswith("Fixes #7")
    (note,) = fake.issue_comments[7]
    pr_url = outcome["pull_request"]
    for text in (pr_url, "resolved", "Tests", f"`{TARGET}` passed", "Turns", "cached", "¥", "$",
                 f"**given**: the failing tests named in the request (`{TARGET}`)"):
        assert text in note["body"], text
    assert git(site["workspace"], "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"


def test_issue_naming_no_test_opens_a_pull_request_that_shows_the_reproduction(site, agent_env):
    """No test id in the issue: the run reproduces first, and the PR body and comment say so, with the
    reproduction failing on the base commit and passing on the branch, in pytest's words."""
    from tests.test_reproduction_phase import FIX, REPRO, REPRO_FILE, call, create, reproduce

    body = "/agent\n\nApplying a 10% discount to 200 leaves nothing: it should leave 180."
    event = {"action": "opened", "issue": issue_payload(9, body), "repository": REPOSITORY, "sender": user("alice")}
    turns = [create(), reproduce(REPRO), FIX, call("run_tests")]
    with FakeGitHub(origin=site["origin"]) as fake, FakeGLM(turns=turns, api_key=TEST_KEY) as glm:
        fake.add_issue(9, event["issue"]["title"], body)
        result = run_action(site, agent_env, fake, glm, "issues", event)
    assert result.code == 0, result.stderr
    assert "targets: none" in result.stderr
    outcome = json.loads(result.stdout)
    branch = outcome["report"]["branch"]
    assert REPRO_FILE in git(site["origin"], "ls-tree", "-r", "--name-only", branch)
    (pull,) = fake.calls("POST", r"/pulls$")
    text = pull["body"]["body"]
    assert "**reproduction**: tests written by the agent" in text and f"`{REPRO}`" in text
    before, after = text.split("**Before** (base commit):")[1].split("**After** (this branch):")
    assert "assert 0.0 == 180.0" in before and "FAILED" in before
    assert f"`{REPRO}` passed" in after and f"{REPRO} PASSED" in after
    (note,) = fake.issue_comments[9]
    assert "**reproduction**" in note["body"]


def test_a_run_without_reproduction_says_its_verdict_is_none(site, agent_env):
    body = "/agent\n\nDiscounts are wrong."
    event = {"action": "opened", "issue": issue_payload(11, body), "repository": REPOSITORY, "sender": user("alice")}
    from tests.test_reproduction_phase import FINISH, FIX

    with FakeGitHub(origin=site["origin"]) as fake, FakeGLM(turns=[FIX, FINISH, FINISH, FINISH],
                                                            api_key=TEST_KEY) as glm:
        fake.add_issue(11, event["issue"]["title"], body)
        result = run_action(site, agent_env, fake, glm, "issues", event)
    assert result.code == 1, result.stderr
    (note,) = fake.issue_comments[11]
    assert "no reproduction accepted" in note["body"] and "**none**: no failing test was named" in note["body"]
    assert fake.calls("POST", r"/pulls$") == []


def test_a_run_that_cannot_reproduce_pushes_its_attempted_test_but_opens_no_pull_request(site, agent_env):
    body = "/agent\n\nDiscounts are wrong."
    event = {"action": "opened", "issue": issue_payload(12, body), "repository": REPOSITORY, "sender": user("alice")}
    from tests.test_reproduction_phase import REPRO, REPRO_FILE, REPRO_TEXT, call, create, reproduce

    passing = REPRO_TEXT.replace("== 180.0", "> 0 or True")
    turns = [create(passing), reproduce(REPRO)] + [call("view", path="shop/cart.py")] * 10
    with FakeGitHub(origin=site["origin"]) as fake, FakeGLM(turns=turns, api_key=TEST_KEY) as glm:
        fake.add_issue(12, event["issue"]["title"], body)
        result = run_action(site, agent_env, fake, glm, "issues", event, AGENT_MAX_TURNS="8")
    assert result.code == 1, result.stderr
    assert json.loads(result.stdout)["outcome"] == "no_reproduction"
    (note,) = fake.issue_comments[12]
    branch = next(b for b in origin_branches(site["origin"]) if b != "main")
    assert f"branch `{branch}`" in note["body"] and "no pull request was opened" in note["body"]
    assert fake.calls("POST", r"/pulls$") == []
    assert git(site["origin"], "show", f"{branch}:{REPRO_FILE}") == passing  # the attempt, for a person to finish


def test_failed_run_comments_why_and_what_it_cost_and_opens_nothing(site, agent_env):
    event = {"action": "created", "issue": issue_payload(8, f"`{TARGET}` fails"), "repository": REPOSITORY,
             "comment": {"id": 5001, "body": "/agent fix", "user": user("alice")}, "sender": user("alice")}
    turns = [{"content": "I cannot fix this."}, {"content": "Still no idea."}]
    with FakeGitHub(origin=site["origin"]) as fake, FakeGLM(turns=turns, api_key=TEST_KEY) as glm:
        fake.add_issue(8, event["issue"]["title"], event["issue"]["body"])
        result = run_action(site, agent_env, fake, glm, "issue_comment", event)
    assert result.code == 1, result.stderr
    assert json.loads(result.stdout)["outcome"] == "failed"
    (note,) = fake.issue_comments[8]
    assert "could not fix" in note["body"] and "model_gave_up" in note["body"]
    assert "No pull request was opened" in note["body"] and "¥" in note["body"] and "$" in note["body"]
    assert fake.calls("POST", r"/pulls$") == [] and origin_branches(site["origin"]) == ["main"]


@pytest.mark.parametrize("who", ["reader", "stranger", "bot"])
def test_only_users_with_write_access_may_trigger(site, agent_env, who):
    sender = {"reader": user("mallory"), "stranger": user("eve"), "bot": user("dependabot[bot]", "Bot")}[who]
    event = {"action": "created", "issue": issue_payload(9, "broken"), "repository": REPOSITORY,
             "comment": {"id": 5002, "body": "please /agent", "user": sender}, "sender": sender}
    with FakeGitHub(permissions={"mallory": "read"}) as fake, FakeGLM(turns=fixing_script(),
                                                                      api_key=TEST_KEY) as glm:
        fake.add_issue(9, "x", "broken")
        result = run_action(site, agent_env, fake, glm, "issue_comment", event)
        assert glm.requests == []
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["outcome"] == "refused"
    assert fake.issue_comments == {} and fake.calls("POST", r"/pulls$") == []
    if who == "bot":
        assert "is a bot" in result.stderr and fake.calls("GET", r"/permission$") == []
    else:
        assert f"permission check: {sender['login']} has" in result.stderr and "refused" in result.stderr


def test_comment_without_the_trigger_is_ignored(site, agent_env):
    event = {"action": "created", "issue": issue_payload(9, "broken"), "repository": REPOSITORY,
             "comment": {"id": 5003, "body": "/agents are great", "user": user("alice")}, "sender": user("alice")}
    with FakeGitHub() as fake, FakeGLM(turns=[], api_key=TEST_KEY) as glm:
        result = run_action(site, agent_env, fake, glm, "issue_comment", event)
    assert result.code == 0 and json.loads(result.stdout)["outcome"] == "ignored"
    assert fake.requests == []


def test_token_without_push_rights_gives_a_clear_failure(site, agent_env):
    hook = site["origin"] / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'Permission to octo/shop.git denied to github-actions[bot].' >&2\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    event = {"action": "labeled", "issue": issue_payload(10, f"`{TARGET}` fails"), "label": {"name": "agent"},
             "repository": REPOSITORY, "sender": user("alice")}
    with FakeGitHub(origin=site["origin"]) as fake, FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as glm:
        fake.add_issue(10, "x", event["issue"]["body"])
        result = run_action(site, agent_env, fake, glm, "issues", event)
    assert result.code == 3, result.stderr
    (note,) = fake.issue_comments[10]
    assert "cannot push" in note["body"] and "contents: write" in note["body"]
    assert "No pull request was opened" in note["body"] and "resolved" in note["body"]
    assert fake.calls("POST", r"/pulls$") == [] and origin_branches(site["origin"]) == ["main"]


# -- pull requests ---------------------------------------------------------------------------
def pull_event(site: dict, fake: FakeGitHub, action: str = "opened", drop_patch: bool = False) -> tuple[dict, int]:
    workspace = site["workspace"]
    line = add_feature(workspace)
    git(workspace, "push", "-q", "origin", "feature")
    base, head = git(workspace, "rev-parse", "main").strip(), git(workspace, "rev-parse", "feature").strip()
    files = pull_files_from_git(workspace, base, head)
    if drop_patch:
        files[0].pop("patch")  # GitHub sends no patch for a large diff: nothing there can be commented inline
    pull = fake.add_pull(12, {"ref": "main", "sha": base, "repo": REPOSITORY},
                         {"ref": "feature", "sha": head, "repo": REPOSITORY}, files)
    event = {"action": action, "number": 12, "pull_request": pull, "repository": REPOSITORY,
             "sender": user("alice")}
    if action == "synchronize":
        event.update(before=base, after=head)
    return event, line


def test_pull_request_gets_one_review_with_inline_comments(site, agent_env):
    with FakeGitHub(secondary_limit_once=r"POST .*/pulls/12/reviews$") as fake:
        event, line = pull_event(site, fake)
        turns = [{"tool_calls": [{"name": "view", "arguments": {"path": "shop/cart.py"}}]},
                 comment("shop/cart.py", line, EMPTY),
                 comment("shop/cart.py", 6, "cart_total accepts negative prices."), FINISH]
        with FakeGLM(turns=turns, api_key=TEST_KEY) as glm:
            result = run_action(site, agent_env, fake, glm, "pull_request", event)
        posts = fake.calls("POST", r"/pulls/12/reviews$")
    assert result.code == 0, result.stderr
    assert len(posts) == 2 and "retrying in 1s" in result.stderr  # the secondary limit, waited out once
    (review,) = fake.reviews[12]
    assert review["commit_id"] == event["pull_request"]["head"]["sha"]
    assert posts[1]["body"]["event"] == "COMMENT"
    assert posts[1]["body"]["comments"] == [{"path": "shop/cart.py", "line": line, "side": "RIGHT", "body": EMPTY}]
    assert "`shop/cart.py` line 6: cart_total accepts negative prices." in review["body"]
    assert "2 findings" in review["body"] and "¥" in review["body"]


def test_comment_github_cannot_place_moves_into_the_body(site, agent_env):
    with FakeGitHub() as fake:
        event, line = pull_event(site, fake, drop_patch=True)
        with FakeGLM(turns=[comment("shop/cart.py", line, EMPTY), FINISH], api_key=TEST_KEY) as glm:
            result = run_action(site, agent_env, fake, glm, "pull_request", event)
        posts = fake.calls("POST", r"/pulls/12/reviews$")
    assert result.code == 0, result.stderr
    assert len(posts) == 2 and posts[1]["body"]["comments"] == []
    (review,) = fake.reviews[12]
    assert f"`shop/cart.py` line {line}: {EMPTY}" in review["body"]
    assert json.loads(result.stdout)["moved"] == 1


def test_no_finding_posts_nothing_and_earlier_findings_are_not_repeated(site, agent_env):
    with FakeGitHub() as fake:
        event, line = pull_event(site, fake, action="synchronize")
        with FakeGLM(turns=[{"content": "Looks good to me!"}, FINISH], api_key=TEST_KEY) as glm:
            quiet = run_action(site, agent_env, fake, glm, "pull_request", event)
        fake.review_comments[12] = [{"id": 1, "path": "shop/cart.py", "line": line, "original_line": line,
                                     "body": EMPTY, "user": user("github-actions[bot]", "Bot")}]
        with FakeGLM(turns=[comment("shop/cart.py", line, EMPTY), FINISH], api_key=TEST_KEY) as glm:
            again = run_action(site, agent_env, fake, glm, "pull_request", event)
        posts = fake.calls("POST", r"/pulls/12/reviews$")
    assert quiet.code == 0 and again.code == 0, quiet.stderr + again.stderr
    assert json.loads(quiet.stdout)["outcome"] == "no_findings"
    assert json.loads(again.stdout)["outcome"] == "no_findings"
    assert "no findings: nothing posted" in quiet.stderr
    assert posts == [] and 12 not in fake.reviews


def test_pull_request_max_findings_from_the_environment(site, agent_env):
    with FakeGitHub() as fake:
        event, line = pull_event(site, fake)
        turns = [comment("shop/cart.py", line, EMPTY), comment("shop/cart.py", line - 1, "Docstring: say empty."),
                 FINISH]
        with FakeGLM(turns=turns, api_key=TEST_KEY) as glm:
            result = run_action(site, agent_env, fake, glm, "pull_request", event, AGENT_MAX_FINDINGS="1")
    assert result.code == 0, result.stderr
    (review,) = fake.reviews[12]
    assert [c["line"] for c in fake.review_comments[12]] == [line] and "1 finding." in review["body"]


def test_outside_actions_it_is_bad_input(agent_env):
    env = {k: v for k, v in agent_env.items() if not k.startswith("GITHUB_")}
    result = run_cli(["action"], env)
    assert result.code == 2 and "missing GITHUB_EVENT_NAME" in result.stderr and "Traceback" not in result.stderr

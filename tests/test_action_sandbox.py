"""The Action runs tests in Docker; it never falls back to running them on the runner unasked."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import TARGET, fixing_script, git
from tests.conftest import TEST_KEY
from tests.fake_github import FakeGitHub, user
from tests.test_action import REPOSITORY, issue_payload, make_site, run_action
from tests.test_fix_docker import _docker_ready


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    return make_site(tmp_path)


def _event(number: int) -> dict:
    body = f"/agent\n\n`{TARGET}` fails."
    return {"action": "opened", "issue": issue_payload(number, body), "repository": REPOSITORY,
            "sender": user("alice")}


def _plant_host_marker(site: dict) -> str:
    """A conftest.py that leaves a file outside the repository wherever it runs."""
    marker = site["tmp"] / "ran-on-the-runner"
    workspace = site["workspace"]
    (workspace / "conftest.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    git(workspace, "add", "conftest.py")
    git(workspace, "commit", "-q", "-m", "conftest")
    return str(marker)


def test_no_engine_is_an_error_not_a_fallback_to_the_runner(site, agent_env):
    marker = _plant_host_marker(site)
    event = _event(11)
    with FakeGitHub(origin=site["origin"]) as fake, FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as glm:
        fake.add_issue(11, event["issue"]["title"], event["issue"]["body"])
        for requested in ("", "auto"):
            result = run_action(site, agent_env, fake, glm, "issues", event, AGENT_SANDBOX=requested,
                                DOCKER_HOST="unix:///nonexistent/docker.sock")
            assert result.code == 3, result.stderr
        assert glm.requests == []
        comments = fake.issue_comments[11]
    assert not (site["tmp"] / "ran-on-the-runner").exists(), marker
    assert len(comments) == 2 and all("Docker" in c["body"] or "docker" in c["body"] for c in comments)
    assert fake.calls("POST", r"/pulls$") == []


def test_local_only_by_name_and_the_comment_says_so(site, agent_env):
    event = _event(12)
    with FakeGitHub(origin=site["origin"]) as fake, FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as glm:
        fake.add_issue(12, event["issue"]["title"], event["issue"]["body"])
        result = run_action(site, agent_env, fake, glm, "issues", event, AGENT_SANDBOX="local")
        assert result.code == 0, result.stderr
        (pull,) = fake.calls("POST", r"/pulls$")
        (note,) = fake.issue_comments[12]
    for body in (pull["body"]["body"], note["body"]):
        assert "| Sandbox | local, as the workflow asked" in body


@pytest.mark.docker
@pytest.mark.slow
def test_default_runs_in_docker(site, agent_env):
    why = _docker_ready()
    if why:
        pytest.skip(f"no Docker sandbox here: {why}")
    event = _event(13)
    with FakeGitHub(origin=site["origin"]) as fake, FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as glm:
        fake.add_issue(13, event["issue"]["title"], event["issue"]["body"])
        result = run_action(site, agent_env, fake, glm, "issues", event, AGENT_SANDBOX="")
        assert result.code == 0, result.stderr
        (note,) = fake.issue_comments[13]
    assert "| Sandbox | Docker" in note["body"]

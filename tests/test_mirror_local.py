"""`--mirror-local`: the Docker environment built with the package versions of the user's working
local environment (issue 14), read from its metadata files without running anything of it."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import FILES, fixing_script, make_sample_repo
from sandbox.localpins import installs, pins, project_environment, venv_python
from tests.conftest import TEST_KEY, run_cli


def fake_venv(venv: Path, dists: dict[str, str], python: str = "3.11.2", direct: dict[str, dict] | None = None) -> Path:
    """A venv's files as pip leaves them: pyvenv.cfg and one .dist-info per distribution."""
    site = venv / "lib" / f"python{python.rsplit('.', 1)[0]}" / "site-packages"
    site.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {python}\n")
    for name, version in dists.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n")
        if name in (direct or {}):
            (info / "direct_url.json").write_text(json.dumps(direct[name]))
    return venv


def test_pins_are_what_an_index_can_serve_and_not_the_project(tmp_path):
    checkout = tmp_path / "shop"
    checkout.mkdir()
    venv = fake_venv(tmp_path / "venv", {"six": "1.15.0", "Flask_Login": "0.6.3", "shop": "0.1.0",
                                         "localtool": "2.0", "glm-agent": "0.9"},
                     direct={"shop": {"url": f"file://{checkout}", "dir_info": {"editable": True}},
                             "localtool": {"url": "git+https://example.com/t.git", "vcs_info": {"vcs": "git"}}})
    assert pins(venv, {"shop", "glm-agent"}) == ["flask-login==0.6.3", "six==1.15.0"]
    assert venv_python(venv) == "3.11"
    assert installs(venv, checkout) and not installs(venv, tmp_path)


def test_the_project_environment_is_the_repos_venv_or_an_active_one_that_installs_it(tmp_path):
    checkout = tmp_path / "shop"
    checkout.mkdir()
    agents_own = fake_venv(tmp_path / "agent-venv", {"typer": "0.12.0"})
    assert project_environment(checkout, str(agents_own)) is None  # the agent's venv is not the project's
    users = fake_venv(tmp_path / "users", {"shop": "0.1.0"}, direct={"shop": {"url": f"file://{checkout}"}})
    assert project_environment(checkout, str(users)) == users.resolve()
    local = fake_venv(checkout / ".venv", {"six": "1.15.0"})
    assert project_environment(checkout, str(users)) == local.resolve()



def test_a_venv_link_out_of_the_checkout_is_not_read(tmp_path):
    checkout = tmp_path / "shop"
    checkout.mkdir()
    elsewhere = fake_venv(tmp_path / "another-project-venv", {"private-tool": "1.0"})
    (checkout / ".venv").symlink_to(elsewhere)  # committed by the repository, or left by anyone
    assert project_environment(checkout, None) is None


@pytest.mark.docker
@pytest.mark.slow
def test_mirror_local_builds_the_docker_environment_with_the_local_versions(base, tmp_path, agent_env):
    files = {**FILES, "requirements.txt": f"six  # {uuid.uuid4()}\n"}
    repo = make_sample_repo(tmp_path / "shop", files)
    fake_venv(repo / ".venv", {"six": "1.15.0", "shop": "0.1.0"})  # untracked, as a user's .venv is
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        offered = run_cli(["fix", "tests/test_cart.py::test_discount", "--repo", str(repo), "--base-url",
                           server.base_url, "--sandbox", "docker", "--json"], agent_env, timeout=600)
    assert offered.code == 0, offered.stderr
    assert "--mirror-local (or [sandbox] mirror_local) builds the Docker one with its package versions" \
        in offered.stderr
    images = []
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(["fix", "tests/test_cart.py::test_discount", "--repo", str(repo), "--base-url",
                          server.base_url, "--sandbox", "docker", "--mirror-local", "--json"], agent_env, timeout=600)
    assert result.code == 0, result.stderr
    assert re.search(r"environment: as \S+/\.venv has it: 1 package versions \(Python 3\.11\)", result.stderr)
    try:
        for text in (offered.stderr, result.stderr):
            images.append(re.search(r"building environment (agent-env:\w+)", text).group(1))
        assert images[0] != images[1]
        versions = [subprocess.run(["docker", "run", "--rm", "--network", "none", tag, "python", "-c",
                                    "import six; print(six.__version__)"], capture_output=True, text=True,
                                   timeout=120).stdout.strip() for tag in images]
        assert versions[1] == "1.15.0" and versions[0] != "1.15.0", versions
    finally:
        subprocess.run(["docker", "rmi", "-f", *images], capture_output=True)


@pytest.mark.docker
@pytest.mark.slow
def test_the_local_versions_replace_the_lock_files(base, tmp_path):
    """tomlkit: poetry.lock pins one pytest, the user's venv has another; mirroring the venv must not
    make the two constraints collide (the build failed: no solution)."""
    from sandbox.engine import ensure_engine
    from sandbox.environment import ensure_environment

    repo = tmp_path / "locked"
    repo.mkdir()
    (repo / "requirements.txt").write_text(f"six  # {uuid.uuid4()}\n")
    (repo / "poetry.lock").write_text('[[package]]\nname = "six"\nversion = "1.16.0"\n')
    logs: list[str] = []
    tag = ensure_environment(repo, "3.11", [], log=logs.append, pins=["six==1.15.0"])
    try:
        out = subprocess.run(["docker", "run", "--rm", "--network", "none", tag, "python", "-c",
                              "import six; print(six.__version__)"], capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == "1.15.0", out
        assert logs[-1].endswith("(uv)"), logs
    finally:
        ensure_engine().images.remove(tag, force=True)

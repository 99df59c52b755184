"""Dynamic localization inside the Docker sandbox: the traced rerun runs in the container and finds the rule
the failing test reaches through a registry; when tracing fails there, the static summary carries on and
the verdict is the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import FILES as SHOP_FILES
from evals.sample_repo import TARGET as SHOP_TARGET
from evals.sample_repo import fixing_script, make_sample_repo
from tests.conftest import TEST_KEY, run_cli
from tests.test_spectrum import COMMAND, FILES, TARGET

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Ends the pytest process as soon as a test starts under a tracer (as code that cannot bear one, or a
# coverage tool that refuses a second tracer, would): the traced rerun dies, the plain runs never notice.
TRACER_KILLER = ("import os\nimport sys\n\n\ndef pytest_runtest_setup(item):\n"
                 "    mon = getattr(sys, 'monitoring', None)\n"
                 "    if sys.gettrace() is not None or (mon and any(mon.get_tool(i) for i in range(6))):\n"
                 "        os._exit(3)\n")


def _docker_ready() -> str | None:
    from evals.demo import docker_ready

    ok, why = docker_ready()
    return None if ok else why


def test_traced_rerun_in_the_container_finds_the_registered_rule(tmp_path: Path, env_image: str) -> None:
    from agent.spectrum import executed_definitions
    from sandbox.docker import DockerSandbox
    from sandbox.pytest_runs import run_pytest

    root = make_sample_repo(tmp_path / "repo", FILES)
    box = DockerSandbox(root, image=env_image, memory="512m", pids=128, cpus=1.0)
    box.start()
    try:
        where = box.exec(["python", "-c", "import sys; print(sys.prefix)"], 30)
        assert where.stdout.strip() == "/opt/venv", where.output  # the container's Python, not the host's
        baseline = run_pytest(box, ["tests/test_lint.py"], COMMAND, 120)
        assert baseline.outcomes[TARGET] == "failed", baseline.output
        logs: list[str] = []
        ranked = executed_definitions(box, baseline, [TARGET], COMMAND, 120, logs.append)
    finally:
        box.stop()
    assert ranked, logs
    assert (ranked[0].path, ranked[0].name) == ("linty/rules/spacing.py", "trailing")
    assert "linty/rules/naming.py" not in {e.path for e in ranked}
    assert not any(e.path.startswith(("/", "tests/")) for e in ranked)  # repo-relative, container paths gone


def test_a_tracer_failure_in_the_container_leaves_the_static_path_and_the_verdict(tmp_path: Path,
                                                                                   agent_env) -> None:
    why = _docker_ready()
    if why:
        pytest.skip(f"no Docker sandbox here: {why}")
    repo = make_sample_repo(tmp_path / "repo", {**SHOP_FILES, "tests/conftest.py": TRACER_KILLER})
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(["fix", SHOP_TARGET, "--repo", str(repo), "--base-url", server.base_url, "--sandbox",
                          "docker", "--json"], agent_env, timeout=600)
        requests = server.requests
    assert result.code == 0 and requests, result.stderr
    assert "trace: no spectrum (exit 3)" in result.stderr  # the traced rerun ran in the container and died
    report = result.report
    assert report["status"] == "resolved" and report["sandbox"] == "docker"
    assert report["tests"]["before"]["targets"] == {SHOP_TARGET: "failed"}
    assert report["tests"]["after"]["targets"] == {SHOP_TARGET: "passed"}
    prompt = "\n".join(str(m.get("content")) for m in requests[0]["messages"])
    assert "Executed by the failing tests" not in prompt  # no spectrum ...
    assert "shop/cart.py" in prompt and "apply_discount" in prompt  # ... the static summary still leads there

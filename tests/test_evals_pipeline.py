"""Evals, end to end: grading, the oracle through `agent fix`, `python -m evals.run`, executors.

The subject is the project's sample repo served as a local git mirror: real
git, real pytest in the local sandbox, the oracle on real HTTP (loopback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.executors import LocalExecutor, default_workers
from evals.instances import EnvironmentSetup, Instance, dump_instances
from evals.materialize import git as mgit
from evals.runner import RunConfig, first_touch, grade, timing
from evals.sample_repo import BUGGY_LINE, FIXED_LINE, TARGET, make_sample_repo

PASSING = ["tests/test_cart.py::test_total", "tests/test_cart.py::test_discount_range", "tests/test_money.py::test_fmt"]


def diff_of(repo: Path, edits: dict[str, tuple[str, str]]) -> str:
    """A unified diff (a/ b/) of some edits to the repo, which is left as it was."""
    originals = {}
    for rel, (old, new) in edits.items():
        path = repo / rel
        originals[rel] = path.read_text()
        path.write_text(originals[rel].replace(old, new))
    try:
        return mgit(repo, "diff")
    finally:
        for rel, text in originals.items():
            (repo / rel).write_text(text)


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    return make_sample_repo(tmp_path / "mirror")


def shop_instance(mirror: Path, instance_id: str = "shop__discount-1", **fields: object) -> Instance:
    """The sample repo's discount bug as an instance served from `mirror`; `fields` add to it."""
    return Instance(
        instance_id=instance_id, repo="local/shop", base_commit=mgit(mirror, "rev-parse", "HEAD").strip(),
        problem_statement=f"`{TARGET}` fails: a 10% discount takes off far too much.",
        FAIL_TO_PASS=[TARGET], PASS_TO_PASS=PASSING,
        patch=diff_of(mirror, {"shop/cart.py": (BUGGY_LINE, FIXED_LINE)}),
        environment_setup=EnvironmentSetup(source="git", mirror=str(mirror)), **fields)


@pytest.fixture
def instance(mirror: Path) -> Instance:
    return shop_instance(mirror)


def cfg(tmp_path: Path) -> RunConfig:
    return RunConfig(work=str(tmp_path / "work"), sandbox="local", test_timeout=120)


# --- grading ---------------------------------------------------------------------------------------

def test_grading_follows_swe_bench(instance, mirror, tmp_path, isolated):
    gold = grade(instance, instance.patch, tmp_path / "g1", cfg(tmp_path))
    assert gold["resolved"] and gold["FAIL_TO_PASS"] == {TARGET: True} and all(gold["PASS_TO_PASS"].values())
    empty = grade(instance, "", tmp_path / "g2", cfg(tmp_path))
    assert not empty["resolved"] and empty["FAIL_TO_PASS"] == {TARGET: False}
    # fixing the target while breaking a test that passed is not a resolution
    breaking = diff_of(mirror, {"shop/cart.py": (BUGGY_LINE, FIXED_LINE),
                                "shop/money.py": ('f"{amount:.2f}"', 'f"{amount:.1f}"')})
    broke = grade(instance, breaking, tmp_path / "g3", cfg(tmp_path))
    assert broke["FAIL_TO_PASS"] == {TARGET: True} and not broke["PASS_TO_PASS"]["tests/test_money.py::test_fmt"]
    assert not broke["resolved"]
    garbage = grade(instance, instance.patch.replace("percent / 10", "percent / 7"), tmp_path / "g4", cfg(tmp_path))
    assert garbage == {"resolved": False, "patch_applies": False, "FAIL_TO_PASS": {}, "PASS_TO_PASS": {}}


def test_hidden_tests_are_applied_only_to_grade(instance, mirror, tmp_path, isolated):
    test_patch = diff_of(mirror, {"tests/test_money.py": ('    assert fmt(3) == "3.00"\n',
                                                           '    assert fmt(3) == "3.00"\n\n\n'
                                                           'def test_discount_half():\n'
                                                           '    from shop.cart import apply_discount\n'
                                                           '    assert apply_discount(10.0, 50) == 5.0\n')})
    hidden = Instance(**{**instance.__dict__, "test_patch": test_patch,
                         "FAIL_TO_PASS": ["tests/test_money.py::test_discount_half"]})
    assert hidden.hidden_tests
    assert grade(hidden, hidden.patch, tmp_path / "g1", cfg(tmp_path))["resolved"]
    assert not grade(hidden, "", tmp_path / "g2", cfg(tmp_path))["resolved"]
    assert "test_discount_half" not in (mirror / "tests" / "test_money.py").read_text()


# --- the oracle through agent fix (in process) ---------------------------------------------------

def test_oracle_replays_the_gold_patch_through_the_agents_tools(instance, tmp_path, isolated):
    from agent.fix import FixOptions, run_fix
    from agent.trajectory import read_events
    from evals.materialize import materialize
    from evals.oracle import ORACLE_KEY, oracle_server

    repo = materialize(instance, tmp_path / "repo")
    lines: list[str] = []
    with oracle_server(instance.patch, repo) as server:
        report, code = run_fix(FixOptions(task=instance.problem_statement, repo=repo, tests=instance.FAIL_TO_PASS,
                                          api_key=ORACLE_KEY, overrides={"model.base_url": server.base_url,
                                                                         "sandbox.kind": "local"}), lines.append)
        history = server.requests[-1]["messages"]
        calls = [c["function"]["name"] for m in history if m.get("role") == "assistant"
                 for c in m.get("tool_calls") or []]
    assert code == 0 and report["status"] == "resolved", "\n".join(lines)
    assert FIXED_LINE.strip() in report["patch"] and BUGGY_LINE.strip() in report["patch"]
    assert calls[:3] == ["search", "view", "edit"]
    events = read_events(Path(report["run_dir"]) / "trajectory.jsonl")
    assert first_touch(events, instance.fixed_files) == 2  # the view, after the search
    times = timing(events)
    assert times["test_seconds"] > 0 and times["model_seconds"] >= 0


# --- python -m evals.run, through the agent CLI ---------------------------------------------------

def test_eval_run_end_to_end_through_the_cli_and_resumes(instance, tmp_path, isolated):
    instances = tmp_path / "set.jsonl"
    dump_instances([instance], instances)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "evals.run", "--instances", str(instances), "--sandbox", "local", "--workers", "1",
            "--out", str(out)]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    first = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout
    [pred] = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert set(pred) == {"instance_id", "model_name_or_path", "model_patch"}
    assert pred["instance_id"] == instance.instance_id and pred["model_name_or_path"] == "oracle"
    assert FIXED_LINE.strip() in pred["model_patch"]
    [result] = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert result["resolved"] and result["status"] == "resolved" and result["exit_code"] == 0
    assert result["usage"]["input_tokens"] > 0 and result["cost"]["rmb"] > 0 and result["turns"] >= 3
    assert result["localization"] == {"1024": True, "4096": True} and result["first_touch_turn"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resolved"] == 1 and metrics["resolved_rate"] == 1.0
    assert "resolved 1/1" in first.stdout and "agent overhead per instance median" in first.stdout
    again = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and "resuming: 1 done, 0 to run" in again.stderr
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 1


def test_a_real_endpoint_path_and_errored_instances_run_again(instance, tmp_path, isolated, monkeypatch):
    """--base-url: the runner does not start the oracle; the endpoint (here one on loopback) is the model."""
    from evals.fake_glm import FakeGLM
    from evals.materialize import materialize
    from evals.oracle import OracleResponder, plan_turns
    from evals.run import run_set

    turns = plan_turns(instance.patch, materialize(instance, tmp_path / "plan"))
    out = tmp_path / "out"
    out.mkdir()
    stale = {"instance_id": instance.instance_id, "model_name_or_path": "glm-5.2", "model_patch": "",
             "resolved": False, "error": "EnvironmentProblem: engine down"}
    (out / "results.jsonl").write_text(json.dumps(stale) + "\n")
    (out / "predictions.jsonl").write_text(json.dumps({k: stale[k] for k in list(stale)[:3]}) + "\n")
    monkeypatch.setenv("GLM_API_KEY", "sk-real-endpoint-test-key")
    with FakeGLM(turns=OracleResponder(turns), api_key="sk-real-endpoint-test-key") as server:
        config = RunConfig(work=str(tmp_path / "work"), sandbox="local", base_url=server.base_url)
        outcome = run_set([instance], config, out, workers=1, show_progress=False)
        assert len(server.requests) >= 3
    [result] = outcome["results"]
    assert result["resolved"] and result["model_name_or_path"] == "glm-5.2" and result["error"] is None
    [pred] = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert pred["model_patch"] == result["model_patch"] and FIXED_LINE.strip() in pred["model_patch"]
    assert len((out / "results.jsonl").read_text().splitlines()) == 2  # the history is kept; the latest wins


def test_eval_run_refuses_a_real_endpoint_without_a_key(tmp_path, isolated):
    proc = subprocess.run([sys.executable, "-m", "evals.run", "--base-url", "http://127.0.0.1:9/v4", "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k not in ("GLM_API_KEY", "ZAI_API_KEY")})
    assert proc.returncode == 2 and "GLM_API_KEY" in proc.stderr


# --- executors -----------------------------------------------------------------------------------

def square(item: dict, shared: dict) -> dict:
    return {"id": item["id"], "value": item["id"] ** 2 + shared["offset"], "pid": os.getpid()}


def test_local_executor_runs_in_worker_processes():
    items = [{"id": i} for i in range(5)]
    results = list(LocalExecutor(workers=2).run(square, items, {"offset": 1}))
    assert sorted(r["value"] for r in results) == [1, 2, 5, 10, 17]
    assert os.getpid() not in {r["pid"] for r in results}
    inline = list(LocalExecutor(workers=1).run(square, items[:2], {"offset": 0}))
    assert [r["pid"] for r in inline] == [os.getpid()] * 2
    assert 1 <= default_workers() <= 2


@pytest.mark.slow
def test_ray_executor_runs_an_instance_on_a_single_node_cluster(instance, tmp_path, isolated):
    """Ray 2.60 removed local_mode: this starts a one-CPU Ray on this machine (about 10 s) and runs the real job."""
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'ray[default]'")
    from evals.executors import RayExecutor
    from evals.runner import config_dict, run_instance

    [result] = list(RayExecutor(workers=1).run(run_instance, [instance.to_dict()], config_dict(cfg(tmp_path))))
    assert result["error"] is None and result["resolved"], result
    assert FIXED_LINE.strip() in result["model_patch"]


@pytest.mark.slow
@pytest.mark.docker
def test_eval_run_with_the_docker_sandbox(instance, tmp_path, isolated):
    from evals.demo import docker_ready
    from evals.run import run_set

    ok, why = docker_ready()
    if not ok:
        pytest.skip(f"Docker sandbox unavailable: {why}")
    config = RunConfig(work=str(tmp_path / "work"), sandbox="docker", test_timeout=300)
    outcome = run_set([instance], config, tmp_path / "out", workers=1, show_progress=False)
    [result] = outcome["results"]
    assert result["error"] is None and result["resolved"], result
    assert outcome["summary"]["resolved_rate"] == 1.0

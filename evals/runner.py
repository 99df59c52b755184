"""Run one instance end to end: materialise, `agent fix` through the CLI, grade, measure.

The agent runs as the user would run it (`python -m agent.cli fix ... --json`),
in its own process with its own AGENT_HOME, against the oracle (a fake GLM on
loopback replaying the gold patch) or a real endpoint. Tests the instance hides
(test_patch) are applied only in a separate grading checkout, where
FAIL_TO_PASS and PASS_TO_PASS run in the same kind of sandbox the agent used.
`run_instance` takes and returns plain dicts, so any executor can ship it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evals.instances import Instance, patch_files
from evals.materialize import apply_patch, materialize, with_version_file
from evals.oracle import ORACLE_KEY, ORACLE_MODEL_NAME, oracle_server

LOCALIZATION_TOKENS = (1024, 4096)
TOUCHING_TOOLS = ("view", "outline", "edit", "create")


@dataclass
class RunConfig:
    """What every instance of a run shares; plain data so it pickles to any worker."""

    work: str                                 # per-instance repos, agent homes and logs live here
    sandbox: str = "docker"                   # docker | local
    base_url: str | None = None               # None: the oracle
    model: str | None = None                  # --model for a real endpoint
    cache: str | None = None                  # sdist cache (default: $XDG_CACHE_HOME/agent/evals/sdists)
    agent_timeout: float = 1800.0
    test_timeout: float = 600.0
    extra_args: list[str] = field(default_factory=list)  # more `agent fix` flags (e.g. --max-turns 20)
    localization_tokens: tuple[int, ...] = LOCALIZATION_TOKENS
    keep: bool = False                        # keep the per-instance work directory
    task: str = "tests"                       # tests: FAIL_TO_PASS as targets | description: the issue text only

    @property
    def model_name(self) -> str:
        return ORACLE_MODEL_NAME if self.base_url is None else (self.model or "glm-5.2")


def agent_toml(inst: Instance) -> str:
    env = inst.environment_setup
    setup = ", ".join(json.dumps(cmd) for cmd in env.setup)
    return (f'[sandbox]\npython = {json.dumps(env.python)}\nsetup = [{setup}]\n'
            f'test_command = {json.dumps(env.test_command)}\n')


def write_agent_toml(repo: Path, inst: Instance) -> None:
    """The instance's environment as the repository's .agent.toml (git-excluded: the checkout stays clean)."""
    path = repo / ".agent.toml"
    if not path.exists():
        path.write_text(agent_toml(inst), encoding="utf-8")
        exclude = repo / ".git" / "info" / "exclude"
        if exclude.parent.is_dir():
            with exclude.open("a", encoding="utf-8") as handle:
                handle.write("\n/.agent.toml\n")


def describes(inst: Instance, config: RunConfig) -> bool:
    """Does the agent get no test ids (and so start by reproducing)? In description mode, or when the tests
    exist only in the hidden test patch."""
    return config.task == "description" or inst.hidden_tests


def fix_command(inst: Instance, repo: Path, base_url: str, config: RunConfig) -> list[str]:
    """`agent fix` as a user would type it; the targets are FAIL_TO_PASS unless the tests are hidden, and
    in description mode the task is the issue text alone."""
    text = inst.description if config.task == "description" else inst.problem_statement
    argv = [sys.executable, "-m", "agent.cli", "fix", text, "--repo", str(repo),
            "--base-url", base_url, "--sandbox", config.sandbox, "--json"]
    if not describes(inst, config):
        for test in inst.FAIL_TO_PASS:
            argv += ["--test", test]
    if config.model and config.base_url is not None:
        argv += ["--model", config.model]
    return argv + list(config.extra_args)


def agent_env(home: Path, api_key: str, sandbox: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update({"AGENT_HOME": str(home), "GLM_API_KEY": api_key, "PYTHONUNBUFFERED": "1"})
    env.pop("ZAI_API_KEY", None)  # the product puts the worktree's import roots first itself
    return env


def run_agent(inst: Instance, repo: Path, inst_dir: Path, config: RunConfig) -> tuple[dict[str, Any] | None, int,
                                                                                         float]:
    """(report or None, exit code, wall seconds) of one `agent fix` process."""
    log = inst_dir / "agent.log"
    if config.base_url is None:
        server = oracle_server(inst.patch, repo, reproduction=inst.reproduction() if describes(inst, config) else None)
        key = ORACLE_KEY
    else:
        server = None
        key = os.environ.get("GLM_API_KEY") or os.environ.get("ZAI_API_KEY") or ""
    started = time.monotonic()
    try:
        if server is not None:
            server.start()
        url = server.base_url if server is not None else str(config.base_url)
        argv = fix_command(inst, repo, url, config)
        with log.open("w", encoding="utf-8") as err:
            err.write("$ " + shlex.join(argv[:4] + ["<problem statement>"] + argv[5:]) + "\n")
            err.flush()
            try:
                proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, text=True,
                                      env=agent_env(inst_dir / "agent-home", key, config.sandbox),
                                      timeout=config.agent_timeout)
            except subprocess.TimeoutExpired:
                return None, -1, time.monotonic() - started
    finally:
        if server is not None:
            server.stop()
    wall = time.monotonic() - started
    try:
        report = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        report = None
    return report, proc.returncode, wall


# --- grading ------------------------------------------------------------------------------------

def make_sandbox(kind: str, root: Path, inst: Instance, log: Any = lambda line: None) -> Any:
    """The product's own sandbox factory, with the instance's environment: the grader runs tests in
    the same sandbox, with the same limits and import rules, as the agent it grades."""
    from agent.config import load_settings
    from agent.run_context import make_sandbox as product_sandbox

    env = inst.environment_setup
    settings = load_settings(None, {"sandbox.kind": kind, "sandbox.python": env.python, "sandbox.setup": env.setup})
    return product_sandbox(settings, root, log=log)


def run_tests(root: Path, inst: Instance, kind: str, tests: list[str], timeout: float) -> Any:
    """The TestRun of `tests` in a sandbox on `root` as it is."""
    from sandbox.pytest_runs import run_pytest

    sandbox = make_sandbox(kind, root, inst)
    try:
        sandbox.start()
        return run_pytest(sandbox, tests, shlex.split(inst.environment_setup.test_command), timeout)
    finally:
        sandbox.stop()


def grade_tree(root: Path, inst: Instance, kind: str, timeout: float) -> dict[str, Any]:
    """Run FAIL_TO_PASS + PASS_TO_PASS in a sandbox on `root` as it is; per-test outcome and verdict."""
    run = run_tests(root, inst, kind, list(dict.fromkeys(inst.FAIL_TO_PASS + inst.PASS_TO_PASS)), timeout)
    f2p = {t: run.passed(t) for t in inst.FAIL_TO_PASS}
    p2p = {t: run.passed(t) for t in inst.PASS_TO_PASS}
    return {"FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p, "resolved": bool(f2p) and all(f2p.values())
            and all(p2p.values()), "test_seconds": run.duration, "timed_out": run.timed_out}


def _checkout(inst: Instance, grade_dir: Path, config: RunConfig) -> Path:
    """The base commit for grading, with the version file its build generates (as the agent's worktree)."""
    repo = materialize(inst, grade_dir, _cache(config))
    with_version_file(repo)
    return repo


def grade(inst: Instance, model_patch: str, grade_dir: Path, config: RunConfig) -> dict[str, Any]:
    """SWE-bench's verdict: the model patch and then the test patch applied to base_commit."""
    repo = _checkout(inst, grade_dir, config)
    if not apply_patch(repo, model_patch):
        return {"resolved": False, "patch_applies": False, "FAIL_TO_PASS": {}, "PASS_TO_PASS": {}}
    for path in patch_files(inst.test_patch, deleted=True):  # as SWE-bench: the test patch's files as at base
        if subprocess.run(["git", "-C", str(repo), "checkout", "-q", "HEAD", "--", path],
                          capture_output=True).returncode != 0:
            (repo / path).unlink(missing_ok=True)
    if not apply_patch(repo, inst.test_patch):
        return {"resolved": False, "patch_applies": True, "test_patch_applies": False,
                "FAIL_TO_PASS": {}, "PASS_TO_PASS": {}}
    return {"patch_applies": True, **grade_tree(repo, inst, config.sandbox, config.test_timeout)}


def grade_reproduction(inst: Instance, model_patch: str, grade_dir: Path, config: RunConfig) -> dict[str, Any]:
    """Independently of the agent's report: the tests the branch adds (test functions new to the base
    commit), run on the base code with only the branch's test files, then with the whole branch. `ok`:
    at least one of them fails (not errors) on the base code and passes on the branch."""
    from agent.reproduction_phase import defined_tests, is_reproduction_file

    repo = _checkout(inst, grade_dir, config)
    files = [f for f in patch_files(model_patch) if is_reproduction_file(f)]
    base = {f: (repo / f).read_text(encoding="utf-8") if (repo / f).is_file() else "" for f in files}
    if not files or not apply_patch(repo, model_patch, include=files):
        return {"ok": False, "why": "the branch adds no test file or test function", "tests": []}
    tests = sorted(f"{f}::{name}" for f in files
                   for name in defined_tests((repo / f).read_text(encoding="utf-8")) - defined_tests(base[f]))
    if not tests:
        return {"ok": False, "why": "the branch adds no test function", "tests": []}
    before = run_tests(repo, inst, config.sandbox, tests, config.test_timeout)
    if not apply_patch(repo, model_patch, exclude=files):
        return {"ok": False, "why": "the branch's source changes do not apply", "tests": tests}
    after = run_tests(repo, inst, config.sandbox, tests, config.test_timeout)
    failing = [t for t in tests if "failed" in before.matching(t).values()
               and "error" not in before.matching(t).values()]
    passing = [t for t in tests if after.passed(t)]
    ok = any(t in passing for t in failing)
    return {"ok": ok, "tests": tests, "fail_at_base": failing, "pass_on_branch": passing,
            "why": "" if ok else "no added test fails on the base commit and passes on the branch"}


# --- measurements from the trajectory -----------------------------------------------------------

def read_trajectory(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not report or not report.get("run_dir"):
        return []
    path = Path(report["run_dir"]) / "trajectory.jsonl"
    if not path.is_file():
        return []
    from agent.trajectory import read_events

    return read_events(path)


def timing(events: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds spent waiting on the model and running tests: the rest of a run is the agent's own."""
    model = tests = 0.0
    pending: float | None = None
    for event in events:
        kind = event.get("event")
        if kind == "request":
            pending = event.get("ts")
        elif kind == "response" and pending is not None:
            model += float(event["ts"]) - float(pending)
            pending = None
        elif kind == "test_run":
            runs = [event["run"]] if event.get("run") else list(event.get("runs") or [])
            tests += sum(float(r.get("duration") or 0) for r in runs)
        elif kind == "tool_result" and event.get("name") == "run_tests":
            run = (event.get("data") or {}).get("run") or {}
            tests += float(run.get("duration") or 0)
    return {"model_seconds": round(model, 3), "test_seconds": round(tests, 3)}


def first_touch(events: list[dict[str, Any]], files: list[str]) -> int | None:
    """The first turn whose tool calls viewed, outlined or edited one of `files`."""
    turn = 0
    wanted = {f.removeprefix("./") for f in files}
    for event in events:
        if event.get("event") == "response":
            turn = int(event.get("turn") or turn + 1)
        elif event.get("event") == "tool_call" and event.get("name") in TOUCHING_TOOLS:
            try:
                args = json.loads(event.get("arguments") or "{}")
            except json.JSONDecodeError:
                continue
            if isinstance(args, dict) and str(args.get("path", "")).removeprefix("./") in wanted:
                return turn
    return None


def reproduction_output(events: list[dict[str, Any]]) -> str | None:
    for event in events:
        if event.get("event") == "test_run" and event.get("purpose") == "reproduce":
            return (event.get("run") or {}).get("output")
    return None


def localization(repo: Path, inst: Instance, traceback: str | None, tokens: tuple[int, ...]) -> dict[str, bool]:
    """Is every file the gold patch changes named in the summary `agent fix` would render at k tokens?"""
    from agent.runs import cache_dir
    from agent.summary import summary_for

    tests = [] if inst.hidden_tests else inst.FAIL_TO_PASS
    out = {}
    for k in tokens:
        text = summary_for(repo, tests, [], k, traceback=traceback, task_text=inst.problem_statement,
                           cache_dir=cache_dir()).text
        out[str(k)] = all(f in text for f in inst.fixed_files)
    return out


# --- one instance -------------------------------------------------------------------------------

def _cache(config: RunConfig) -> Path | None:
    return Path(config.cache) if config.cache else None


def run_instance(instance: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Materialise, fix, grade and measure one instance; never raises (errors are results)."""
    inst = Instance.from_dict(instance)
    cfg = RunConfig(**config)
    inst_dir = Path(cfg.work) / inst.instance_id
    shutil.rmtree(inst_dir, ignore_errors=True)
    inst_dir.mkdir(parents=True)
    result: dict[str, Any] = {"instance_id": inst.instance_id, "model_name_or_path": cfg.model_name,
                              "model_patch": "", "resolved": False, "error": None}
    started = time.monotonic()
    try:
        repo = materialize(inst, inst_dir / "repo", _cache(cfg))
        write_agent_toml(repo, inst)
        report, code, agent_wall = run_agent(inst, repo, inst_dir, cfg)
        result.update(exit_code=code, agent_wall_seconds=round(agent_wall, 3))
        if report is None:
            tail = (inst_dir / "agent.log").read_text(encoding="utf-8", errors="replace")[-1500:]
            result["error"] = f"agent fix gave no report (exit {code}): {tail}"
        else:
            result["model_patch"] = report.get("patch") or ""
            events = read_trajectory(report)
            times = timing(events)
            elapsed = float(report.get("elapsed_seconds") or 0)
            calls = report.get("calls") or {}
            result.update(
                status=report.get("status"), stop_reason=report.get("stop_reason"), turns=report.get("turns", 0),
                usage=report.get("usage"), cost=report.get("cost"), calls=calls,
                agent_elapsed_seconds=elapsed, **times,
                overhead_seconds=round(max(elapsed - times["model_seconds"] - times["test_seconds"], 0.0), 3),
                first_touch_turn=first_touch(events, inst.fixed_files), run_dir=report.get("run_dir"))
            result["localization"] = localization(repo, inst, reproduction_output(events), cfg.localization_tokens)
        result["grade"] = grade(inst, result["model_patch"], inst_dir / "grade", cfg)
        result["resolved"] = bool(result["grade"].get("resolved"))
        if cfg.task == "description":  # resolved also needs a reproduction, checked here, not taken from the report
            result["task"] = "description"
            result["verdict"] = (report or {}).get("verdict")
            result["reproduction_grade"] = grade_reproduction(inst, result["model_patch"], inst_dir / "repro", cfg)
            result["resolved"] = result["resolved"] and result["reproduction_grade"]["ok"]
    except Exception as exc:  # noqa: BLE001 - one broken instance must not end the run
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["wall_seconds"] = round(time.monotonic() - started, 3)
    if not cfg.keep:
        for sub in ("repo", "grade", "repro"):
            shutil.rmtree(inst_dir / sub, ignore_errors=True)
    return result


def prepare_environment(inst: Instance, config: RunConfig, log: Any = lambda line: None) -> float:
    """Build (once) the Docker environment image the instance needs; seconds it took."""
    if config.sandbox != "docker":
        return 0.0
    from sandbox.environment import ensure_environment

    started = time.monotonic()
    scratch = Path(config.work) / f".env-{inst.instance_id}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        repo = materialize(inst, scratch, _cache(config))
        env = inst.environment_setup
        ensure_environment(repo, env.python, env.setup, log=log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return time.monotonic() - started


def config_dict(config: RunConfig) -> dict[str, Any]:
    return asdict(config)

"""A task that names no failing test: the model reproduces first and the harness holds it to it (issue 16).

Through the CLI in a subprocess, the scripted model on real HTTP, real git and pytest in the local sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path

from evals.fake_glm import FakeGLM
from evals.sample_repo import BUGGY_LINE, FIXED_LINE, git
from tests.conftest import TEST_KEY, run_cli

ISSUE = "A 10% discount on 200 leaves 0 instead of 180"
REPRO_FILE = "tests/test_discount_issue.py"
REPRO = f"{REPRO_FILE}::test_ten_percent_of_200"
REPRO_TEXT = ("from shop.cart import apply_discount\n\n\n"
              "def test_ten_percent_of_200():\n    assert apply_discount(200.0, 10) == 180.0\n")


def call(name: str, **arguments) -> dict:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def create(text: str = REPRO_TEXT, path: str = REPRO_FILE) -> dict:
    return call("create", path=path, content=text)


def reproduce(*tests: str, reopen: bool = False) -> dict:
    return call("reproduce", tests=list(tests), **({"reopen": True} if reopen else {}))


FIX = call("edit", path="shop/cart.py", old=BUGGY_LINE.strip(), new=FIXED_LINE.strip())
FINISH = call("finish", summary="done")


def fix(repo: Path, env: dict, turns: list, *extra: str, task: str = ISSUE):
    with FakeGLM(turns=turns, api_key=TEST_KEY) as server:
        result = run_cli(["fix", task, "--repo", str(repo), "--base-url", server.base_url, "--sandbox", "local",
                          "--json", *extra], env)
    return result


def results(report: dict) -> list[dict]:
    path = Path(report["run_dir"]) / "trajectory.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == "tool_result"]


def events(report: dict, kind: str) -> list[dict]:
    path = Path(report["run_dir"]) / "trajectory.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == kind]


def test_happy_path_reproduces_then_fixes_and_reports_before_and_after(sample_repo, agent_env):
    result = fix(sample_repo, agent_env, [create(), reproduce(REPRO), FIX, call("run_tests")])
    assert result.code == 0, result.stderr
    report = result.report
    assert report["status"] == "resolved"
    assert report["tests"]["target"] == [REPRO]
    assert report["tests"]["before"]["targets"] == {REPRO: "failed"}
    assert report["tests"]["after"]["targets"] == {REPRO: "passed"}
    verdict = report["verdict"]
    assert verdict["kind"] == "reproduction" and verdict["tests"] == [REPRO] and verdict["files"] == [REPRO_FILE]
    assert "assert 0.0 == 180.0" in verdict["before"]["output"]
    assert f"{REPRO} PASSED" in verdict["after"]["output"] and verdict["after"]["outcomes"] == {REPRO: "passed"}
    assert len(verdict["before"]["output"]) <= 2000 and len(verdict["after"]["output"]) <= 2000
    # the branch carries the reproduction and the fix
    assert git(sample_repo, "show", f"{report['branch']}:{REPRO_FILE}") == REPRO_TEXT
    assert FIXED_LINE.strip() in report["patch"]
    assert [e["action"] for e in events(report, "reproduction")] == ["accepted"]


def test_a_source_edit_before_the_reproduction_is_refused(sample_repo, agent_env):
    result = fix(sample_repo, agent_env, [FIX, create(), reproduce(REPRO), FIX, call("run_tests")])
    assert result.code == 0, result.stderr
    first = results(result.report)[0]
    assert not first["ok"] and "not a test file" in first["content"] and "reproduce" in first["content"]
    assert result.report["status"] == "resolved"


def test_a_reproduction_that_passes_at_base_is_refused(sample_repo, agent_env):
    passing = REPRO_TEXT.replace("apply_discount(200.0, 10) == 180.0", "apply_discount(200.0, 0) == 200.0")
    result = fix(sample_repo, agent_env, [create(passing), reproduce(REPRO), FIX, FINISH, FINISH, FINISH],
                 "--max-turns", "12")
    assert result.code == 1, result.stderr
    check = results(result.report)[1]
    assert not check["ok"] and "did not fail on the base code" in check["content"]
    assert f"{REPRO} PASSED" in check["content"]  # pytest's own words
    # the source edit after the refusal is refused too: there is still no reproduction
    assert "not a test file" in results(result.report)[2]["content"]
    assert result.report["status"] == "no_reproduction"
    assert result.report["verdict"]["kind"] == "none"


def test_a_reproduction_that_errors_at_collection_is_refused(sample_repo, agent_env):
    broken = "from shop.cart import apply_discount, round_money\n\n\ndef test_ten_percent_of_200():\n    pass\n"
    result = fix(sample_repo, agent_env, [create(broken), reproduce(REPRO)] + [FINISH] * 3)
    check = results(result.report)[1]
    assert not check["ok"] and "pytest reported an error, not a failure" in check["content"]
    assert "ImportError" in check["content"] and "round_money" in check["content"]
    assert result.code == 1 and result.report["status"] == "no_reproduction"


def test_an_existing_test_cannot_be_rewritten_or_named_as_the_reproduction(sample_repo, agent_env):
    rewrite = call("edit", path="tests/test_cart.py", old="assert apply_discount(200.0, 10) == 180.0",
                   new="assert apply_discount(200.0, 10) == 20.0")
    shadow = call("edit", path="tests/test_cart.py", old="def test_discount_range():",
                  new="def test_discount():\n    pass\n\n\ndef test_discount_range():")
    result = fix(sample_repo, agent_env, [rewrite, shadow, reproduce("tests/test_cart.py::test_discount")]
                 + [FINISH] * 3)
    texts = [r["content"] for r in results(result.report)]
    assert "change or remove existing lines" in texts[0]
    assert "bind `test_discount` again" in texts[1]
    assert "exists at the base commit" in texts[2]
    assert result.report["status"] == "no_reproduction"


def test_the_frozen_reproduction_cannot_be_edited_after_acceptance(sample_repo, agent_env):
    weaken = call("edit", path=REPRO_FILE, old="== 180.0", new="== 20.0")
    result = fix(sample_repo, agent_env, [create(), reproduce(REPRO), weaken, FIX, call("run_tests")])
    assert result.code == 0, result.stderr
    edit = results(result.report)[2]
    assert not edit["ok"] and "frozen" in edit["content"] and REPRO in edit["content"]
    assert result.report["status"] == "resolved"
    assert git(sample_repo, "show", f"{result.report['branch']}:{REPRO_FILE}") == REPRO_TEXT


def test_a_shell_rewrite_of_the_frozen_reproduction_is_never_resolved(sample_repo, agent_env):
    """Where the `run` tool exists (bubblewrap or Docker) a command can rewrite the frozen file: the verdict
    compares it with the accepted bytes. Written here through reopen-free paths: the model's own edit of
    the file is refused, so the rewrite comes from the code under test (a source change run by the tests)."""
    sneaky = call("edit", path="shop/cart.py", old=BUGGY_LINE.strip(), new=(
        "import pathlib; pathlib.Path(__file__).parent.parent.joinpath('" + REPRO_FILE + "').write_text("
        "'def test_ten_percent_of_200():\\n    pass\\n'); " + FIXED_LINE.strip()))
    result = fix(sample_repo, agent_env, [create(), reproduce(REPRO), sneaky, FINISH, FINISH, FINISH])
    assert result.code == 1, result.stderr
    assert result.report["status"] == "unresolved"
    verifies = [e for e in events(result.report, "test_run") if e.get("purpose") == "verify"]
    assert verifies and "accepted reproduction changed" in verifies[-1]["detail"]


def test_reopen_is_recorded_and_the_new_version_is_checked_again(sample_repo, agent_env):
    stronger = REPRO_TEXT + "\n\ndef test_fifty_percent():\n    assert apply_discount(10.0, 50) == 5.0\n"
    extend = call("edit", path=REPRO_FILE, old=REPRO_TEXT, new=stronger)
    turns = [create(), reproduce(REPRO), FIX, reproduce(reopen=True), extend,
             reproduce(REPRO, f"{REPRO_FILE}::test_fifty_percent"), call("run_tests")]
    result = fix(sample_repo, agent_env, turns)
    assert result.code == 0, result.stderr
    report = result.report
    assert [e["action"] for e in events(report, "reproduction")] == ["accepted", "reopened", "accepted"]
    # the second check ran on the base code although the fix was already in the worktree
    assert "1 changed source file(s) set aside" in result.stderr
    assert report["verdict"]["tests"] == [REPRO, f"{REPRO_FILE}::test_fifty_percent"]
    assert report["verdict"]["reopened"] == 1
    assert report["status"] == "resolved"


def test_a_fix_without_a_reproduction_never_ends_resolved(sample_repo, agent_env):
    """The model skips the reproduction and claims success: refused, never resolved, exit 1."""
    result = fix(sample_repo, agent_env, [FIX, FINISH, FINISH, FINISH])
    assert result.code == 1, result.stderr
    report = result.report
    assert report["status"] == "no_reproduction" and report["stop_reason"].startswith("no reproduction accepted")
    assert report["verdict"] == {"kind": "none", "tests": [], "checks": 0, "reopened": 0, "last_refusal": ""}
    assert "shop/cart.py" not in report["patch"]


def test_a_run_that_cannot_reproduce_stops_with_its_status_and_keeps_the_attempt(sample_repo, agent_env):
    """The phase's share of the turns ([reproduction] turns_share of --max-turns) runs out: no_reproduction,
    and the attempted test is committed on the branch for a person to finish."""
    passing = REPRO_TEXT.replace("== 180.0", "> 0 or True")
    look = call("view", path="shop/cart.py")
    result = fix(sample_repo, agent_env, [create(passing), reproduce(REPRO)] + [look] * 10, "--max-turns", "8")
    assert result.code == 1, result.stderr
    report = result.report
    assert report["status"] == "no_reproduction"
    assert "budget_reproduction" in report["stop_reason"] and "(4 of 4)" in report["stop_reason"]
    assert report["turns"] == 4 and report["verdict"]["kind"] == "none" and report["verdict"]["checks"] == 1
    assert report["commit"] and git(sample_repo, "show", f"{report['branch']}:{REPRO_FILE}") == passing


def test_the_share_comes_from_the_config(sample_repo, agent_env):
    from tests.conftest import write_user_config

    write_user_config(agent_env, "[reproduction]\nturns_share = 0.25\n")
    look = call("view", path="shop/cart.py")
    result = fix(sample_repo, agent_env, [look] * 10, "--max-turns", "8")
    assert result.report["status"] == "no_reproduction" and "(2 of 2)" in result.report["stop_reason"]

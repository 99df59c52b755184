"""run_pytest / TestRun and the run_tests tool, through the real local sandbox on a real repo."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from sandbox.local import LocalSandbox
from sandbox.pytest_runs import TestRun, run_pytest
from tools.base import ToolContext, dispatch
from tools.registry import by_name, fix_tools
from tools.run_tests import describe

CART = '''def total(prices, discount=0):
    return sum(prices) - discount
'''

TEST_CART = '''import pytest
from cart import total


def test_sum():
    assert total([1, 2]) == 3


def test_discount():
    assert total([10], discount=0.1) == 9


@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")


def test_uses_broken(broken):
    pass


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.mark.xfail(reason="known")
def test_known_bug():
    assert False


@pytest.mark.parametrize("case", ["a b", "x - y", "p::q"])
def test_ids(case):
    assert case != "x - y"


class TestGroup:
    def test_method(self):
        assert True
'''

HANG_MARKER = "hang-child-7d1e"  # found in the host's /proc: a pid written inside a pid namespace means nothing
TEST_HANG = f'''import subprocess, sys, time


def test_hangs():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)  # {HANG_MARKER}"])
    with open("child.pid", "w") as f:
        f.write(str(child.pid))
    time.sleep(1000)
'''

CMD = ["python", "-m", "pytest"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runrepo")
    (root / "cart.py").write_text(CART)
    (root / "tests").mkdir()
    (root / "tests" / "test_cart.py").write_text(TEST_CART)
    (root / "tests" / "test_other.py").write_text("def test_fine():\n    assert 1\n")
    (root / "hang").mkdir()
    (root / "hang" / "test_hang.py").write_text(TEST_HANG)
    (root / "broken").mkdir()
    (root / "broken" / "test_imports.py").write_text("import no_such_module\n\ndef test_x():\n    pass\n")
    (root / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


@pytest.fixture(scope="module")
def box(repo: Path) -> LocalSandbox:
    sandbox = LocalSandbox(repo)
    sandbox.start()
    return sandbox


@pytest.fixture(scope="module")
def full_run(box: LocalSandbox) -> TestRun:
    return run_pytest(box, ["tests/test_cart.py"], CMD, 60)


def test_every_outcome_is_parsed(full_run: TestRun):
    f = "tests/test_cart.py::"
    assert full_run.outcomes == {
        f + "test_sum": "passed",
        f + "test_discount": "failed",
        f + "test_uses_broken": "error",
        f + "test_skipped": "skipped",
        f + "test_known_bug": "xfailed",
        f + "test_ids[a b]": "passed",
        f + "test_ids[x - y]": "failed",
        f + "test_ids[p::q]": "passed",
        f + "TestGroup::test_method": "passed",
    }
    assert full_run.exit_code == 1 and not full_run.timed_out and not full_run.collected_none
    assert full_run.failed_ids() == [f + "test_discount", f + "test_ids[x - y]", f + "test_uses_broken"]
    assert full_run.counts() == {"error": 1, "failed": 2, "skipped": 1, "xfailed": 1, "passed": 4}
    assert full_run.short_summary() == "1 error, 2 failed, 1 skipped, 1 xfailed, 4 passed (pytest exit 1)"


def test_selector_matching(full_run: TestRun):
    f = "tests/test_cart.py::"
    assert full_run.passed(f + "test_sum") and full_run.passed("./" + f + "test_sum")
    assert not full_run.passed(f + "test_discount")
    assert not full_run.passed(f + "test_uses_broken")
    assert not full_run.passed(f + "test_skipped")  # skipped is not a pass
    assert full_run.passed(f + "test_known_bug")  # xfail is the expected outcome
    assert full_run.passed(f + "TestGroup")
    assert not full_run.passed(f + "test_ids") and full_run.passed(f + "test_ids[a b]")
    assert not full_run.passed("tests/test_cart.py") and not full_run.passed("tests")
    assert not full_run.passed(f + "test_su")  # a prefix of a name is not a selector
    assert not full_run.passed("tests/test_other.py")  # not run at all
    assert full_run.matches(f + "test_skipped") and not full_run.matches("tests/test_other.py")
    assert TestRun.from_dict(json.loads(json.dumps(full_run.to_dict()))) == full_run


def test_passing_run_and_directory_selector(box: LocalSandbox):
    run = run_pytest(box, ["tests/test_other.py", "tests/test_cart.py::test_sum"], CMD, 60)
    assert run.exit_code == 0
    assert run.passed("tests/test_other.py") and run.passed("tests/test_cart.py::test_sum")
    assert run.outcomes == {"tests/test_other.py::test_fine": "passed",
                            "tests/test_cart.py::test_sum": "passed"}
    assert run.passed("tests") is True


def test_collection_error_counts_against_selectors_inside(box: LocalSandbox):
    run = run_pytest(box, ["broken/test_imports.py::test_x"], CMD, 60)
    assert run.outcomes == {"broken/test_imports.py": "error"}
    assert not run.passed("broken/test_imports.py::test_x") and run.failed_ids() == ["broken/test_imports.py"]
    assert "no_such_module" in run.output


@pytest.mark.parametrize("selector", ["tests/test_cart.py::test_nope", "tests/test_missing.py"])
def test_no_tests_collected(box: LocalSandbox, selector: str):
    run = run_pytest(box, [selector], CMD, 60)
    assert run.collected_none and run.exit_code == 4 and run.outcomes == {}
    assert not run.passed(selector) and not run.matches(selector)
    assert run.short_summary() == "no tests collected (pytest exit 4)"


def test_timeout_kills_the_test_and_its_child(box: LocalSandbox, repo: Path):
    started = time.monotonic()
    run = run_pytest(box, ["hang/test_hang.py"], CMD, 10)  # room for pytest to start on a loaded machine
    assert run.timed_out and not run.collected_none and time.monotonic() - started < 25
    assert (repo / "child.pid").is_file()  # the child was started
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _running(HANG_MARKER):
        time.sleep(0.05)
    assert not _running(HANG_MARKER)


def _running(marker: str) -> list[str]:
    """Host pids (not zombies) whose command line holds `marker`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "cmdline").read_bytes() \
                    and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(proc.name)
        except OSError:
            pass
    return found


# --- the tool -------------------------------------------------------------------------------------

def call(ctx: ToolContext, **args):
    return dispatch(by_name(fix_tools()), "run_tests", json.dumps(args), ctx)


@pytest.fixture
def ctx(repo: Path, box: LocalSandbox) -> ToolContext:
    return ToolContext(root=repo, sandbox=box, target_tests=["tests/test_cart.py::test_discount"],
                       test_timeout=60)


def test_tool_runs_targets_by_default_and_shows_the_failure(ctx):
    obs = call(ctx)
    lines = obs.text.splitlines()
    assert lines[0].startswith("1 failed in ") and "(pytest exit 1)" in lines[0]
    assert lines[1] == "failing: tests/test_cart.py::test_discount"
    assert "FAILURES" in lines[2] and "assert 9.9 == 9" in obs.text
    assert obs.data["run"]["outcomes"] == {"tests/test_cart.py::test_discount": "failed"}
    assert "FAILED tests/test_cart.py::test_discount - assert 9.9 == 9" in lines
    assert obs.data["selectors"] == ["tests/test_cart.py::test_discount"]


def test_tool_green_run_is_one_line(ctx):
    obs = call(ctx, tests=["tests/test_other.py"])
    assert obs.ok and obs.text.startswith("1 passed in ") and "\n" not in obs.text


def test_tool_output_is_cut_head_and_tail(ctx):
    obs = call(ctx, tests=["tests/test_cart.py"])
    assert "PASSED " not in obs.text and "FAILED tests/test_cart.py::test_discount" in obs.text
    assert obs.text.splitlines()[0].startswith("1 error, 2 failed, 1 skipped, 1 xfailed, 4 passed in ")
    run = TestRun.from_dict(obs.data["run"])
    short = describe(run, ["tests/test_cart.py"], 300)
    assert "chars cut" in short and len(short) < 900 and short.endswith(obs.text[-50:])
    assert "failing: tests/test_cart.py::test_discount, tests/test_cart.py::test_ids[x - y]" in obs.text


def test_tool_reports_no_match_and_timeout(ctx):
    obs = call(ctx, tests=["tests/test_cart.py::test_nope"])
    assert not obs.ok and obs.text.startswith("no tests matched tests/test_cart.py::test_nope")
    ctx.test_timeout = 3
    obs = call(ctx, tests=["hang/test_hang.py"])
    assert not obs.ok and "timed out" in obs.text and obs.data["run"]["timed_out"]


def test_tool_refuses_options_and_paths_outside(ctx, repo):
    for bad in (["--basetemp=/tmp/x"], ["-p", "evil"], ["../other/test_x.py"], ["/etc/test_x.py"]):
        obs = call(ctx, tests=bad)
        assert not obs.ok and obs.text.startswith("refused:"), bad
    assert "no such file" in call(ctx, tests=["tests/test_nothing.py"]).text
    assert not call(ctx, tests="tests/test_other.py").ok  # must be a list
    assert "no sandbox" in dispatch(by_name(fix_tools()), "run_tests", "{}", ToolContext(root=repo)).text

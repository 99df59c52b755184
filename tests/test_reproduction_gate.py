"""The reproduction gate, through the CLI: bad input is exit 2, an unusable test environment exit 3,
each with pytest's own words, no model call and nothing left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import TARGET, git
from tests.conftest import TEST_KEY, run_cli


def _commit(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")


def _fix(repo: Path, env: dict, task: str = TARGET) -> tuple[subprocess.CompletedProcess, list]:
    env = {k: v for k, v in env.items() if k != "VIRTUAL_ENV"}
    with FakeGLM(turns=[{"content": "I give up."}, {"content": "Still."}], api_key=TEST_KEY) as server:
        result = run_cli(["fix", task, "--repo", str(repo), "--base-url", server.base_url, "--sandbox", "local",
                          "--json"], env)
        requests = list(server.requests)
    return result, requests


def _nothing_left(repo: Path, env: dict) -> None:
    assert "agent/" not in git(repo, "branch", "--list")
    assert git(repo, "worktree", "list").count("\n") == 1
    assert not list(Path(env["AGENT_HOME"]).glob("runs/*"))


def _one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]


def test_a_target_that_already_passes_is_bad_input_never_resolved(sample_repo, agent_env):
    result, requests = _fix(sample_repo, agent_env, task="tests/test_cart.py::test_total")
    assert result.code == 2 and requests == []
    assert "already pass" in _one_error_line(result.stderr)
    _nothing_left(sample_repo, agent_env)


def test_an_interpreter_without_pytest_is_an_environment_problem(sample_repo, agent_env):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(sample_repo / ".venv")], check=True)
    result, requests = _fix(sample_repo, agent_env)
    assert result.code == 3 and requests == []
    line = _one_error_line(result.stderr)
    assert "pytest is not installed" in line and ".venv" in line
    assert "no test matches" not in result.stderr
    _nothing_left(sample_repo, agent_env)


@pytest.mark.parametrize("files, words", [
    ({"tests/test_cart.py": "import not_installed_anywhere_xyz\n\ndef test_discount():\n    pass\n"},
     "No module named 'not_installed_anywhere_xyz'"),
    ({"tests/test_cart.py": "def test_discount(plugin_fixture_xyz):\n    pass\n"}, "fixture 'plugin_fixture_xyz'"),
    ({"pytest.ini": "[pytest]\naddopts = --frobnicate-xyz\n"}, "--frobnicate-xyz"),
    # a suite older than the installed pytest, with warnings as errors: pytest's deprecation of what it
    # does (as pytest 9.2 warns at collection about a generator in parametrize) fails the collection
    ({"pytest.ini": "[pytest]\nfilterwarnings =\n    error\n",
      "tests/test_cart.py": "import warnings\nimport pytest\n\nwarnings.warn(pytest.PytestRemovedIn10Warning("
                            "'Passing a non-Collection iterable to parametrize is deprecated.'))\n\n"
                            "def test_discount():\n    assert False\n"}, "the installed pytest refuses"),
])
def test_tests_that_cannot_start_here_are_an_environment_problem(sample_repo, agent_env, files, words):
    _commit(sample_repo, files)
    result, requests = _fix(sample_repo, agent_env)
    assert result.code == 3 and requests == []
    assert words in _one_error_line(result.stderr)
    _nothing_left(sample_repo, agent_env)


def test_a_test_that_needs_a_name_the_code_lacks_is_a_reproduction(sample_repo, agent_env):
    """The usual shape of a FAIL_TO_PASS test: it imports what the fix must add."""
    test = "from shop.cart import apply_discount, new_rounding\n\ndef test_discount():\n    assert new_rounding\n"
    _commit(sample_repo, {"tests/test_cart.py": test})
    result, requests = _fix(sample_repo, agent_env)
    assert requests, result.stderr
    assert result.code == 1


def test_a_task_without_targets_where_no_test_can_run(tmp_path, agent_env):
    from evals.sample_repo import make_sample_repo

    repo = make_sample_repo(tmp_path / "bare", {"lib.py": "X = 1\n"})
    result, requests = _fix(repo, agent_env, task="make X two")
    assert result.code == 3 and requests == []
    assert "no test can run" in _one_error_line(result.stderr)
    _nothing_left(repo, agent_env)


def _venv_with(repo: Path, module: str, source: str) -> None:
    """The repo's .venv (pytest from the system) holding one third-party module the project imports."""
    venv = repo / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / f"{module}.py").write_text(source)


# A 2018 `six` under today's importlib: a meta path importer without find_spec warns at every import.
_OLD_IMPORTER = ("import sys\n\nclass _OldImporter:\n    def find_module(self, name, path=None):\n"
                 "        return None\n\nsys.meta_path.insert(0, _OldImporter())\n")
_DEPRECATED_AT_IMPORT = "import warnings\n\nwarnings.warn('oldlib is deprecated', DeprecationWarning)\n"
_DEPRECATED_CALL = ("import warnings\n\ndef old_api():\n"
                    "    warnings.warn('old_api is deprecated', DeprecationWarning, stacklevel=2)\n    return 1\n")


@pytest.mark.parametrize("module, source, project_line, words", [
    pytest.param("oldsix", _OLD_IMPORTER, "import oldsix\nimport colorsys\n", "ImportWarning: _OldImporter.find_spec()",
                 marks=pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12 dropped find_module")),
    ("oldlib", _DEPRECATED_AT_IMPORT, "import oldlib\n", "DeprecationWarning: oldlib is deprecated"),
], ids=["import-warning-from-importlib", "deprecation-from-a-dependency"])
def test_a_warning_made_an_error_while_importing_a_dependency_is_an_environment_problem(
        sample_repo, agent_env, module, source, project_line, words):
    """The project's `filterwarnings = error` meets a dependency from another era at import (dateutil + six)."""
    _commit(sample_repo, {"pytest.ini": "[pytest]\npythonpath = .\nfilterwarnings =\n    error\n",
                          "shop/cart.py": project_line + (sample_repo / "shop/cart.py").read_text()})
    _venv_with(sample_repo, module, source)
    result, requests = _fix(sample_repo, agent_env)
    assert result.code == 3 and requests == []
    line = _one_error_line(result.stderr)
    assert words in line and "while importing a module from outside the project" in line
    assert "shop/cart.py" in line
    _nothing_left(sample_repo, agent_env)


def test_the_projects_own_call_of_a_deprecated_api_is_a_reproduction(sample_repo, agent_env):
    """When the project's code calls what warns, fixing that call is the model's job, not the environment's."""
    _commit(sample_repo, {"pytest.ini": "[pytest]\npythonpath = .\nfilterwarnings =\n    error\n",
                          "shop/cart.py": "import oldlib\n\noldlib.old_api()\n"
                                          + (sample_repo / "shop/cart.py").read_text()})
    _venv_with(sample_repo, "oldlib", _DEPRECATED_CALL)
    result, requests = _fix(sample_repo, agent_env)
    assert requests, result.stderr
    assert result.code == 1

"""The code under test is the worktree's, whatever the user's venv holds (issue 14, local sandbox).

Real venvs, real `pip install -e .` (setuptools: a .pth for a src layout, a meta-path finder for a
flat one), real `agent fix --sandbox local` runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import git, make_sample_repo
from sandbox.importroots import declared_dirs, import_roots, top_level_packages
from sandbox.local import LocalSandbox
from tests.conftest import TEST_KEY, run_cli
from tests.test_fix_cli import fix_args

BUGGY = "    return total - total * percent / 10\n"
FIXED = "    return total - total * percent / 100\n"
TARGET = "tests/test_ops.py::test_discount"
PYPROJECT = ('[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n\n'
             '[project]\nname = "calc"\nversion = "0.1.0"\n')


def project_files(layout: str) -> dict[str, str]:
    pkg = "src/calc" if layout == "src" else "calc"
    pyproject = PYPROJECT + ('\n[tool.setuptools]\npackages = ["calc"]\n' if layout == "flat" else "")
    return {
        "pyproject.toml": pyproject,
        ".gitignore": ".venv/\nbuild/\n*.egg-info/\n",
        f"{pkg}/__init__.py": "",
        f"{pkg}/ops.py": f"def discount(total, percent):\n{BUGGY}",
        "tests/test_ops.py": ("from calc.ops import discount\n\n\ndef test_discount():\n"
                              "    assert discount(200, 10) == 180\n\n\ndef test_zero():\n"
                              "    assert discount(50, 0) == 50\n"),
    }


def ops_path(layout: str) -> str:
    return "src/calc/ops.py" if layout == "src" else "calc/ops.py"


def make_venv(path: Path) -> Path:
    """A venv that sees this interpreter's packages (pytest, setuptools), as a user's dev venv does."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def pip_install(python: Path, project: Path, editable: bool) -> None:
    args = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
            "--no-build-isolation", *(["-e"] if editable else []), str(project)]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def script(layout: str) -> list[dict]:
    return [
        {"reasoning": "A percentage is divided by 100.",
         "tool_calls": [{"name": "edit", "arguments": {"path": ops_path(layout), "old": BUGGY.strip(),
                                                       "new": FIXED.strip()}}]},
        {"reasoning": "Check.", "tool_calls": [{"name": "run_tests", "arguments": {}}]},
        {"content": "Fixed.", "tool_calls": [{"name": "finish", "arguments": {"summary": "divide by 100"}}]},
    ]


def run_fix(repo: Path, layout: str, env: dict[str, str]):
    with FakeGLM(turns=script(layout), api_key=TEST_KEY) as server:
        return run_cli(fix_args(repo, server, task=TARGET), env)


@pytest.mark.parametrize("layout", ["src", "flat"])
def test_editable_install_in_the_repo_venv_does_not_hide_the_fix(tmp_path, agent_env, layout):
    """Installed editable from the user's checkout (still buggy): the worktree's edit must be what runs."""
    repo = make_sample_repo(tmp_path / "calc", project_files(layout))
    pip_install(make_venv(repo / ".venv"), repo, editable=True)
    result = run_fix(repo, layout, agent_env)
    assert result.code == 0, result.stderr
    assert result.report["status"] == "resolved"
    assert result.report["tests"]["before"]["targets"] == {TARGET: "failed"}
    assert f"(repo .venv); imports the worktree first: .{', src/' if layout == 'src' else ''}" in result.stderr


@pytest.mark.parametrize("layout", ["src", "flat"])
def test_fixed_checkout_installed_editable_does_not_make_the_bug_pass(tmp_path, agent_env, layout):
    """The user's checkout holds an uncommitted fix, installed editable: the run starts from HEAD (buggy),
    so the target must fail at reproduction, not end `already_passing`."""
    repo = make_sample_repo(tmp_path / "calc", project_files(layout))
    pip_install(make_venv(repo / ".venv"), repo, editable=True)
    (repo / ops_path(layout)).write_text(f"def discount(total, percent):\n{FIXED}")
    result = run_fix(repo, layout, agent_env)
    assert result.report["tests"]["before"]["targets"] == {TARGET: "failed"}, result.stderr
    assert "already_passing" not in result.report["stop_reason"]
    assert result.code == 0 and result.report["status"] == "resolved"


def test_a_fixed_release_in_the_active_virtualenv_does_not_make_the_bug_pass(tmp_path, agent_env):
    """The venv that holds the agent also holds a (fixed) release of the project, not editable."""
    repo = make_sample_repo(tmp_path / "calc", project_files("src"))
    release = tmp_path / "release"
    shutil.copytree(repo, release, ignore=shutil.ignore_patterns(".git"))
    (release / ops_path("src")).write_text(f"def discount(total, percent):\n{FIXED}")
    venv_python = make_venv(tmp_path / "agent-venv")
    pip_install(venv_python, release, editable=False)
    agent_env["VIRTUAL_ENV"] = str(tmp_path / "agent-venv")
    result = run_fix(repo, "src", agent_env)
    assert result.report["tests"]["before"]["targets"] == {TARGET: "failed"}, result.stderr
    assert "(active virtualenv)" in result.stderr
    assert result.code == 0 and result.report["status"] == "resolved"


def test_import_roots_follow_the_metadata(tmp_path):
    root = tmp_path / "repo"
    for rel in ("src/a", "lib/b", "python/c", "pkgs/d", "code/e", "outside"):
        (root / rel).mkdir(parents=True)
        (root / rel / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(
        '[tool.setuptools.packages.find]\nwhere = ["python"]\n[tool.setuptools]\npackage-dir = {"b" = "lib/b"}\n'
        '[tool.poetry]\npackages = [{include = "d", from = "pkgs"}]\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["code/e", "../escape/x"]\n')
    (root / "setup.cfg").write_text("[options]\npackage_dir =\n    =src\n")
    assert declared_dirs(root) == ["python", "lib", "pkgs", "code", "../escape", "src"]
    rel = [p.relative_to(root.resolve()).as_posix() for p in import_roots(root)]
    assert rel == [".", "src", "python", "lib", "pkgs", "code"]  # nothing outside the worktree
    (root / "tests").mkdir()
    (root / "tests" / "__init__.py").write_text("")
    assert top_level_packages(root) == ["outside", "a", "c", "b", "d", "e"]


FINDER_FIRST = '''import importlib.util, sys
class _First:
    """What a build backend's editable finder at sys.meta_path[0] does: answer before PYTHONPATH."""
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "calc":
            return importlib.util.spec_from_file_location(name, {init!r}, submodule_search_locations=[{pkg!r}])
        return None
sys.meta_path.insert(0, _First)
'''


def test_foreign_imports_names_a_package_imported_from_elsewhere(tmp_path, monkeypatch):
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    user = make_sample_repo(tmp_path / "user", project_files("src"))
    python = make_venv(user / ".venv")
    pip_install(python, user, editable=True)
    worktree = tmp_path / "worktree"
    shutil.copytree(user, worktree, ignore=shutil.ignore_patterns(".git", ".venv"))
    git(worktree, "init", "-q")
    with LocalSandbox(worktree, env_root=user) as box:
        assert box.foreign_imports() == []  # the editable .pth loses to the worktree's src/
        assert "imports the worktree first: ., src/" in box.describe()
    init = install_first_finder(user)
    with LocalSandbox(worktree, env_root=user) as box:
        assert box.foreign_imports() == [("calc", init)]


def install_first_finder(user: Path) -> str:
    """Put a finder at sys.meta_path[0] in the user's .venv that maps `calc` to the checkout; returns its file."""
    site = next((user / ".venv" / "lib").glob("python*/site-packages"))
    pkg = user / "src" / "calc"
    (site / "first_finder.py").write_text(FINDER_FIRST.format(init=str(pkg / "__init__.py"), pkg=str(pkg)))
    (site / "first_finder.pth").write_text("import first_finder\n")
    return str(pkg / "__init__.py")


def test_fix_stops_when_the_project_imports_from_elsewhere(tmp_path, agent_env):
    repo = make_sample_repo(tmp_path / "calc", project_files("src"))
    pip_install(make_venv(repo / ".venv"), repo, editable=True)
    init = install_first_finder(repo)
    with FakeGLM(turns=script("src"), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(repo, server, task=TARGET), agent_env)
    assert result.code == 3, result.stderr
    assert f"the project does not import from the worktree: calc from {init}" in result.stderr
    assert server.requests == []  # stopped before any model call
    # an environment problem found at the reproduction leaves nothing behind
    assert "agent/" not in git(repo, "branch", "--list")
    assert not list(Path(agent_env["AGENT_HOME"]).glob("runs/*"))


NSPKG = {
    "setup.py": "from setuptools import setup\nsetup(name='nsx.calc', version='1.0', packages=['nsx'],\n"
                "      namespace_packages=['nsx'])\n",
    "nsx/__init__.py": "try:\n    __import__('pkg_resources').declare_namespace(__name__)\nexcept ImportError:\n"
                       "    __path__ = __import__('pkgutil').extend_path(__path__, __name__)\n",
    "nsx/calc.py": "WHERE = 'checkout'\n",
    "tests/test_calc.py": "from nsx.calc import WHERE\n\n\ndef test_where():\n    assert WHERE\n",
}


def test_an_editable_pkg_resources_namespace_does_not_hide_the_worktree(tmp_path, monkeypatch):
    """The editable install's -nspkg.pth (setup.py's namespace_packages, as jaraco.* had it) puts `nsx`
    (the user's checkout) in sys.modules at startup,
    before PYTHONPATH is consulted: the worktree's nsx.calc must still be what imports."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    user = make_sample_repo(tmp_path / "user", {**NSPKG, ".gitignore": ".venv/\n*.egg-info/\n"})
    python = make_venv(user / ".venv")
    pip_install(python, user, editable=True)
    site = next((user / ".venv" / "lib").glob("python*/site-packages"))
    assert list(site.glob("*-nspkg.pth")), sorted(p.name for p in site.iterdir())
    worktree = tmp_path / "worktree"
    shutil.copytree(user, worktree, ignore=shutil.ignore_patterns(".git", ".venv", "*.egg-info"))
    (worktree / "nsx" / "calc.py").write_text("WHERE = 'worktree'\n")
    git(worktree, "init", "-q")
    with LocalSandbox(worktree, env_root=user) as box:
        assert box.foreign_imports() == []
        result = box.exec(["python", "-c", "import nsx.calc; print(nsx.calc.WHERE, nsx.calc.__file__)"], 60)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["worktree", str(worktree / "nsx" / "calc.py")]

"""A VCS-versioned project's generated version file (setuptools-scm `version_file`, hatch-vcs, pdm):
the user's checkout has it from `pip install -e .`, the agent's fresh worktree did not, and `import pkg`
failed there in both sandboxes. It is written from host git into the worktree, never committed, and
its path (the repository's words) cannot lead outside the worktree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import FILES, fixing_script, git, make_sample_repo
from sandbox.versionfile import declared, render, version_tuple, write_version_files
from tests.conftest import TEST_KEY, run_cli
from tests.test_fix_cli import fix_args


def scm_repo(tmp_path: Path, version_file: str, extra: dict[str, str] | None = None) -> Path:
    pyproject = FILES["pyproject.toml"].replace('version = "0.1.0"\n', 'dynamic = ["version"]\n')
    files = {**FILES, "pyproject.toml": pyproject
             + f'\n[tool.setuptools_scm]\nversion_file = "{version_file}"\n',
             "shop/__init__.py": '"""A tiny shop."""\nfrom shop._version import __version__\n', **(extra or {})}
    repo = make_sample_repo(tmp_path / "shop", files)
    git(repo, "tag", "v1.4.0")
    return repo


@pytest.mark.parametrize("ignored", [True, False], ids=["git-ignored", "not-ignored"])
def test_the_worktree_gets_the_version_file_and_the_branch_does_not(tmp_path, agent_env, ignored):
    repo = scm_repo(tmp_path, "shop/_version.py", {".gitignore": "shop/_version.py\n"} if ignored else None)
    # what `pip install -e .` left in the user's checkout (untracked; git-ignored as projects do, or not)
    (repo / "shop" / "_version.py").write_text("__version__ = version = '0.0.0+users-checkout'\n")
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(repo, server), agent_env)
    assert result.code == 0, result.stderr  # before: `import shop` failed in the worktree, exit 3
    assert result.report["status"] == "resolved"
    assert "wrote shop/_version.py from git describe" in result.stderr
    branch = result.report["branch"]
    assert "shop/_version.py" not in git(repo, "diff", "--name-only", f"{branch}~1", branch).split()
    assert "_version.py" not in result.report["patch"] and "percent / 100" in result.report["patch"]
    assert (repo / "shop" / "_version.py").read_text() == "__version__ = version = '0.0.0+users-checkout'\n"


def test_a_version_file_through_a_symlinked_directory_is_not_written(tmp_path, agent_env):
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = scm_repo(tmp_path, "lnk/_version.py")
    os.symlink(outside, repo / "lnk")
    git(repo, "add", "lnk")
    git(repo, "commit", "-qm", "a link")
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(repo, server), agent_env)
    assert result.code in (0, 1, 3), result.stderr
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("rel", ["../escape.py", "/tmp/escape.py", "shop/../../escape.py", "deep/missing/_v.py"])
def test_a_version_file_path_outside_the_worktree_is_refused(tmp_path, rel):
    root = tmp_path / "wt"
    (root / "shop").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[tool.setuptools_scm]\nversion_file = "{rel}"\n')
    assert write_version_files(root, "1.0") == []
    assert not (tmp_path / "escape.py").exists() and not Path("/tmp/escape.py").exists()


def test_an_existing_file_or_a_planted_symlink_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    root = tmp_path / "wt"
    (root / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.setuptools_scm]\nversion_file = "pkg/_version.py"\n'
                                         'write_to = "pkg/tracked.py"\n')
    os.symlink(victim, root / "pkg" / "_version.py")
    (root / "pkg" / "tracked.py").write_text("VERSION = 'tracked'\n")
    assert write_version_files(root, "2.0") == []
    assert victim.read_text() == "mine\n" and (root / "pkg" / "tracked.py").read_text() == "VERSION = 'tracked'\n"


def test_declared_version_files_of_each_backend(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools_scm]\nversion_file = "src/a/_version.py"\nversion_file_template = "V = {version!r}"\n'
        '[tool.hatch.build.hooks.vcs]\nversion-file = "src/b/_version.py"\n'
        '[tool.pdm.version]\nsource = "scm"\nwrite_to = "c/VERSION.txt"\nwrite_template = "{}"\n')
    (tmp_path / "setup.py").write_text("setup(use_scm_version={'write_to': 'd/version.py'})\n")
    assert declared(tmp_path) == [("src/a/_version.py", "V = {version!r}", "format"),
                                  ("src/b/_version.py", None, "format"), ("c/VERSION.txt", "{}", "positional"),
                                  ("d/version.py", None, "format")]


def test_the_default_module_is_what_setuptools_scm_exposes():
    assert version_tuple("1.2.3.dev4+gabc.d20260101") == (1, 2, 3, "dev4", "gabc.d20260101")
    namespace: dict = {}
    exec(render("p/_version.py", None, "format", "1.2.3.dev4+gabc"), namespace)  # noqa: S102 - our own text
    assert namespace["__version__"] == namespace["version"] == "1.2.3.dev4+gabc"
    assert namespace["version_tuple"] == (1, 2, 3, "dev4", "gabc")
    assert render("p/VERSION.txt", None, "format", "1.0") == "1.0\n"
    assert render("p/v.py", "v = '{scm_version.node}'", "format", "1.0") is None  # only the real build knows

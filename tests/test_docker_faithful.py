"""Environment images that match the project (issue 14), built by a real engine from small repos made here.

Each test builds a fresh image (unique content, so a unique key) and removes it afterwards.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from evals.sample_repo import git

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def images():
    from sandbox.engine import ensure_engine

    made: list[str] = []
    yield made
    for tag in made:
        ensure_engine().images.remove(tag, force=True)


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def run_in(repo: Path, image: str, *argv: str) -> tuple[int, str]:
    from sandbox.docker import DockerSandbox

    with DockerSandbox(repo, image=image) as box:
        result = box.exec(list(argv), 120)
    return result.exit_code, result.output.strip()


def test_setuptools_scm_project_builds_and_imports_its_version(base, tmp_path, images):
    from agent.gitops import commit_date, describe_version
    from sandbox.environment import ensure_environment

    repo = write(tmp_path / "scm", {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=64", "setuptools-scm>=8"]\n'
                          'build-backend = "setuptools.build_meta"\n[project]\nname = "scmproj"\n'
                          'dynamic = ["version"]\ndependencies = ["six"]\n[tool.setuptools_scm]\n'
                          f"# {uuid.uuid4()}\n",
        "src/scmproj/__init__.py": "from importlib.metadata import version\n__version__ = version('scmproj')\n",
        "tests/test_it.py": "import scmproj, six\n\ndef test_version():\n    assert scmproj.__version__\n",
    })
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    git(repo, "tag", "v1.4.0")
    (repo / "README").write_text("two\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "two")
    sha = git(repo, "rev-parse", "--short", "HEAD").strip()
    version = describe_version(repo)
    assert version == f"1.4.1.dev1+g{sha}"
    logs: list[str] = []
    images.append(ensure_environment(repo, "auto", [], log=logs.append, version=version, date=commit_date(repo)))
    code, out = run_in(repo, images[-1], "python", "-c", "import scmproj; print(scmproj.__version__, scmproj.__file__)")
    assert code == 0, out
    assert out.split() == [version, "/repo/src/scmproj/__init__.py"]
    assert any("environment: install dependencies" in line for line in logs), logs  # live progress


def test_versioneer_style_lookup_in_a_worktree_falls_back_and_cannot_touch_the_git_pointer(base, tmp_path, images):
    from sandbox.environment import ensure_environment

    main = write(tmp_path / "main", {
        "setup.py": "from setuptools import setup\nsetup(name='vproj', version='0+unknown', packages=['vproj'])\n",
        "vproj/__init__.py": "from vproj._version import get_version\n__version__ = get_version()\n",
        # what versioneer does: ask git in the package's checkout, fall back to 0+unknown
        "vproj/_version.py": (
            "import os, subprocess\n\ndef get_version():\n"
            "    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))\n"
            "    rc = subprocess.run(['git', 'rev-parse', '--git-dir'], cwd=root, capture_output=True).returncode\n"
            "    if rc != 0:\n        return '0+unknown'\n"
            "    out = subprocess.run(['git', 'describe', '--tags', '--long'], cwd=root, capture_output=True,\n"
            "                         text=True, check=True).stdout\n"
            "    return out.strip().lstrip('v')\n"),
        "MARK": str(uuid.uuid4()),
    })
    git(main, "init", "-q")
    git(main, "add", ".")
    git(main, "commit", "-qm", "one")
    worktree = tmp_path / "wt"
    git(main, "worktree", "add", "-q", str(worktree))
    pointer = (worktree / ".git").read_text()
    images.append(ensure_environment(worktree, "auto", [], log=lambda _m: None))
    code, out = run_in(worktree, images[-1], "sh", "-c",
                       "python -c 'import vproj; print(vproj.__version__)'; "
                       "echo 'gitdir: .evil' > .git && echo WROTE; git rev-parse --git-dir || echo NOGIT")
    assert out.splitlines()[0] == "0+unknown", out
    assert "WROTE" not in out and "NOGIT" in out, out
    assert (worktree / ".git").read_text() == pointer


def test_uv_lock_pins_an_old_release(base, tmp_path, images):
    from sandbox.environment import ensure_environment

    repo = write(tmp_path / "locked", {
        "pyproject.toml": '[project]\nname = "locked"\nversion = "0.1"\nrequires-python = ">=3.9"\n'
                          f'dependencies = ["six"]\n# {uuid.uuid4()}\n',
        "tests/test_six.py": "import six\n\ndef test_six():\n    assert six.__version__ == '1.15.0'\n",
    })
    env = {**os.environ, "UV_EXCLUDE_NEWER": "2020-06-01T00:00:00Z"}
    done = subprocess.run(["uv", "lock"], cwd=repo, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert 'name = "six"\nversion = "1.15.0"' in (repo / "uv.lock").read_text()
    images.append(ensure_environment(repo, "auto", [], log=lambda _m: None))
    code, out = run_in(repo, images[-1], "python", "-m", "pytest", "-q")
    assert code == 0 and "1 passed" in out, out


def test_unpinned_requirements_resolve_as_of_the_commit_date(base, tmp_path, images):
    from sandbox.environment import ensure_environment

    repo = write(tmp_path / "dated", {"requirements.txt": f"six  # {uuid.uuid4()}\n"})
    images.append(ensure_environment(repo, "3.11", [], log=lambda _m: None, date="2023-06-01T00:00:00+00:00"))
    code, out = run_in(repo, images[-1], "python", "-c", "import six; print(six.__version__)")
    assert (code, out) == (0, "1.16.0")  # 1.17.0 came out in December 2024


def test_a_pinned_package_that_crashes_todays_pytest_is_upgraded(base, tmp_path, images):
    """jmespath 2017: requirements.txt pins py==1.4.12 for nose; pytest 8 crashes on it (INTERNALERROR)
    before running any test. pytest is what the environment adds, so the pin that breaks it gives way."""
    from sandbox.environment import ensure_environment

    repo = write(tmp_path / "nosey", {"requirements.txt": f"py==1.4.12  # {uuid.uuid4()}\nsix==1.10.0\n",
                                      "tests/test_it.py": "import six\n\ndef test_it():\n    assert six\n"})
    logs: list[str] = []
    images.append(ensure_environment(repo, "3.11", [], log=logs.append))
    code, out = run_in(repo, images[-1], "sh", "-c",
                       "python -m pytest -q -p no:cacheprovider tests 2>&1 | tail -1; "
                       "python -c 'import py, six; print(py.__version__, six.__version__)'")
    assert code == 0 and "1 passed" in out.splitlines()[0], out
    py_version, six_version = out.splitlines()[-1].split()
    assert py_version != "1.4.12" and six_version == "1.10.0", out  # only the culprit moved
    assert any("pytest crashes in py as pinned" in line and "upgrading py" in line for line in logs), logs


def test_an_image_is_not_reused_across_versions_or_resolution_dates(base, tmp_path, images):
    """Same dependency files, another commit: the VCS version and the unpinned resolution's cut-off
    are part of what the image holds, so the second commit gets its own image."""
    from agent.gitops import describe_version
    from sandbox.environment import ensure_environment

    repo = write(tmp_path / "scm2", {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=64", "setuptools-scm>=8"]\n'
                          'build-backend = "setuptools.build_meta"\n[project]\nname = "scmtwo"\n'
                          'dynamic = ["version"]\ndependencies = ["six"]\n[tool.setuptools_scm]\n'
                          f"# {uuid.uuid4()}\n",
        "src/scmtwo/__init__.py": "from importlib.metadata import version\n__version__ = version('scmtwo')\n",
    })
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    git(repo, "tag", "v1.0.0")
    seen = []
    for date, tag in (("2023-12-01T00:00:00+00:00", None), ("2025-01-01T00:00:00+00:00", "v2.0.0")):
        if tag:
            (repo / "README").write_text("two\n")
            git(repo, "add", ".")
            git(repo, "commit", "-qm", "two")
            git(repo, "tag", tag)
        images.append(ensure_environment(repo, "auto", [], log=lambda _m: None, version=describe_version(repo),
                                         date=date))
        code, out = run_in(repo, images[-1], "python", "-c", "import scmtwo, six; print(scmtwo.__version__, "
                           "six.__version__)")
        assert code == 0, out
        seen.append(out)
    assert seen == ["1.0.0 1.16.0", "2.0.0 1.17.0"]


def test_the_venv_has_what_a_seeded_venv_has_and_the_build_container_goes_away(base, tmp_path, images):
    """The seed packages come in the one uv resolution (not a second download round), and the build
    container is removed after the commit, off the build's path, before the process ends."""
    import threading

    from sandbox.engine import ensure_engine
    from sandbox.environment import ensure_environment

    repo = write(tmp_path / "seeded", {"requirements.txt": f"six  # {uuid.uuid4()}\n"})
    images.append(ensure_environment(repo, "3.11", [], log=lambda _m: None))
    for thread in threading.enumerate():
        if thread.name.startswith("remove-agent-envbuild-"):
            thread.join(120)
    key = images[-1].split(":", 1)[1]
    assert not ensure_engine().containers.list(all=True, filters={"name": f"agent-envbuild-{key}-"})
    code, out = run_in(repo, images[-1], "sh", "-c", "python -c 'import setuptools, wheel, six' && "
                       "python -m pip --version >/dev/null && echo ok")
    assert (code, out) == (0, "ok")


def test_src_layout_beats_a_copy_of_the_package_in_site_packages(base, tmp_path, images):
    from sandbox.environment import ensure_environment

    repo = write(tmp_path / "shadow", {
        "src/shadowpkg/__init__.py": "WHERE = 'worktree'\n",
        "tests/test_where.py": "import shadowpkg\n\ndef test_where():\n"
                               "    assert shadowpkg.WHERE == 'worktree', shadowpkg.__file__\n",
    })
    # what a test dependency that ships the same top-level package does to site-packages
    plant = ("site=$(python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') && "
             f"mkdir -p $site/shadowpkg && echo \"WHERE = 'site-packages'  # {uuid.uuid4()}\" "
             "> $site/shadowpkg/__init__.py")
    images.append(ensure_environment(repo, "auto", [plant], log=lambda _m: None))
    code, out = run_in(repo, images[-1], "python", "-m", "pytest", "-q")
    assert code == 0 and "1 passed" in out, out


# What setuptools writes for `namespace_packages=['nsx']` on a legacy (`setup.py install`) install
_NSPKG = ("import sys, types, os;has_mfs = sys.version_info > (3, 5);p = os.path.join(sys._getframe(1).f_locals["
          "'sitedir'], *('nsx',));importlib = has_mfs and __import__('importlib.util');has_mfs and "
          "__import__('importlib.machinery');m = has_mfs and sys.modules.setdefault('nsx', importlib.util."
          "module_from_spec(importlib.machinery.PathFinder.find_spec('nsx', [os.path.dirname(p)])));m = m or "
          "sys.modules.setdefault('nsx', types.ModuleType('nsx'));mp = (m or []) and m.__dict__.setdefault("
          "'__path__',[]);(p not in mp) and mp.append(p)\n")


def test_a_namespace_package_an_nspkg_pth_set_up_at_startup_comes_from_the_worktree(base, tmp_path, images):
    """jaraco.functools 2016 in Docker: pip's legacy install left a copy and its -nspkg.pth in site-packages;
    the .pth put `jaraco` in sys.modules before PYTHONPATH mattered, so the tests ran the stale copy."""
    from sandbox.environment import ensure_environment

    repo = write(tmp_path / "ns", {
        "nsx/__init__.py": "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n",
        "nsx/tool.py": "WHERE = 'worktree'\n",
        "nspkg.pth": _NSPKG,
        "tests/test_it.py": f"# {uuid.uuid4()}\n",
    })
    installed = ("site=$(python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') && "
                 "mkdir \"$site/nsx\" && "
                 "echo \"WHERE = 'installed'\" > \"$site/nsx/tool.py\" && cp nspkg.pth \"$site/nsx-1.0-nspkg.pth\"")
    images.append(ensure_environment(repo, "3.11", [installed], log=lambda _m: None))
    code, out = run_in(repo, images[-1], "python", "-c", "import nsx.tool; print(nsx.tool.WHERE, nsx.tool.__file__)")
    assert (code, out) == (0, "worktree /repo/nsx/tool.py")


def test_a_failed_install_is_one_line_naming_the_step_and_the_error(base, tmp_path):
    from sandbox.base import SandboxError
    from sandbox.environment import ensure_environment

    repo = write(tmp_path / "broken", {
        "setup.py": f"raise SystemExit('cannot build: missing libfoo-{uuid.uuid4().hex[:8]}')\n"})
    with pytest.raises(SandboxError) as caught:
        ensure_environment(repo, "auto", [], log=lambda _m: None)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith("environment build failed: pip install the project exited 1: "), message
    assert "libfoo" in message, message


def test_cli_reports_a_failed_environment_build_as_exit_3_with_its_cause(base, tmp_path, agent_env):
    from evals.fake_glm import FakeGLM
    from evals.sample_repo import FILES, TARGET, make_sample_repo
    from tests.conftest import TEST_KEY, run_cli

    marker = uuid.uuid4().hex[:8]
    repo = make_sample_repo(tmp_path / "shop", {
        **FILES, "setup.py": f"raise SystemExit('cannot build: needs libfoo-{marker}')\n"})
    with FakeGLM(turns=[], api_key=TEST_KEY) as server:
        result = run_cli(["fix", TARGET, "--repo", str(repo), "--base-url", server.base_url, "--sandbox", "docker",
                          "--json"], agent_env, timeout=600)
        assert not server.requests  # the model is never called on a broken environment
    assert result.code == 3, result.stderr
    assert f"environment build failed: pip install the project exited 1: cannot build: needs libfoo-{marker}" \
        in result.stderr
    assert "no test matches" not in result.stderr


def test_an_old_setup_py_project_installs_with_uv_as_of_its_date(base, tmp_path, images):
    """jaraco.functools and dateutil, 2016-2018: setup_requires=['setuptools_scm'] resolved as of the
    commit gave a setuptools that does not start on Python 3.11, so uv failed and pip took a minute with
    today's versions. Now the project is built by today's backend and everything else is as of Python
    3.11's release (not today, not 2016: hypothesis of 2018 does not import on 3.9); a Python 2.6
    requirements file is left out."""
    from sandbox.environment import ensure_environment

    repo = write(tmp_path / "oldscm", {
        "setup.py": "import setuptools\nsetuptools.setup(name='oldscm', use_scm_version=True, packages=['oldscm'],\n"
                    f"    setup_requires=['setuptools_scm'], install_requires=['six'])  # {uuid.uuid4()}\n",
        "requirements26.txt": "ordereddict==1.1\nunittest2==0.5.1\n",
        "oldscm/__init__.py": "import six\n",
        "tests/test_it.py": "from importlib.metadata import version\n\ndef test_it():\n"
                            "    assert version('oldscm') == '1.4.2'\n",
    })
    logs: list[str] = []
    images.append(ensure_environment(repo, "3.11", [], log=logs.append, version="1.4.2",
                                     date="2016-03-10T10:06:48-05:00"))
    assert logs[-1].endswith("(uv)"), logs  # one resolution: no step-by-step, no pip
    code, out = run_in(repo, images[-1], "sh", "-c", "python -m pytest -q -p no:cacheprovider tests 2>&1 | tail -1; "
                       "python -c 'import six, pytest, setuptools; print(six.__version__, pytest.__version__, "
                       "setuptools.__version__)'; pip list 2>/dev/null | grep -ci -e ordereddict -e unittest2 || true")
    lines = out.splitlines()
    assert code == 0 and "1 passed" in lines[0], out
    six_version, pytest_version, setuptools_version = lines[1].split()
    assert (six_version, pytest_version, setuptools_version) == ("1.16.0", "7.1.3", "65.5.0"), out  # 2022-10-24
    assert lines[2] == "0", out


def test_a_requirements_file_that_cannot_install_is_left_out_with_uv_step_by_step(base, tmp_path, images):
    from sandbox.environment import ensure_environment

    missing = f"no-such-package-{uuid.uuid4().hex[:10]}"
    repo = write(tmp_path / "partial", {
        "pyproject.toml": '[project]\nname = "partial"\nversion = "0.1"\ndependencies = ["six"]\n',
        "partial/__init__.py": "import six\n",
        "requirements-dev.txt": f"{missing}==1.0\n",
        "tests/test_it.py": "import partial\n\ndef test_it():\n    assert partial.six\n",
    })
    logs: list[str] = []
    images.append(ensure_environment(repo, "3.11", [], log=logs.append))
    assert logs[-1].endswith("(uv, step by step)"), logs
    assert any(line.startswith("warning: installing -r requirements-dev.txt with uv exited")
               and missing in line for line in logs), logs
    code, out = run_in(repo, images[-1], "python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert code == 0 and "1 passed" in out, out

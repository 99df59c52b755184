"""Pure logic of the Docker sandbox (no engine needed): mirrors, pip config, keys, requirements."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.base_image import alias_tag, apt_mirror, base_tag, recipe_hash
from sandbox.envhost import CA_IN_CONTAINER, host_net, local_paths
from sandbox.environment import environment_key
from sandbox.envplan import dependency_files, filtered_requirements, is_installable, tox_deps


def test_apt_mirror_from_deb822_skips_security_and_third_party(tmp_path, monkeypatch):
    monkeypatch.delenv("AGENT_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "a.sources").write_text(
        "Types: deb\nURIs: https://deb.example.org/node\nSuites: nodistro\n\n"
        "Types: deb\nURIs: http://mirror.example.net/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\n# comment\nURIs: http://mirror.example.net/debian\nSuites: bookworm bookworm-updates\n")
    assert apt_mirror(tmp_path) == "http://mirror.example.net/debian"


def test_apt_mirror_from_classic_sources_list(tmp_path, monkeypatch):
    monkeypatch.delenv("AGENT_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://classic.example/debian bullseye main\n")
    assert apt_mirror(tmp_path) == "http://classic.example/debian"
    monkeypatch.setenv("AGENT_DEBIAN_MIRROR", "http://override.example/debian")
    assert apt_mirror(tmp_path) == "http://override.example/debian"


def test_base_tags_follow_release_and_recipe():
    assert base_tag("3.9").startswith("agent-base:bullseye-")
    assert base_tag("3.13").startswith("agent-base:trixie-")
    assert recipe_hash("3.11") == recipe_hash("3.11") != recipe_hash("3.9")
    assert alias_tag("3.11") == "agent-base:py3.11"


def test_host_net_mounts_ca_and_local_indexes(tmp_path, monkeypatch):
    ca = tmp_path / "corp-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "mirror" / "simple").mkdir(parents=True)
    (tmp_path / "wheels").mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.setenv("PIP_INDEX_URL", f"file://{tmp_path}/mirror/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", f"{tmp_path}/wheels /does/not/exist")
    net = host_net()
    assert net.mounts[str(ca)] == CA_IN_CONTAINER
    assert net.environment["PIP_CERT"] == net.environment["REQUESTS_CA_BUNDLE"] == CA_IN_CONTAINER
    assert net.environment["PIP_INDEX_URL"] == f"file://{tmp_path}/mirror/simple"
    assert net.mounts[str(tmp_path / "mirror")] == str(tmp_path / "mirror")  # parent of simple/
    assert net.mounts[str(tmp_path / "wheels")] == str(tmp_path / "wheels")
    assert "/does/not/exist" not in net.mounts
    assert local_paths("https://pypi.example/simple") == []


def test_filtered_requirements_drop_the_repo_itself():
    text = "-e .\n.\n./sub\nsix>=1.0  # pinned\n-r other.txt\n--editable=.\nrequests[socks]\n"
    assert filtered_requirements(text).split("\n")[:-1] == ["six>=1.0  # pinned", "-r other.txt",
                                                            "requests[socks]"]


def test_tox_deps_keep_plain_requirements(tmp_path):
    (tmp_path / "tox.ini").write_text(
        "[tox]\nenvlist = py311\n[testenv]\ndeps =\n    pytest-mock\n    -rrequirements.txt\n"
        "    py311: coverage\n    hypothesis>=6\ncommands = pytest\n")
    assert tox_deps(tmp_path) == ["pytest-mock", "hypothesis>=6"]


def test_environment_key_tracks_dependency_files_and_setup(tmp_path):
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "README.md").write_text("not a dependency file\n")
    base = "agent-base:bookworm-x"
    key = environment_key(tmp_path, [], base)
    (tmp_path / "README.md").write_text("changed\n")
    assert environment_key(tmp_path, [], base) == key
    assert environment_key(tmp_path, ["pip install x"], base) != key
    assert environment_key(tmp_path, [], "agent-base:bullseye-y") != key
    (tmp_path / "requirements.txt").write_text("six==1.17.0\n")
    assert environment_key(tmp_path, [], base) != key
    assert [p.name for p in dependency_files(tmp_path)] == ["requirements.txt"]


@pytest.mark.parametrize(("files", "expected"), [
    ({"setup.py": "from setuptools import setup\nsetup()\n"}, True),
    ({"pyproject.toml": "[project]\nname='x'\n"}, True),
    ({"pyproject.toml": "[tool.pytest.ini_options]\n"}, False),
    ({"setup.cfg": "[metadata]\nname = x\n"}, False),
])
def test_is_installable(tmp_path: Path, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert is_installable(tmp_path) is expected


def test_doctor_checks_report_engine_and_base_image():
    from sandbox.cli import doctor_checks

    checks = doctor_checks("3.11")
    assert checks[0][0] == "docker engine"
    assert len(checks) == 2 and all(isinstance(detail, str) and detail for _n, _ok, detail in checks)
    if not checks[0][1]:
        assert "dockerd" in checks[0][2]


def test_credentials_found_in_urls_and_proxies(monkeypatch, tmp_path: Path):
    from sandbox.envhost import secrets_in

    found = secrets_in(["https://__token__:pypi-AgEIcHlwaS5vcmc%2Fx@upload.example/simple",
                        "http://ghp_abcdefghijkl@git.example/simple file:///opt/pypi/simple",
                        "http://user:pw@proxy:3128", "https://plain.example/simple"])
    assert "pypi-AgEIcHlwaS5vcmc%2Fx" in found and "pypi-AgEIcHlwaS5vcmc/x" in found
    assert "ghp_abcdefghijkl" in found
    assert "pw" not in found  # too short to search for without false alarms
    monkeypatch.setenv("HTTPS_PROXY", "http://proxyuser:proxy-secret-1@proxy.example:3128")
    monkeypatch.setenv("PIP_INDEX_URL", f"file://{tmp_path}/simple")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    net = host_net()
    assert "proxy-secret-1" in net.secrets()
    uv = net.uv_environment()
    assert uv["UV_INDEX_URL"] == f"file://{tmp_path}/simple" and uv["UV_FIND_LINKS"] == str(tmp_path)
    assert not any(k.startswith("PIP_") for k in uv)


@pytest.mark.parametrize(("files", "expected"), [
    ({}, "3.11"),
    ({"pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.12"\n'}, "3.13"),
    ({"setup.py": "setup(python_requires='>=3.6',\n classifiers=['Programming Language :: Python :: 3.7',\n"
                  " 'Programming Language :: Python :: 3.9'])\n"}, "3.9"),
    ({"pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.8,<3.11"\n'}, "3.9"),
    ({".python-version": "3.13.1\n"}, "3.13"),
    ({"tox.ini": "[tox]\nenvlist = py37,py38,py39\n"}, "3.9"),
    ({"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.10"\n'}, "3.11"),
])
def test_choose_python_from_the_project(tmp_path, files, expected):
    from sandbox.envplan import choose_python

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert choose_python(tmp_path) == expected


def test_import_roots_are_the_local_sandboxs_in_the_same_order(tmp_path):
    from sandbox.envplan import import_roots
    from sandbox.importroots import import_roots as local_roots

    (tmp_path / "lib" / "pkg").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "setup.cfg").write_text("[options]\npackage_dir =\n    =lib\n")
    assert import_roots(tmp_path) == [".", "src", "lib"]
    assert [tmp_path.resolve() / r if r != "." else tmp_path.resolve() for r in import_roots(tmp_path)] \
        == local_roots(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.setuptools.package-dir]\n"" = "../escape"\n')
    assert import_roots(tmp_path) == [".", "src", "lib"]


def test_lock_pins_from_poetry_and_pipfile_locks(tmp_path):
    from sandbox.envplan import lock_pins, pipfile_requirements

    (tmp_path / "poetry.lock").write_text(
        '[[package]]\nname = "six"\nversion = "1.15.0"\n\n[[package]]\nname = "numpy"\nversion = "1.24.4"\n\n'
        '[[package]]\nname = "numpy"\nversion = "2.0.0"\n\n[[package]]\nname = "mine"\nversion = "0.1"\n'
        '[package.source]\ntype = "directory"\nurl = "mine"\n')
    assert lock_pins(tmp_path) == ["six==1.15.0"]  # forked versions are left to the resolver
    (tmp_path / "poetry.lock").unlink()
    (tmp_path / "Pipfile.lock").write_text(
        '{"default": {"six": {"version": "==1.15.0"}}, "develop": {"colorama": {"version": "==0.4.6", '
        '"markers": "sys_platform == \'win32\'"}}}')
    assert lock_pins(tmp_path) == ["colorama==0.4.6", "six==1.15.0"]
    assert pipfile_requirements(tmp_path) == ["six==1.15.0", "colorama==0.4.6; sys_platform == 'win32'"]


@pytest.mark.parametrize(("described", "version"), [
    ("v1.2.3-0-gabc1234", "1.2.3"),
    ("v1.2.3-5-gabc1234", "1.2.4.dev5+gabc1234"),
    ("release-2.0rc1-0-gdeadbee", "2.0rc1"),
    ("abc1234", "0.0.0+gabc1234"),
])
def test_pep440_from_describe(described, version):
    from sandbox.vcs import pep440_from_describe

    assert pep440_from_describe(described) == version


def test_pretend_versions_are_scoped_to_the_project(tmp_path):
    from sandbox.envplan import version_environment

    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools-scm"]\n[project]\nname = "My.Pkg"\ndynamic = ["version"]\n')
    assert version_environment(tmp_path, "1.0") == {"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_MY_PKG": "1.0"}
    # hatch-vcs (attrs, iniconfig, humanize) asks setuptools-scm without a name: only the global one reaches it
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling", "hatch-vcs"]\n[project]\nname = "attrs"\ndynamic = ["version"]\n')
    assert version_environment(tmp_path, "1.0") == {"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_ATTRS": "1.0",
                                                    "SETUPTOOLS_SCM_PRETEND_VERSION": "1.0"}
    (tmp_path / "pyproject.toml").unlink()
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(setup_requires=['pbr'], pbr=True)\n")
    assert version_environment(tmp_path, "1.0") == {"PBR_VERSION": "1.0"}


def test_last_error_prefers_the_failing_builds_own_words():
    from sandbox.envbuild import last_error

    pip = ("Processing /build/src\n  error: subprocess-exited-with-error\n\n  × python setup.py egg_info did "
           "not run successfully.\n  │ exit code: 1\n  ╰─> [2 lines of output]\n      Traceback\n"
           "      RuntimeError: libfoo missing\n      [end of output]\n\n  note: This is an issue\n"
           "error: metadata-generation-failed\n")
    assert last_error(pip) == "RuntimeError: libfoo missing"
    uv = ("  × Failed to build `x @ file:///build/src`\n  ├─▶ The build backend returned an error\n"
          "      [stderr]\n      ValueError: bad version\n\n      hint: This usually indicates a problem\n")
    assert last_error(uv) == "ValueError: bad version"
    assert last_error("Collecting six\nERROR: No matching distribution found for sixx\n") == \
        "ERROR: No matching distribution found for sixx"


def test_changed_roots_cover_every_change_once():
    from sandbox.envbuild import _changed_roots

    diff = [{"Path": "/opt", "Kind": 0}, {"Path": "/opt/venv", "Kind": 1}, {"Path": "/opt/venv/bin", "Kind": 1},
            {"Path": "/var", "Kind": 0}, {"Path": "/var/tmp", "Kind": 0}, {"Path": "/var/tmp/x.conf", "Kind": 1},
            {"Path": "/tmp/cache", "Kind": 1}, {"Path": "/build/src", "Kind": 2}]
    assert _changed_roots(diff) == ["/opt/venv", "/var/tmp/x.conf"]


def test_network_only_when_a_source_is_remote(tmp_path):
    from sandbox.envhost import HostNet

    assert HostNet(options={}).needs_network()  # the default index is PyPI
    local = HostNet(options={"no-index": "1", "find-links": str(tmp_path)})
    assert not local.needs_network()
    assert not HostNet(options={"index-url": f"file://{tmp_path}/simple"}).needs_network()
    assert HostNet(options={"index-url": f"file://{tmp_path}", "extra-index-url": "https://x/simple"}).needs_network()


def _pip_config_list(env: dict[str, str]) -> dict[str, str]:
    """What `pip config list` itself says (the way pip_options used to ask), for comparison."""
    import re
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                         env=env, check=True).stdout
    options: dict[str, str] = {}
    for line in out.splitlines():
        match = re.match(r"^(.+?)='(.*)'$", line.strip())
        if match and match.group(1).rpartition(".")[0] != ":env:":
            key = match.group(1).rpartition(".")[2]
            if key in ("index-url", "extra-index-url", "find-links", "trusted-host", "no-index"):
                options[key] = match.group(2)
    return options


@pytest.mark.parametrize("with_env_file", [False, True])
def test_pip_options_read_the_files_pip_reads(tmp_path, with_env_file):
    """The config files are read directly (no pip subprocess per build); the result is pip's own."""
    import json
    import os
    import subprocess
    import sys

    home, xdg = tmp_path / "home", tmp_path / "xdg"
    (xdg / "pip").mkdir(parents=True)
    (home / ".pip").mkdir(parents=True)
    (home / ".config" / "pip").mkdir(parents=True)
    (xdg / "pip" / "pip.conf").write_text("[global]\nindex-url = https://global.example/simple\n"
                                          "trusted-host = global.example\n")
    (home / ".pip" / "pip.conf").write_text("[global]\nextra-index-url = https://legacy.example/simple\n")
    (home / ".config" / "pip" / "pip.conf").write_text(
        "[global]\nextra_index_url = https://user.example/simple\n[install]\nindex-url = https://install.example/s\n")
    (tmp_path / "env.conf").write_text("[global]\nfind-links = /opt/env-wheels\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "XDG_")) and k not in ("HOME", "PYTHONPATH")}
    env.update(HOME=str(home), XDG_CONFIG_DIRS=str(xdg), PYTHONPATH=os.getcwd())
    if with_env_file:
        env["PIP_CONFIG_FILE"] = str(tmp_path / "env.conf")
    ours = subprocess.run([sys.executable, "-c", "import json; from sandbox.envhost import pip_options; "
                           "print(json.dumps(pip_options()))"], capture_output=True, text=True, env=env, check=True)
    expected = _pip_config_list(env)
    assert json.loads(ours.stdout) == expected
    if with_env_file:  # pip skips the user's files when PIP_CONFIG_FILE names one
        assert expected["index-url"] == "https://global.example/simple" and "extra-index-url" not in expected
        assert expected["find-links"] == "/opt/env-wheels"
    else:
        assert expected["index-url"] == "https://install.example/s"
        assert expected["extra-index-url"] == "https://user.example/simple"


def test_test_groups_leave_out_typing_docs_and_lint(tmp_path):
    """flask's uv default-groups add mypy, pyright, ruff, tox: seconds per build, nothing the tests import."""
    from sandbox.envplan import dependency_groups, test_groups

    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\n[dependency-groups]\ndev = ["ruff", "tox"]\n'
        'tests = ["pytest", {include-group = "extra"}]\nextra = ["asgiref"]\ntyping = ["mypy"]\n'
        '[tool.uv]\ndefault-groups = ["dev", "tests", "typing"]\n')
    assert test_groups(tmp_path) == ["tests"]
    assert dependency_groups(tmp_path) == ["pytest", "asgiref"]
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n'
                                             '[dependency-groups]\ndev = ["pytest"]\ntyping = ["mypy"]\n')
    assert test_groups(tmp_path) == ["dev"] and dependency_groups(tmp_path) == ["pytest"]


def test_the_smoke_check_names_the_exception_and_the_installed_file_pytest_died_in():
    """jmespath 2017 in Docker: pytest 8 under py 1.4.12 (pytest's own frames are not the culprit)."""
    from sandbox.envsmoke import culprit_file, why

    out = ('INTERNALERROR>   File "/opt/venv/lib/python3.9/site-packages/_pytest/main.py", line 9, in x\n'
           'INTERNALERROR>   File "/opt/venv/lib/python3.9/site-packages/py/_path/local.py", line 137, in __new__\n'
           'INTERNALERROR>     raise ValueError("can only pass None")\n'
           'INTERNALERROR> ValueError: can only pass None, Path instances or non-empty strings to LocalPath\n\n'
           '1 error in 0.03s\n')
    assert why(out) == "ValueError: can only pass None, Path instances or non-empty strings to LocalPath"
    assert culprit_file(out) == "/opt/venv/lib/python3.9/site-packages/py/_path/local.py"
    assert culprit_file(out.replace("py/_path/local.py", "_pytest/python.py")) is None


@pytest.mark.parametrize(("name", "python", "other"), [
    ("requirements26.txt", "3.11", True), ("requirements-py27.txt", None, True),
    ("requirements_py2.txt", "3.9", True), ("requirements-3.8.txt", "3.9", True),
    ("requirements-310.txt", "3.9", True), ("requirements-3.9.txt", "3.9", False),
    ("requirements-py3.txt", "3.11", False), ("requirements2.txt", "3.11", False),
    ("dev-requirements.txt", "3.11", False), ("requirements-3.8.txt", None, False)])
def test_requirements_files_for_another_python_are_recognised_by_name(name, python, other):
    from sandbox.envplan import for_another_python

    assert for_another_python(name, python) is other


def test_requirement_files_leave_out_python_2_backports(tmp_path):
    from sandbox.envplan import fully_pinned, requirement_files

    (tmp_path / "requirements.txt").write_text("six==1.10.0\n")
    (tmp_path / "requirements26.txt").write_text("ordereddict\n")
    assert [p.name for p in requirement_files(tmp_path, "3.9")] == ["requirements.txt"]
    assert fully_pinned(tmp_path, "3.9")  # the unpinned 2.6 file does not count


def test_an_old_commit_resolves_as_of_the_sandboxs_python_not_before():
    from sandbox.envplan import resolution_date
    from sandbox.releases import RELEASED

    assert resolution_date("2016-03-10T10:06:48-05:00", "3.11") == RELEASED["3.11"]
    assert resolution_date("2018-07-02T12:15:13-04:00", "3.9") == RELEASED["3.9"]
    assert resolution_date("2024-01-01T00:00:00+00:00", "3.11") == "2024-01-01T00:00:00+00:00"
    assert resolution_date("2024-01-01", "3.13") == RELEASED["3.13"]

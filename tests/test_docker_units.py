"""Pure logic of the Docker sandbox (no engine needed): mirrors, pip config, keys, requirements."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.base_image import alias_tag, apt_mirror, base_tag, recipe_hash
from sandbox.environment import (
    CA_IN_CONTAINER,
    dependency_files,
    environment_key,
    filtered_requirements,
    host_net,
    is_installable,
    local_paths,
    tox_deps,
)


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

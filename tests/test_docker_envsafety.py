"""The environment build against a real engine: unprivileged, and index credentials never kept in the image.

The index credential is real to the build: the extra index is a local HTTP server (on the Docker
bridge's gateway, where the build container can reach it) that records the Authorization header,
so the tests also show that the credential was used, not just dropped.
"""

from __future__ import annotations

import base64
import http.server
import ipaddress
import os
import threading
import uuid

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


class _Index(http.server.BaseHTTPRequestHandler):
    """An index that has no packages (404, as an index without the project answers) and logs auth."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(self.headers.get("Authorization", ""))
        self.send_response(404)
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def secret_index(monkeypatch):
    """PIP_EXTRA_INDEX_URL with a fresh password, served on the bridge gateway; yields the password."""
    from sandbox.engine import ensure_engine

    ipam = ensure_engine().networks.get("bridge").attrs["IPAM"]["Config"][0]
    gateway = ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])
    _Index.seen = []
    server = http.server.ThreadingHTTPServer((gateway, 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    password = f"S3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("PIP_TRUSTED_HOST", gateway)  # plain http: pip ignores it otherwise
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"http://agent:{password}@{gateway}:{server.server_port}/simple/")
    try:
        yield password
    finally:
        server.shutdown()


def _image_text(tag: str) -> bytes:
    """Everything `docker image inspect`, `history` and `export` show of the image."""
    from sandbox.engine import ensure_engine

    client = ensure_engine()
    image = client.images.get(tag)
    parts = [repr(image.attrs).encode(), repr(image.history()).encode()]
    container = client.containers.create(tag, ["true"])
    try:
        parts.extend(container.export())
    finally:
        container.remove(force=True)
    return b"".join(parts)


def _auth_used(password: str) -> bool:
    token = base64.b64encode(f"agent:{password}".encode()).decode()
    return any(token in header for header in _Index.seen)


def test_build_is_unprivileged_and_a_written_pip_conf_is_scrubbed(base, secret_index, tmp_path):
    from sandbox.engine import ensure_engine
    from sandbox.environment import ensure_environment

    repo = tmp_path / "plain"
    repo.mkdir()
    (repo / "marker.txt").write_text(uuid.uuid4().hex)  # a unique key
    setup = [
        # what a careless setup command does: persist the index settings into the venv's pip config
        'pip config --site set global.extra-index-url "$PIP_EXTRA_INDEX_URL"',
        "pip install -q six",  # goes through the extra index, with the credential
        "(id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status) > /opt/venv/buildinfo",
    ]
    logs: list[str] = []
    tag = ensure_environment(repo, "3.11", setup, log=logs.append)
    try:
        assert _auth_used(secret_index), f"the build never used the index credential: {_Index.seen}"
        info = ensure_engine().containers.run(tag, ["cat", "/opt/venv/buildinfo"], remove=True).decode().split()
        assert info[0] == "10001", info  # not root
        assert info[info.index("CapEff:") + 1] == "0000000000000000" and info[-1] == "1", info
        assert any("removed /opt/venv/pip.conf" in line for line in logs), logs
        leaked = secret_index.encode() in _image_text(tag)  # inspect, history and every file
        assert not leaked, "the index credential is in the image"
        config = ensure_engine().images.get(tag).attrs["Config"]
        assert not any("PIP_" in e or "INDEX" in e for e in config["Env"]), config["Env"]
    finally:
        ensure_engine().images.remove(tag, force=True)


def test_setup_code_that_writes_the_credential_into_the_image_fails_the_build(base, secret_index, tmp_path):
    from sandbox.base import SandboxError
    from sandbox.engine import ensure_engine
    from sandbox.environment import ensure_environment, environment_status

    repo = tmp_path / "hostile"
    repo.mkdir()
    (repo / "setup.py").write_text(
        "import os\nfrom setuptools import setup\n"
        "open('/opt/venv/leak.txt', 'w').write(os.environ.get('PIP_EXTRA_INDEX_URL', ''))\n"
        f"setup(name='hostile', version='1.0', py_modules=[])  # {uuid.uuid4()}\n")
    with pytest.raises(SandboxError) as caught:
        ensure_environment(repo, "3.11", [], log=lambda _m: None)
    message = str(caught.value)
    assert "\n" not in message and "index credential into /opt/venv/leak.txt" in message, message
    assert secret_index not in message
    assert environment_status(repo, "3.11", [])[0] is False  # no image was kept
    leftovers = ensure_engine().containers.list(all=True, filters={"name": "agent-envbuild-"})
    assert not [c for c in leftovers if c.name.endswith(f"-{os.getpid()}")]


def test_the_hosts_uv_reaches_the_build_read_only(base, tmp_path):
    """uv is mounted into the build, not copied: the repository's build code, running next to it, must not be
    able to replace the host's binary (every later build, and the user's own uv, would run its code)."""
    import hashlib

    from sandbox.envinstall import UV
    from sandbox.environment import _uv_binary, ensure_environment

    uv = _uv_binary()
    if not uv:
        pytest.skip("no uv on this host")
    before = hashlib.sha256(open(uv, "rb").read()).hexdigest()
    repo = tmp_path / "hostile"
    repo.mkdir()
    (repo / "marker.txt").write_text(f"{uuid.uuid4()}\n")
    attack = (f"(printf '#!/bin/sh\\necho pwned\\n' > {UV}) 2>/dev/null || true; (chmod 777 {UV}) 2>/dev/null || true; "
              f"grep -q ' {UV} .* ro[ ,]' /proc/mounts")  # the build fails unless the mount is read-only
    tag = ensure_environment(repo, "3.11", [attack], log=lambda _m: None)
    try:
        assert hashlib.sha256(open(uv, "rb").read()).hexdigest() == before
    finally:
        from sandbox.engine import ensure_engine

        ensure_engine().images.remove(tag, force=True)

"""Per-repository environment images: a venv with pytest and the repo's declared dependencies.

Built once in a container that may reach the package index (the only step with a network),
committed as `agent-env:<key>`, where the key hashes the dependency files, the setup commands
and the base image. The repository itself is never baked in: it is mounted read-only during the
build and a `.pth` file puts the mounted worktree (`/repo`, `/repo/src`) on `sys.path` at run time,
which is what an editable install would give a pure-Python project.

How dependencies are installed without baking in the repo: the project is copied inside the build
container and `pip install`ed non-editable (with the usual test extras), so pip resolves exactly
what its metadata declares (pyproject, setup.cfg and setup.py alike, dynamic metadata included);
then the project's own code is deleted, keeping only its `.dist-info` (so `importlib.metadata`
and entry points work) while the code comes from the mounted worktree. PEP 735 test groups,
requirements files (minus lines that install the repo itself) and tox deps are added.
Compiled extensions of the repo itself are not built into the worktree: use `setup` commands.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import os
import re
import shlex
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from docker.errors import ImageNotFound, NotFound
from docker.types import Mount

from sandbox.base import SandboxError
from sandbox.base_image import VENV, base_image_status, build_base
from sandbox.engine import ensure_engine, owner_labels

REPOSITORY = "agent-env"
ENV_RECIPE_VERSION = 3
DEP_GLOBS = ("pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "*requirements*.txt", "requirements/*.txt")
TEST_EXTRAS = "test,tests,testing"
TEST_GROUPS = ("test", "tests", "testing")
# In a requirements/ folder only these are what tests need (not docs, packaging or type checks).
_WANTED_IN_DIR = re.compile(r"test|base|common|main|prod|install|^requirements\.txt$")
CA_IN_CONTAINER = "/run/agent-ca/ca-certificates.crt"
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                  "/etc/ssl/cert.pem")
PIP_KEYS = ("index-url", "extra-index-url", "find-links", "trusted-host", "no-index")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
SRC = "/build/src"

Log = Callable[[str], None]


# --- what the build container needs to reach the index the way this host does ---------------

@dataclass
class HostNet:
    environment: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, str] = field(default_factory=dict)  # host path -> container path (read-only)


def ca_bundle() -> str | None:
    for var in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"):
        path = os.environ.get(var)
        if path and os.path.isfile(path):
            return path
    return next((p for p in SYSTEM_BUNDLES if os.path.isfile(p)), None)


def pip_options() -> dict[str, str]:
    """Effective pip source options: config files (`pip config list`), overridden by PIP_* variables."""
    options: dict[str, str] = {}
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        match = re.match(r"^(.+?)='(.*)'$", line.strip())
        if match:
            scope, _, key = match.group(1).rpartition(".")
            if key in PIP_KEYS and scope != ":env:":
                options[key] = match.group(2)
    for key in PIP_KEYS:
        value = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if value:
            options[key] = value
    return options


def local_paths(value: str) -> list[str]:
    """Existing local directories that a pip option names (file:// URLs or absolute paths)."""
    paths = []
    for item in value.split():
        path = unquote(urlparse(item).path) if item.startswith("file:") else item
        if path.startswith("/") and os.path.exists(path):
            root = Path(path)
            # A file index's pages usually link to ../../files: mount the index root's parent.
            paths.append(str(root.parent if root.name == "simple" else root))
    return paths


def host_net() -> HostNet:
    """The host's CA bundle and pip sources, found now (the CA may change between boots: never baked)."""
    net = HostNet()
    bundle = ca_bundle()
    if bundle:
        net.mounts[os.path.realpath(bundle)] = CA_IN_CONTAINER
        for var in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO", "CURL_CA_BUNDLE"):
            net.environment[var] = CA_IN_CONTAINER
    for key, value in pip_options().items():
        net.environment["PIP_" + key.upper().replace("-", "_")] = value
        if key in ("index-url", "extra-index-url", "find-links"):
            for path in local_paths(value):
                net.mounts.setdefault(path, path)
    net.environment.update({v: os.environ[v] for v in PROXY_VARS if os.environ.get(v)})
    return net


# --- what to install ---------------------------------------------------------------------------

def dependency_files(repo: Path) -> list[Path]:
    found = {p for pattern in DEP_GLOBS for p in repo.glob(pattern) if p.is_file()}
    return sorted(found)


def environment_key(repo: Path, setup: list[str], base: str) -> str:
    digest = hashlib.sha256(f"v{ENV_RECIPE_VERSION}\0{base}\0".encode())
    for cmd in setup:
        digest.update(b"setup\0" + cmd.encode() + b"\0")
    for path in dependency_files(repo):
        digest.update(path.relative_to(repo).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def filtered_requirements(text: str) -> str:
    """A requirements file without lines that install the repo itself (`.`, `-e .`, local paths)."""
    keep = []
    for line in text.splitlines():
        bare = line.split(" #", 1)[0].strip()
        target = bare[2:].strip() if bare.startswith("-e") else bare
        if bare.startswith(("-e", "--editable")) or target.startswith((".", "/", "file:")):
            continue
        keep.append(line)
    return "\n".join(keep) + "\n"


def tox_deps(repo: Path) -> list[str]:
    """Plain requirement strings from tox.ini's [testenv] deps (factors and -r lines skipped)."""
    path = repo / "tox.ini"
    if not path.is_file():
        return []
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(errors="replace"))
    except configparser.Error:
        return []
    raw = parser.get("testenv", "deps", fallback="")
    deps = [d.strip() for d in raw.splitlines()]
    return [d for d in deps if d and not d.startswith(("-", ".", "/", "#")) and not re.search(r"[{}:]\s", d + " ")]


def requirement_files(repo: Path) -> list[Path]:
    """The requirements files to install: root ones except docs, and test/base ones in requirements/."""
    wanted = []
    for path in dependency_files(repo):
        if path.suffix != ".txt":
            continue
        at_root = path.parent == repo
        if (at_root and "doc" not in path.name) or (not at_root and _WANTED_IN_DIR.search(path.name)):
            wanted.append(path)
    return wanted


def dependency_groups(repo: Path) -> list[str]:
    """Requirements of the PEP 735 test groups in pyproject.toml, `include-group`s resolved."""
    try:
        groups = tomllib.loads((repo / "pyproject.toml").read_text()).get("dependency-groups", {})
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return []

    def expand(name: str, seen: frozenset[str]) -> list[str]:
        out: list[str] = []
        for item in groups.get(name, []):
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and item.get("include-group") not in seen | {None}:
                out += expand(item["include-group"], seen | {name})
        return out

    reqs = [r for name in TEST_GROUPS if name in groups for r in expand(name, frozenset())]
    return list(dict.fromkeys(reqs))


def is_installable(repo: Path) -> bool:
    """Does the repo declare a project (so installing it resolves its dependencies)?"""
    if (repo / "setup.py").is_file():
        return True
    pyproject = repo / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return False
        if "project" in data or "build-system" in data:
            return True
    return False  # a setup.cfg alone is not buildable by pip


# --- the build ---------------------------------------------------------------------------------

def environment_status(repo: Path, python: str = "3.11", setup: list[str] | None = None) -> tuple[bool, str]:
    """(exists, tag) of the environment image the repo needs now."""
    base_ok, base = base_image_status(python)
    tag = f"{REPOSITORY}:{environment_key(Path(repo), setup or [], base)}"
    if not base_ok:
        return False, tag
    try:
        ensure_engine().images.get(tag)
    except ImageNotFound:
        return False, tag
    return True, tag


def ensure_environment(repo: Path, python: str = "3.11", setup: list[str] | None = None,
                       log: Log = print) -> str:
    """Tag of the repo's environment image, built (network allowed) only when its key is new."""
    repo = Path(repo).resolve()
    setup = list(setup or [])
    base = build_base(python, log=log)  # a no-op when present; builds (root, ~1 min) when missing
    tag = f"{REPOSITORY}:{environment_key(repo, setup, base)}"
    client = ensure_engine()
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    started = time.monotonic()
    log(f"building environment {tag} from {base}")
    net = host_net()
    # `mounts`, not `volumes`: the SDK records volume targets in the container config, and a commit
    # would turn them into VOLUME declarations of the image.
    mounts = [Mount(inner, host, type="bind", read_only=True) for host, inner in net.mounts.items()]
    mounts.append(Mount("/repo", str(repo), type="bind", read_only=True))
    name = f"agent-envbuild-{tag.split(':')[1]}-{os.getpid()}"
    container = client.containers.run(base, ["sleep", "infinity"], detach=True, init=True, name=name,
                                      network_mode="bridge", mounts=mounts, labels=owner_labels())
    try:
        env = {**net.environment, "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV": VENV,
               "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": "/root"}

        def step(what: str, script: str, *, required: bool = True) -> bool:
            code, out = container.exec_run(["sh", "-ec", script], environment=env, workdir="/")
            text = out.decode(errors="replace") if out else ""
            if code == 0:
                return True
            tail = "\n".join(text.splitlines()[-15:])
            if required:
                raise SandboxError(f"environment build failed at '{what}' (exit {code}):\n{tail}")
            log(f"warning: '{what}' failed (exit {code}); continuing without it:\n{tail}")
            return False

        step("create venv", f"python3 -m venv {VENV} && pip install -q pytest")
        step("copy repository",
             f"mkdir -p {SRC} && tar -C /repo --exclude=./.git -cf - . | tar -C {SRC} -xf -")
        if setup:
            for cmd in setup:
                log(f"setup: {cmd}")
                step(cmd, f"cd {SRC} && {cmd}")
        else:
            _install_declared(repo, container, step, log)
        step("link worktree", _PTH_SCRIPT)
        step("clean up", "rm -rf /build /root/.cache /tmp/* /tmp/.[!.]*")
        labels = {"agent.env.key": tag.split(":")[1], "agent.env.base": base, "agent.env.repo": str(repo)}
        container.commit(repository=REPOSITORY, tag=tag.split(":")[1], changes=[
            f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"ENV VIRTUAL_ENV={VENV}", 'CMD ["/bin/bash"]',
            *(f'LABEL {k}="{v}"' for k, v in labels.items()),
            # a commit keeps the build container's labels: blank the owner ones so that containers
            # of this image are not mistaken for sandboxes (gc matches agent.sandbox=1)
            *(f'LABEL {k}=""' for k in owner_labels())])
    finally:
        try:
            container.remove(force=True)
        except NotFound:
            pass
    log(f"environment {tag} built in {time.monotonic() - started:.1f} s")
    return tag


_PTH_SCRIPT = (
    "site=$(python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') && "
    f"printf '/repo\\n' > $site/agent_worktree.pth && if [ -d {SRC}/src ]; then printf '/repo/src\\n' "
    ">> $site/agent_worktree.pth; fi"
)


def _install_declared(repo: Path, container, step, log: Log) -> None:
    """requirements files, the project's metadata (installed then removed), test groups, tox deps."""
    reqs = requirement_files(repo)
    if reqs:
        container.put_archive(SRC, _tar({p.relative_to(repo).as_posix(): filtered_requirements(p.read_text(
            errors="replace")) for p in reqs}))
        for req in reqs:
            rel = req.relative_to(repo).as_posix()
            log(f"installing {rel}")
            step(f"pip install -r {rel}", f"cd {SRC}/{os.path.dirname(rel) or '.'} && "
                                          f"pip install -q -r {os.path.basename(rel)}")
    if is_installable(repo):
        log("installing the project's declared dependencies")
        if step("pip install project", f"cd {SRC} && pip install -q '.[{TEST_EXTRAS}]'", required=False):
            step("remove the project's own code", _STRIP_SELF)
    for what, deps in (("dependency groups", dependency_groups(repo)), ("tox deps", tox_deps(repo))):
        if deps:
            log(f"installing {what}: {' '.join(deps)}")
            quoted = " ".join(shlex.quote(d) for d in deps)
            step(f"pip install {what}", f"pip install -q {quoted}", required=False)


# Find the distribution pip installed from the copied source (its direct_url.json names it) and
# delete its code, keeping its .dist-info (version, entry points) and console scripts: with the
# .pth pointing at the mounted worktree this is what an editable install gives.
_STRIP_SELF = (
    "python - <<'PY'\n"
    "import json, os\n"
    "from importlib import metadata\n"
    "for dist in metadata.distributions():\n"
    "    raw = dist.read_text('direct_url.json')\n"
    f"    if not raw or json.loads(raw).get('url', '').rstrip('/') != 'file://{SRC}':\n"
    "        continue\n"
    "    dirs = set()\n"
    "    for rel in dist.files or []:\n"
    "        if rel.parts[0].endswith('.dist-info') or rel.parts[0] == '..':\n"
    "            continue\n"
    "        path = str(dist.locate_file(rel))\n"
    "        if os.path.isfile(path):\n"
    "            os.remove(path)\n"
    "            dirs.add(os.path.dirname(path))\n"
    "    for d in sorted(dirs, key=len, reverse=True):\n"
    "        for sub in (os.path.join(d, '__pycache__'), d):\n"
    "            try:\n"
    "                os.rmdir(sub)\n"
    "            except OSError:\n"
    "                pass\n"
    "    print(dist.metadata['Name'])\n"
    "PY"
)


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def prune_environments(keep: set[str] | None = None) -> list[str]:
    """Remove environment images not in `keep` (tags); returns what was removed."""
    client = ensure_engine()
    removed = []
    for image in client.images.list(name=REPOSITORY):
        for tag in image.tags:
            if keep is None or tag not in keep:
                client.images.remove(tag)
                removed.append(tag)
    return removed


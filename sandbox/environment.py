"""Per-repository environment images: a venv with pytest and the repo's declared dependencies.

Built once in a hardened container (see envbuild) that may reach the package index, committed
as `agent-env:<key>`, where the key hashes the dependency files, the setup commands and the
base image. The repository itself is never baked in: its code is imported from the mounted
worktree at run time (PYTHONPATH, set by the Docker sandbox).

What is installed (see envplan): the lock file's versions first (uv.lock exported; poetry, pdm
and Pipfile locks as constraints), pinned requirement and constraint files, else a resolution
as of the HEAD commit's date; then the project itself with its test extras (so pip or uv
resolves exactly what its metadata declares, dynamic metadata included), whose own code is then
deleted, keeping its `.dist-info` (versions, entry points). uv does it in one resolution when
it can; pip, step by step, when it cannot. Versions from VCS come from the caller (`version`),
never from the repository's `.git`, which the build does not get.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from docker.errors import ImageNotFound
from docker.types import Mount

from sandbox.base_image import VENV, base_image_status, build_base
from sandbox.engine import ensure_engine, owner_labels
from sandbox.envbuild import BuildBox, tar_files, tar_tree
from sandbox.envhost import HostNet, host_net
from sandbox.envinstall import BUILD, DIST, PLAN, SRC, UV, install_declared, upgrade
from sandbox.envplan import (
    choose_python,
    constraint_files,
    dependency_files,
    fully_pinned,
    lock_kind,
    resolution_date,
    version_environment,
)
from sandbox.envsmoke import make_pytest_start

REPOSITORY = "agent-env"
ENV_RECIPE_VERSION = 9
AUTO = ("", "auto")

Log = Callable[[str], None]


def environment_key(repo: Path, setup: list[str], base: str, version: str | None = None,
                    date: str | None = None, python: str | None = None, pins: list[str] | None = None) -> str:
    """A hash of what decides the image's content: the dependency files, the setup commands, the base,
    and, where they reach the build, the VCS version (baked into the project's metadata), the commit
    date (the resolver's cut-off when nothing pins the versions) and a local environment's versions."""
    digest = hashlib.sha256(f"v{ENV_RECIPE_VERSION}\0{base}\0".encode())
    for part, value in build_inputs(repo, setup, version, date, python, pins).items():
        digest.update(f"{part}\0{value}\0".encode())
    for cmd in setup:
        digest.update(b"setup\0" + cmd.encode() + b"\0")
    for path in dependency_files(repo):
        digest.update(path.relative_to(repo).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_inputs(repo: Path, setup: list[str], version: str | None, date: str | None,
                 python: str | None = None, pins: list[str] | None = None) -> dict[str, str]:
    """The version, date and local pins a build would use, only where they change what it installs."""
    out: dict[str, str] = {}
    if version and version_environment(repo, version):
        out["version"] = version
    if pins and not setup:
        out["local"] = "\n".join(pins)
    elif cutoff := resolution_cutoff(repo, setup, date, python, pins):
        out["date"] = cutoff
    return out


def resolution_cutoff(repo: Path, setup: list[str], date: str | None, python: str | None,
                      pins: list[str] | None) -> str | None:
    """The resolver's cut-off (uv's exclude-newer), or None where something else decides the versions:
    setup commands, a local environment's pins, a lock file or fully pinned requirements."""
    if not date or setup or pins or lock_kind(repo) is not None or fully_pinned(repo, python):
        return None
    return resolution_date(date, python) if python else date


def resolve_python(repo: Path, python: str | None) -> str:
    """`[sandbox] python` when set; else the one the project asks for (requires-python, classifiers...)."""
    return choose_python(Path(repo)) if (python or "").strip().lower() in AUTO else str(python)


def environment_status(repo: Path, python: str | None = "auto", setup: list[str] | None = None, *,
                       version: str | None = None, date: str | None = None,
                       pins: list[str] | None = None) -> tuple[bool, str]:
    """(exists, tag) of the environment image the repo needs now (`version`, `date` as for ensure_environment)."""
    python = resolve_python(repo, python)
    base_ok, base = base_image_status(python)
    tag = f"{REPOSITORY}:{environment_key(Path(repo), setup or [], base, version, date, python, pins)}"
    if not base_ok:
        return False, tag
    try:
        ensure_engine().images.get(tag)
    except ImageNotFound:
        return False, tag
    return True, tag


def ensure_environment(repo: Path, python: str | None = "auto", setup: list[str] | None = None,
                       log: Log = print, *, version: str | None = None, date: str | None = None,
                       pins: list[str] | None = None) -> str:
    """Tag of the repo's environment image, built only when its key is new.

    `version` is the project's version at HEAD (from the host's git: the build has no `.git`);
    `date` is HEAD's commit date, the resolver's cut-off when nothing pins the versions; `pins`, the
    `name==version` lines of the user's local environment to build this one like (sandbox.localpins).
    """
    repo = Path(repo).resolve()
    setup = list(setup or [])
    python = resolve_python(repo, python)
    base = build_base(python, log=log)  # a no-op when present; builds (root, ~1 min) when missing
    key = environment_key(repo, setup, base, version, date, python, pins)
    tag = f"{REPOSITORY}:{key}"
    client = ensure_engine()
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    started = time.monotonic()
    net = host_net()
    version = version or "0.0.0"  # the caller reads it from host git (agent.gitops.describe_version)
    log(f"building environment {tag} from {base} (Python {python}, network "
        f"{'on while installing' if net.needs_network() else 'off: local package sources'})")
    # `mounts`, not `volumes`: the SDK records volume targets in the container config, and a commit
    # would turn them into VOLUME declarations of the image.
    mounts = [Mount(inner, host, type="bind", read_only=True) for host, inner in net.mounts.items()]
    mounts.append(Mount(BUILD, None, type="volume"))  # disk-backed scratch: sources, caches
    uv = _uv_binary()
    if uv:  # the host's 38 MB binary, read-only (the build's code runs next to it): no copy per build
        mounts.append(Mount(UV, os.path.realpath(uv), type="bind", read_only=True))
    box = BuildBox(client, base, f"agent-envbuild-{key}-{os.getpid()}", network=net.needs_network(),
                   mounts=mounts, labels=owner_labels(), log=log)
    committed = False
    try:
        env = _build_env(repo, net, version)
        box.put("/", tar_files({"repo": None, "opt/venv": None, BUILD[1:]: None, f"{PLAN[1:]}": None,
                                f"{BUILD[1:]}/cache": None, f"{BUILD[1:]}/bin": None},
                               owners={"repo": 0}))  # /repo: root's, the worktree's mountpoint at run time
        box.put(BUILD, tar_tree(repo, "src"))
        # uv makes the venv in a fraction of `python3 -m venv`'s time (ensurepip is the slow part)
        venv = f"python3 -m venv {VENV}"
        if uv:  # the declared install adds the seed packages to its own resolution (one download round)
            seed = "--seed " if setup else ""
            venv = f"{UV} venv -q {seed}--allow-existing --python /usr/bin/python3 {VENV} || {venv}"
        if setup or not uv:
            box.must("create the virtualenv", venv, env)
        installer = (_run_setup(box, setup, env, uv) if setup
                     else install_declared(repo, box, env, uv, resolution_cutoff(repo, setup, date, python, pins),
                                           python, log, seed=_seed_packages(python), venv="" if not uv else venv,
                                           pins=pins))
        finish = f"{_STRIP_SELF}\n{_PTH_SCRIPT}\nfind /var/tmp -mindepth 1 -delete 2>/dev/null || true"
        if not setup and (lock_kind(repo) or fully_pinned(repo, python) or constraint_files(repo)):
            # pins are what the developers had, who did not always run pytest: it must start here
            upgraded = make_pytest_start(box, env, lambda dist: upgrade(dist, uv), log, then=finish)
            installer += "".join(f", upgraded {d}" for d in upgraded)
        else:
            box.must("keep only the project's metadata, link the worktree", finish, env)
        box.offline()
        box.scan(net.secrets(), env)
        labels = {"agent.env.key": key, "agent.env.base": base, "agent.env.repo": str(repo),
                  "agent.env.python": python, "agent.env.installer": installer,
                  "agent.env.lock": lock_kind(repo) or "", "agent.env.version": version}
        box.commit(REPOSITORY, key, [
            f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"ENV VIRTUAL_ENV={VENV}", 'CMD ["/bin/bash"]',
            *(f'LABEL {k}="{v}"' for k, v in labels.items()),
            # a commit keeps the build container's labels: blank the owner ones so that containers
            # of this image are not mistaken for sandboxes (gc matches agent.sandbox=1)
            *(f'LABEL {k}=""' for k in owner_labels())], net.secrets())
        committed = True
    finally:
        if committed:
            box.remove_later()
        else:
            box.remove()  # a failed build leaves nothing behind when this returns
    log(f"environment {tag} built in {time.monotonic() - started:.1f} s ({installer})")
    return tag


def _build_env(repo: Path, net: HostNet, version: str) -> dict[str, str]:
    """Each step's environment: index settings (pip's and uv's), pretend versions, caches off the image."""
    return {**net.environment, **net.uv_environment(), **version_environment(repo, version),
            "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV": VENV, "HOME": "/tmp",
            "USER": "build", "PIP_CACHE_DIR": f"{BUILD}/cache/pip", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1", "PIP_PROGRESS_BAR": "off", "UV_CACHE_DIR": f"{BUILD}/cache/uv",
            "UV_LINK_MODE": "copy", "UV_PYTHON_DOWNLOADS": "never", "GIT_CEILING_DIRECTORIES": BUILD,
            "PYTHONDONTWRITEBYTECODE": "1"}


def _uv_binary() -> str | None:
    """The host's uv executable (the PyPI wheel carries a static binary), if any."""
    if os.environ.get("AGENT_NO_UV"):
        return None
    try:
        import uv  # type: ignore[import-not-found]

        path = uv.find_uv_bin()
    except (ImportError, FileNotFoundError, AttributeError):
        return None
    with open(path, "rb") as handle:
        return path if handle.read(4) == b"\x7fELF" else None


def _run_setup(box: BuildBox, setup: list[str], env: dict[str, str], uv: str | None) -> str:
    pytest = f"{UV} pip install --python {VENV}/bin/python pytest" if uv else "pip install pytest"
    box.must("install pytest", pytest, env)
    for cmd in setup:
        box.must(f"setup '{cmd}'", f"cd {SRC} && {cmd}", env)
    return "setup"


def _seed_packages(python: str) -> list[str]:
    """What `uv venv --seed` (and `python -m venv`) put in a venv: pip; setuptools and wheel before 3.12."""
    minor = int(python.split(".")[1]) if python.count(".") >= 1 and python.split(".")[1].isdigit() else 12
    return ["pip"] + (["setuptools", "wheel"] if minor < 12 else [])


_PTH_SCRIPT = (
    "site=$(python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') && "
    f"printf '/repo\\n' > $site/agent_worktree.pth && if [ -d {SRC}/src ]; then printf '/repo/src\\n' "
    ">> $site/agent_worktree.pth; fi"
)


# Find the distribution installed from the copied source or its wheel (direct_url.json names it) and
# delete its code, keeping its .dist-info (version, entry points) and console scripts: with the
# .pth pointing at the mounted worktree this is what an editable install gives.
_STRIP_SELF = (
    "python - <<'PY'\n"
    "import json, os\n"
    "from importlib import metadata\n"
    "for dist in metadata.distributions():\n"
    "    url = json.loads(dist.read_text('direct_url.json') or '{}').get('url', '').rstrip('/')\n"
    f"    if url != 'file://{SRC}' and not url.startswith('file://{DIST}/'):\n"
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


"""Build the base image from Debian packages (debootstrap + import): no image registry needed.

Air-gapped and proxied hosts cannot pull images but can usually reach a Debian mirror, so the
base is made from packages. The tag carries a hash of the recipe, so a changed recipe builds a
new image and an unchanged one is never rebuilt.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from docker.errors import ImageNotFound

from sandbox.base import SandboxError
from sandbox.engine import ensure_engine
from sandbox.releases import RELEASES

REPOSITORY = "agent-base"
PACKAGES = ("python3", "python3-venv", "python3-pip", "git", "ca-certificates")
TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale",
        "usr/share/info", "var/log")
VENV = "/opt/venv"
IMAGE_CHANGES = (
    "ENV LANG=C.UTF-8",
    f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["/bin/bash"]',
)
# Bump when the build steps change in a way the data above does not show.
RECIPE_VERSION = 1
# Suites that name a Debian release archive (not -security/-updates, not third-party repos).
_DEBIAN_SUITES = {"buster", "bullseye", "bookworm", "trixie", "forky", "sid",
                  "oldoldstable", "oldstable", "stable", "testing", "unstable"}

_PROGRESS = re.compile(r"^(E:|W:|I: (Retrieving (InRelease|Packages)|Resolving|Installing core|"
                       r"Unpacking the base|Configuring the base|Base system installed))")

Log = Callable[[str], None]


def release_for(python: str) -> str:
    try:
        return RELEASES[python]
    except KeyError:
        raise SandboxError(f"no base image recipe for Python {python}; choose one of {', '.join(RELEASES)}")\
            from None


def recipe_hash(python: str) -> str:
    """Hash of everything that decides the image's content (the mirror does not: same packages)."""
    recipe = {"release": release_for(python), "variant": "minbase", "packages": PACKAGES, "trim": TRIM,
              "changes": IMAGE_CHANGES, "version": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def base_tag(python: str) -> str:
    return f"{REPOSITORY}:{release_for(python)}-{recipe_hash(python)}"


def alias_tag(python: str) -> str:
    return f"{REPOSITORY}:py{python}"


def base_image_status(python: str = "3.11") -> tuple[bool, str]:
    """(exists, tag) of the base image for `python`; raises SandboxError when there is no engine."""
    tag = base_tag(python)
    try:
        ensure_engine().images.get(tag)
    except ImageNotFound:
        return False, tag
    return True, tag


def apt_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this host's apt uses, read now (deb822 `URIs:` or classic `deb` lines)."""
    override = os.environ.get("AGENT_DEBIAN_MIRROR")
    if override:
        return override
    for uri, suites in _apt_entries(etc_apt):
        if any(s in _DEBIAN_SUITES for s in suites) and not uri.rstrip("/").endswith("-security"):
            return uri
    raise SandboxError(f"no Debian mirror found in {etc_apt}/sources.list{{,.d}}; "
                       "fix: set AGENT_DEBIAN_MIRROR=<http mirror URL of Debian>")


def _apt_entries(etc_apt: Path) -> list[tuple[str, list[str]]]:
    entries: list[tuple[str, list[str]]] = []
    for path in sorted(glob.glob(f"{etc_apt}/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", Path(path).read_text(errors="replace")):
            fields = _deb822(stanza)
            if "deb" not in fields.get("types", "deb").split() or fields.get("enabled", "yes") == "no":
                continue
            for uri in fields.get("uris", "").split():
                entries.append((uri, fields.get("suites", "").split()))
    for path in [f"{etc_apt}/sources.list", *sorted(glob.glob(f"{etc_apt}/sources.list.d/*.list"))]:
        if not os.path.exists(path):
            continue
        for line in Path(path).read_text(errors="replace").splitlines():
            line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(line) >= 3 and line[0] == "deb":
                entries.append((line[1], [line[2]]))
    return entries


def _deb822(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0].isspace() and key:
            fields[key] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        fields[key] = value.strip()
    return fields


def build_base(python: str = "3.11", log: Log = print) -> str:
    """Build (once) and return the tag of the base image for `python`."""
    exists, tag = base_image_status(python)
    client = ensure_engine()
    if exists:
        client.images.get(tag).tag(REPOSITORY, f"py{python}")
        log(f"base image {tag} present")
        return tag
    if shutil.which("debootstrap") is None:
        raise SandboxError("debootstrap not found; fix: `sudo apt-get install -y debootstrap`")
    if os.geteuid() != 0:
        raise SandboxError("debootstrap needs root; fix: run `sudo agent sandbox build-base`")
    release, mirror = release_for(python), apt_mirror()
    work = Path(tempfile.mkdtemp(prefix="agent-base-", dir=os.environ.get("AGENT_BUILD_DIR", "/var/tmp")))
    try:
        rootfs = work / "rootfs"
        log(f"debootstrap {release} from {mirror} (about a minute)")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", release,
              str(rootfs), mirror], log)
        for rel in TRIM:
            target = rootfs / rel
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        tarball = work / "rootfs.tar"
        _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], log)
        log(f"importing as {tag}")
        repo_name, _, version = tag.partition(":")
        client.api.import_image_from_file(str(tarball), repository=repo_name, tag=version,
                                          changes=list(IMAGE_CHANGES))
        client.images.get(tag).tag(REPOSITORY, f"py{python}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"built {tag}")
    return tag


def _run(argv: list[str], log: Log) -> None:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        if _PROGRESS.match(line):
            log(line.rstrip())
    if proc.wait() != 0:
        raise SandboxError(f"{argv[0]} failed (exit {proc.returncode}):\n" + "\n".join(tail))

"""Isolation for the local sandbox: each command under bubblewrap, the worktree its only writable place.

What a command sees (the mechanism Claude Code's and Codex's Linux sandboxes use):
- its own pid, network (loopback only), ipc and uts namespaces and a fresh /proc, so the agent's
  process and its /proc/<pid>/environ (the model key) are not there; no capabilities, so root
  inside cannot unmount what hides a file (measured: without `--cap-drop ALL` it can);
- `/` read-only (the user's interpreter and packages), a private tmpfs on /tmp, the worktree
  read-write (read-only for a review), and the worktree's `.git` pointer read-only, so code
  cannot point host git at a directory it wrote;
- the repository's git config replaced by a copy with only the format keys (an Actions checkout
  keeps its token in `http.<url>.extraheader` there), and empty tmpfs over the agent's home (other
  runs), its config dir and the usual credential files in $HOME.
Where bwrap cannot start (not installed, no user namespaces), the caller runs unisolated and says so.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NAMESPACES = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
BASE = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
# Credential stores under $HOME that no test needs; hidden when they exist.
HOME_SECRETS = (".git-credentials", ".netrc", ".pypirc", ".ssh", ".gnupg", ".aws", ".docker", ".kube",
                ".config/gh", ".config/hub")
GIT_KEEP = r"^(core\.repositoryformatversion|extensions\..*)$"  # what git needs to read the repository


@functools.lru_cache(maxsize=8)
def _probe(exe: str) -> str | None:
    """None when bwrap runs a command with the flags we use, else why not (one line)."""
    try:
        done = subprocess.run([exe, *NAMESPACES, *BASE, "true"], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap does not start: {exc}"
    if done.returncode != 0:
        line = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[0]
        return f"bubblewrap cannot create its namespaces: {line}"
    return None


def find_bwrap(path: str | None = None) -> tuple[str | None, str]:
    """(bwrap's path, "bubblewrap") when it works here, else (None, "none (why)"); probed once per binary."""
    exe = shutil.which("bwrap", path=path if path is not None else os.environ.get("PATH"))
    if exe is None:
        return None, "none (bubblewrap is not installed: apt-get install bubblewrap)"
    reason = _probe(exe)
    return (exe, "bubblewrap") if reason is None else (None, f"none ({reason})")


def git_dirs(worktree: Path) -> tuple[Path | None, Path | None]:
    """(the worktree's own git dir, the common git dir) from its `.git` file or directory."""
    dot = worktree / ".git"
    if dot.is_dir():
        return dot, dot
    try:
        text = dot.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None, None
    if not text.startswith("gitdir:"):
        return None, None
    gitdir = (worktree / text.removeprefix("gitdir:").strip()).resolve()
    try:
        common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    except (OSError, UnicodeDecodeError):
        common = gitdir
    return gitdir, common


def sanitized_git_config(source: Path, dest: Path) -> None:
    """Write to `dest` only the keys git needs to read the repository (format version, extensions)."""
    dest.write_text("", encoding="utf-8")
    git = shutil.which("git")
    if git is None:
        return
    env = {"PATH": os.environ.get("PATH", ""), "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(dest.parent)}
    done = subprocess.run([git, "config", "--file", str(source), "--get-regexp", GIT_KEEP],
                          capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        subprocess.run([git, "config", "--file", str(dest), key, value], capture_output=True, env=env)


@dataclass
class Plan:
    """The mounts of one sandbox; `argv` wraps a command in them."""

    bwrap: str
    worktree: Path
    writable: bool
    expose: list[Path] = field(default_factory=list)  # read-only again on top of the private /tmp
    hide: list[Path] = field(default_factory=list)  # dirs get an empty tmpfs, files an empty file
    overlays: list[tuple[Path, Path]] = field(default_factory=list)  # (replacement, target), read-only
    empty: Path | None = None  # an empty file to bind over hidden files

    def argv(self, command: list[str], cwd: Path) -> list[str]:
        args = [self.bwrap, *NAMESPACES, *BASE, "--tmpfs", "/tmp"]
        for path in self.expose:
            args += ["--ro-bind", str(path), str(path)]
        for path in self.hide:
            if path.is_dir():
                args += ["--tmpfs", str(path)]
            elif self.empty is not None:
                args += ["--ro-bind", str(self.empty), str(path)]
        args += ["--bind" if self.writable else "--ro-bind", str(self.worktree), str(self.worktree)]
        dot = self.worktree / ".git"
        if dot.exists():
            args += ["--ro-bind", str(dot), str(dot)]
        for source, target in self.overlays:
            args += ["--ro-bind", str(source), str(target)]
        return [*args, "--chdir", str(cwd), "--", *command]


def make_plan(bwrap: str, worktree: Path, *, writable: bool, scratch: Path, needed: list[Path],
              hide: list[Path]) -> Plan:
    """Mounts for `worktree`; `needed`: paths the commands must read (the venv) even under /tmp;
    `scratch`: a private host dir for the replacement files (removed by the caller)."""
    worktree = worktree.resolve()
    gitdir, common = git_dirs(worktree)
    empty = scratch / "empty"
    empty.write_text("", encoding="utf-8")
    overlays = []
    for index, config in enumerate(
            [p for p in (common and common / "config", gitdir and gitdir / "config.worktree") if p]):
        if config.is_file():
            replacement = scratch / f"gitconfig-{index}"
            sanitized_git_config(config, replacement)
            overlays.append((replacement, config))
    tmp = Path("/tmp").resolve()
    expose = []
    for path in [*needed, gitdir, common]:
        if path is not None and path.exists() and path.resolve().is_relative_to(tmp):
            expose.append(path.resolve())
    home = Path(os.environ.get("HOME") or Path.home())
    hidden = [p for p in [*hide, *(home / name for name in HOME_SECRETS)] if p.exists()]
    # A hidden dir that holds the worktree (the runs under the agent's home) is still hidden around it.
    return Plan(bwrap, worktree, writable, expose=expose, hide=[p.resolve() for p in hidden],
                overlays=overlays, empty=empty)

"""The one place the agent runs git on the host, and the agent's own worktree and branch.

Every host git process starts in `call`, under one policy, because the worktree is written by
code we did not write (the repository's conftest.py, the model's edits) and git runs commands
that its config names:
- the user's GIT_* variables are dropped (a GIT_DIR or GIT_EXTERNAL_DIFF from a hook that
  started us must not steer us), GIT_OPTIONAL_LOCKS=0 when only reading, no terminal prompt,
  a timeout that kills git's whole process group;
- config-driven commands are switched off on the command line, which beats every config file:
  fsmonitor, hooks, external diff and textconv, pager, editor, ssh command, credential helpers,
  signing, the `ext::` transport;
- in the agent's worktree git never finds its repository through the worktree's `.git` file
  (the sandbox can write that file): GIT_DIR is the admin dir git made at creation and
  GIT_WORK_TREE the worktree, and before each call the `.git` file must still be byte-for-byte
  what git wrote; if not, `GitTampered` is raised and git is not run.
GitPython finds the user's repository (pure Python, no process); it never spawns git here,
because its runner copies this process's whole environment, GIT_* included.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import git

from agent.errors import BadInput, EnvironmentProblem

DEFAULT_TIMEOUT = 120.0
NETWORK_TIMEOUT = 600.0
AGENT_IDENTITY = {"GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "agent@localhost",
                  "GIT_COMMITTER_NAME": "agent", "GIT_COMMITTER_EMAIL": "agent@localhost"}
# `-c` on the command line overrides the same key in any config file.
NEUTRAL_CONFIG = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("core.sshCommand", "ssh"),
    ("core.pager", "cat"),
    ("core.editor", ":"),
    ("sequence.editor", ":"),
    ("credential.helper", ""),  # the empty value resets the helper list
    ("protocol.ext.allow", "never"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("push.gpgSign", "false"),
    ("color.ui", "never"),
)
# `diff.external` has no "off" value; these subcommands get `--no-ext-diff --no-textconv` instead.
DIFF_COMMANDS = frozenset({"diff", "show", "log"})
# Variables a caller may add; anything else GIT_* comes from the policy itself.
CALLER_VARIABLES = ("GIT_AUTHOR_", "GIT_COMMITTER_", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")


class GitError(EnvironmentProblem):
    """A host git call failed; `str()` is one line, `stderr` the whole of git's complaint."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class GitTimeout(GitError):
    """git did not finish in time; its process group was killed."""


class GitTampered(GitError):
    """The worktree's `.git` pointer is not what git wrote: the sandbox changed it, git is not run."""


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


@dataclass
class Worktree:
    repo_root: Path
    path: Path
    branch: str
    base_commit: str
    user_tree_dirty: bool
    git_dir: Path  # <common>/worktrees/<name>, recorded when git made it
    pointer: bytes = field(repr=False)  # the `.git` file exactly as git wrote it
    generated: list[str] = field(default_factory=list)  # files the agent wrote as a build would: never committed


@dataclass(frozen=True)
class UserRepo:
    """The user's repository: where worktrees are added from; its own checkout is never written."""

    root: Path
    common_dir: Path

    @property
    def working_tree_dir(self) -> str:
        return str(self.root)


_pinned: dict[Path, Worktree] = {}


# -- the policy ------------------------------------------------------------------------------
def _pin_for(root: Path) -> Worktree | None:
    for path, worktree in _pinned.items():
        if root == path or root.is_relative_to(path):
            return worktree
    return None


def check_pointer(worktree: Worktree) -> None:
    """Raise GitTampered unless `<worktree>/.git` is still the regular file git wrote, byte for byte."""
    pointer = worktree.path / ".git"
    why = ""
    try:
        info = os.lstat(pointer)
        if stat.S_ISLNK(info.st_mode):
            why = "it is now a symlink"
        elif stat.S_ISDIR(info.st_mode):
            why = "it is now a directory"
        elif not stat.S_ISREG(info.st_mode):
            why = "it is no longer a regular file"
        else:
            fd = os.open(pointer, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as handle:
                if handle.read(len(worktree.pointer) + 1) != worktree.pointer:
                    why = "its content changed"
    except FileNotFoundError:
        why = "it was removed"
    except OSError as exc:
        why = f"it cannot be read ({exc.strerror})"
    if why:
        raise GitTampered(f"the sandbox tampered with {pointer} ({why}); host git was not run on it")


def _environment(pin: Worktree | None, write: bool, extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0")
    if not write:
        env["GIT_OPTIONAL_LOCKS"] = "0"  # a read never refreshes (rewrites) the index
    if pin is not None:
        env["GIT_DIR"], env["GIT_WORK_TREE"] = str(pin.git_dir), str(pin.path)
    for key, value in (extra or {}).items():
        if not key.startswith(CALLER_VARIABLES):
            raise ValueError(f"gitops: {key} is set by the policy, not by a caller")
        env[key] = value
    return env


def _argv(args: tuple[str, ...]) -> list[str]:
    flags = [part for key, value in NEUTRAL_CONFIG for part in ("-c", f"{key}={value}")]
    rest = list(args)
    if rest and rest[0] in DIFF_COMMANDS:
        rest[1:1] = ["--no-ext-diff", "--no-textconv"]
    return ["git", *flags, *rest]


def _one_line(args: tuple[str, ...], stderr: str, code: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reason = next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1] if lines else "")
    return f"git {args[0] if args else ''}: {reason or f'exit {code}'}"


def call(root: Path, *args: str, write: bool = False, timeout: float = DEFAULT_TIMEOUT,
         env: dict[str, str] | None = None, stdin: bytes | None = None) -> GitResult:
    """Run git in `root` under the policy; any exit code is returned, never raised."""
    root = Path(root).resolve()
    pin = _pin_for(root)
    if pin is not None:
        check_pointer(pin)
    if not root.is_dir():
        raise GitError(f"git {args[0] if args else ''}: no such directory: {root}")
    try:
        proc = subprocess.Popen(_argv(args), cwd=root, env=_environment(pin, write, env),
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except FileNotFoundError:
        raise GitError("git is not installed: install it (apt-get install git)") from None
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise GitTimeout(f"git {args[0] if args else ''}: no answer in {timeout:.0f} s; stopped") from None
    except BaseException:
        _kill(proc)  # Ctrl-C: git left our process group, so it must be stopped by hand
        raise
    return GitResult(proc.returncode, out, err.decode("utf-8", errors="replace"))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def run_bytes(root: Path, *args: str, write: bool = False, timeout: float = DEFAULT_TIMEOUT,
              env: dict[str, str] | None = None) -> bytes:
    """git's stdout; GitError (one line) when git fails."""
    result = call(root, *args, write=write, timeout=timeout, env=env)
    if result.returncode != 0:
        raise GitError(_one_line(args, result.stderr, result.returncode), returncode=result.returncode,
                       stderr=result.stderr)
    return result.stdout


def run(root: Path, *args: str, write: bool = False, timeout: float = DEFAULT_TIMEOUT,
        env: dict[str, str] | None = None) -> str:
    return run_bytes(root, *args, write=write, timeout=timeout, env=env).decode("utf-8", errors="replace")


def output(root: Path, *args: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """git's stdout, stripped, or None when git exits non-zero (no such ref, not a repository)."""
    result = call(root, *args, timeout=timeout)
    return result.text.strip() if result.returncode == 0 else None


# -- the user's repository -------------------------------------------------------------------
def open_repo(path: Path) -> UserRepo:
    """The user's repository, or BadInput with a one-line reason."""
    if not path.exists():
        raise BadInput(f"no such directory: {path}")
    try:
        found = git.Repo(path, search_parent_directories=True)  # reads files only; spawns nothing
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise BadInput(f"not a git repository: {path}") from None
    if found.bare or found.working_tree_dir is None:
        raise BadInput(f"bare repository has no files to work on: {path}")
    root = Path(found.working_tree_dir).resolve()
    if output(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}") is None:
        raise BadInput(f"repository has no commits yet: {path}")
    return UserRepo(root=root, common_dir=Path(found.common_dir).resolve())


def _free_branch(repo: UserRepo, wanted: str) -> str:
    existing = set(run(repo.root, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())
    if wanted not in existing:
        return wanted
    n = 2
    while f"{wanted}-{n}" in existing:
        n += 1
    return f"{wanted}-{n}"


def is_dirty(root: Path) -> bool:
    """Uncommitted changes or untracked files in the checkout at `root`."""
    return bool(run_bytes(root, "status", "--porcelain=v1", "-z", "--untracked-files=normal").strip(b"\0"))


# -- the agent's worktree --------------------------------------------------------------------
def create_worktree(repo: UserRepo, slug: str, dest: Path) -> Worktree:
    """Add a worktree at `dest` on a new branch `agent/<slug>` from HEAD, and pin its git dir."""
    dirty = is_dirty(repo.root)
    branch = _free_branch(repo, f"agent/{slug}")
    base = run(repo.root, "rev-parse", "--verify", "HEAD^{commit}").strip()
    dest.parent.mkdir(parents=True, exist_ok=True)
    run(repo.root, "worktree", "add", "--quiet", "-b", branch, str(dest), base, write=True)
    dest = dest.resolve()
    pointer = (dest / ".git").read_bytes()  # read once, now: no sandbox has seen it yet
    git_dir = _admin_dir(repo, dest, pointer)
    worktree = Worktree(repo_root=repo.root, path=dest, branch=branch, base_commit=base, user_tree_dirty=dirty,
                        git_dir=git_dir, pointer=pointer)
    _pinned[dest] = worktree
    return worktree


def _admin_dir(repo: UserRepo, dest: Path, pointer: bytes) -> Path:
    """`<common>/worktrees/<name>` that git just made for `dest` (checked, not trusted blindly)."""
    text = pointer.decode("utf-8", errors="replace").strip()
    if not text.startswith("gitdir: "):
        raise GitError(f"git worktree add wrote an unexpected {dest / '.git'}")
    admin = Path(text[len("gitdir: "):])
    admin = (admin if admin.is_absolute() else dest / admin).resolve()
    if admin.parent != (repo.common_dir / "worktrees").resolve() or not (admin / "commondir").is_file():
        raise GitError(f"git worktree add made {admin}, which is not under {repo.common_dir / 'worktrees'}")
    return admin


def _remove(repo: UserRepo, worktree: Worktree) -> None:
    """The worktree and its admin dir; by hand when the pointer was tampered with (git would read it)."""
    try:
        check_pointer(worktree)
        tampered = False
    except GitTampered:
        tampered = True
    _pinned.pop(worktree.path, None)
    if tampered:
        shutil.rmtree(worktree.path, ignore_errors=True)
        shutil.rmtree(worktree.git_dir, ignore_errors=True)
    else:
        run(repo.root, "worktree", "remove", "--force", str(worktree.path), write=True)


def discard_worktree(repo: UserRepo, worktree: Worktree) -> None:
    """Undo `create_worktree` for a run that never started (bad input): no stray branch or worktree."""
    _remove(repo, worktree)
    run(repo.root, "branch", "-D", worktree.branch, write=True)


def release_worktree(repo: UserRepo, worktree: Worktree) -> None:
    """Remove the worktree once its work is committed: the branch stays, free to check out elsewhere."""
    _remove(repo, worktree)


def has_changes(worktree: Worktree) -> bool:
    return is_dirty(worktree.path)


def changed_paths(worktree: Worktree) -> list[str]:
    """Files that differ from the base commit: tracked ones changed or deleted, and untracked ones."""
    tracked = run_bytes(worktree.path, "diff", "--name-only", "-z", "--no-renames", worktree.base_commit)
    untracked = run_bytes(worktree.path, "ls-files", "--others", "--exclude-standard", "-z")
    names = [os.fsdecode(n) for n in (tracked + b"\0" + untracked).split(b"\0") if n]
    return sorted(set(names) - set(worktree.generated))


def base_bytes(worktree: Worktree, path: str) -> bytes | None:
    """The file `path` as the base commit has it, or None when the base commit has no such file."""
    result = call(worktree.path, "cat-file", "blob", f"{worktree.base_commit}:{path}")
    return result.stdout if result.returncode == 0 else None


def commit_all(worktree: Worktree, message: str) -> str | None:
    """Commit every change in the worktree; returns the new commit, or None if nothing changed."""
    run(worktree.path, "add", "--all", write=True)
    if worktree.generated:  # unstaged by name: an exclude pathspec naming an ignored file fails `git add`
        run(worktree.path, "reset", "--quiet", "--", *(f":(literal){g}" for g in worktree.generated), write=True)
    if call(worktree.path, "diff", "--cached", "--quiet").returncode == 0:
        return None
    run(worktree.path, "commit", "--quiet", "--no-verify", "-m", message, write=True, env=AGENT_IDENTITY)
    return run(worktree.path, "rev-parse", "HEAD").strip()


def patch_since_base(worktree: Worktree) -> str:
    """The branch's diff from the base commit, plus anything not yet committed."""
    diff = run(worktree.path, "diff", worktree.base_commit, "--binary", "--no-color")
    return diff + "\n" if diff and not diff.endswith("\n") else diff


def drop_branch_if_unused(repo: UserRepo, worktree: Worktree) -> bool:
    """Delete the run's branch when it holds no commit of its own (call after the worktree is released).

    A run that made no change (key refused, endpoint down, targets already passing) leaves nothing
    behind; returns True when the branch was deleted.
    """
    tip = output(repo.root, "rev-parse", "--verify", "--quiet", f"refs/heads/{worktree.branch}")
    if tip is None or tip != worktree.base_commit:
        return False  # already gone, or it holds the run's commit
    run(repo.root, "branch", "-D", worktree.branch, write=True)
    return True


def describe_version(root: Path, rev: str = "HEAD") -> str | None:
    """A PEP 440 version for `rev` from the nearest tag, as setuptools-scm would guess it (None: no git)."""
    from sandbox.vcs import pep440_from_describe

    described = output(root, "describe", "--tags", "--long", "--always", "--match", "*[0-9]*", rev)
    return pep440_from_describe(described) if described else None


def commit_date(root: Path, rev: str = "HEAD") -> str | None:
    """The committer date of `rev` in ISO 8601 (an environment resolves its dependencies as of then)."""
    return output(root, "show", "-s", "--format=%cI", rev)

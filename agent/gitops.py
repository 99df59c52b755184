"""The agent's own worktree and branch; the user's checkout is never touched.

Everything here goes through `git worktree`, so the user's working tree,
index and stash stay byte-for-byte as they were. Uncommitted work in the
user's checkout is not carried over (the report says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import git

from agent.errors import BadInput


@dataclass
class Worktree:
    repo_root: Path
    path: Path
    branch: str
    base_commit: str
    user_tree_dirty: bool

    @property
    def repo(self) -> git.Repo:
        return git.Repo(self.path)


def open_repo(path: Path) -> git.Repo:
    """The user's repository, or BadInput with a one-line reason."""
    if not path.exists():
        raise BadInput(f"no such directory: {path}")
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise BadInput(f"not a git repository: {path}") from None
    if repo.bare:
        raise BadInput(f"bare repository has no files to work on: {path}")
    try:
        _ = repo.head.commit
    except ValueError:
        raise BadInput(f"repository has no commits yet: {path}") from None
    return repo


def _free_branch(repo: git.Repo, wanted: str) -> str:
    existing = {head.name for head in repo.heads}
    if wanted not in existing:
        return wanted
    n = 2
    while f"{wanted}-{n}" in existing:
        n += 1
    return f"{wanted}-{n}"


def create_worktree(repo: git.Repo, slug: str, dest: Path) -> Worktree:
    """Add a worktree at `dest` on a new branch `agent/<slug>` from HEAD."""
    root = Path(repo.working_tree_dir).resolve()
    dirty = repo.is_dirty(untracked_files=True)
    branch = _free_branch(repo, f"agent/{slug}")
    base = repo.head.commit.hexsha
    dest.parent.mkdir(parents=True, exist_ok=True)
    repo.git.worktree("add", "--quiet", "-b", branch, str(dest), base)
    return Worktree(repo_root=root, path=dest.resolve(), branch=branch, base_commit=base, user_tree_dirty=dirty)


def discard_worktree(repo: git.Repo, worktree: Worktree) -> None:
    """Undo `create_worktree` for a run that never started (bad input): no stray branch or worktree."""
    repo.git.worktree("remove", "--force", str(worktree.path))
    repo.git.branch("-D", worktree.branch)


def release_worktree(repo: git.Repo, worktree: Worktree) -> None:
    """Remove the worktree once its work is committed: the branch stays, free to check out elsewhere."""
    repo.git.worktree("remove", "--force", str(worktree.path))


def commit_all(worktree: Worktree, message: str) -> str | None:
    """Commit every change in the worktree; returns the new commit, or None if nothing changed."""
    repo = worktree.repo
    repo.git.add("--all")
    if not repo.is_dirty(index=True, working_tree=False, untracked_files=False):
        return None
    repo.git.commit(
        "--quiet", "--no-verify", "-m", message,
        env={"GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "agent@localhost",
             "GIT_COMMITTER_NAME": "agent", "GIT_COMMITTER_EMAIL": "agent@localhost"},
    )
    return repo.head.commit.hexsha


def patch_since_base(worktree: Worktree) -> str:
    """The branch's diff from the base commit, plus anything not yet committed."""
    repo = worktree.repo
    diff = repo.git.diff(worktree.base_commit, "--binary", "--no-color", "--no-ext-diff")
    return diff + "\n" if diff and not diff.endswith("\n") else diff


def drop_branch_if_unused(repo: git.Repo, worktree: Worktree) -> bool:
    """Delete the run's branch when it holds no commit of its own (call after the worktree is released).

    A run that made no change (key refused, endpoint down, targets already passing) leaves nothing
    behind; returns True when the branch was deleted.
    """
    try:
        tip = repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{worktree.branch}")
    except git.GitCommandError:
        return False  # already gone
    if tip.strip() != worktree.base_commit:
        return False
    repo.git.branch("-D", worktree.branch)
    return True

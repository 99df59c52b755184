"""The one git module: what a planted config or a rewritten `.git` pointer cannot make host git do.

Each attack is first shown to work with plain git (so the test proves something), then through
`agent.gitops`, which must not execute it.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from agent import gitops
from agent.summary.files import list_files
from evals.sample_repo import make_sample_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_sample_repo(tmp_path / "shop")


def plain_git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env=env)


def plant_hook(hooks: Path, marker: Path) -> None:
    hooks.mkdir(parents=True, exist_ok=True)
    for name in ("pre-commit", "post-commit", "post-checkout", "reference-transaction"):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
        hook.chmod(hook.stat().st_mode | stat.S_IEXEC)


def evil_gitdir(worktree: Path, marker: Path) -> None:
    """What a hostile conftest.py does in the sandbox: its own git dir, with commands in its config."""
    evil = worktree / ".evil"
    for sub in ("objects", "refs/heads"):
        (evil / sub).mkdir(parents=True, exist_ok=True)
    (evil / "HEAD").write_text("ref: refs/heads/main\n")
    (evil / "config").write_text(f"[core]\n\trepositoryformatversion = 0\n\tfsmonitor = touch {marker}\n"
                                 "\thooksPath = .evil/hooks\n")
    plant_hook(evil / "hooks", marker)


def new_worktree(repo: Path, tmp_path: Path) -> gitops.Worktree:
    return gitops.create_worktree(gitops.open_repo(repo), "t", tmp_path / "run" / "worktree")


def test_fsmonitor_in_the_repos_config_is_not_run(repo, tmp_path):
    marker = tmp_path / "fsmonitor-ran"
    plain_git(repo, "config", "core.fsmonitor", f"touch {marker}")
    (repo / "shop" / "cart.py").write_text("changed\n")
    plain_git(repo, "status", "--porcelain")
    assert marker.exists(), "plain git runs core.fsmonitor (the attack is real)"
    marker.unlink()
    assert gitops.is_dirty(repo)
    gitops.run(repo, "status", "--porcelain")
    gitops.run(repo, "diff", "HEAD")
    wt = new_worktree(repo, tmp_path)
    (wt.path / "shop" / "money.py").write_text("x = 1\n")
    assert gitops.commit_all(wt, "change")
    assert not marker.exists()


def test_hooks_in_the_repos_config_are_not_run(repo, tmp_path):
    marker = tmp_path / "hook-ran"
    plant_hook(repo / ".git" / "evil-hooks", marker)
    plain_git(repo, "config", "core.hooksPath", str(repo / ".git" / "evil-hooks"))
    plain_git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    assert marker.exists(), "plain git runs the hooks (the attack is real)"
    marker.unlink()
    wt = new_worktree(repo, tmp_path)  # post-checkout would run here
    (wt.path / "new.py").write_text("y = 2\n")
    assert gitops.commit_all(wt, "change")  # pre-commit, post-commit, reference-transaction would run here
    gitops.release_worktree(gitops.open_repo(repo), wt)
    assert not marker.exists()


def test_external_diff_and_textconv_are_not_run(repo, tmp_path):
    marker = tmp_path / "diff-ran"
    plain_git(repo, "config", "diff.external", f"touch {marker};:")
    plain_git(repo, "config", "diff.evil.textconv", f"touch {marker};cat")
    (repo / ".gitattributes").write_text("*.py diff=evil\n")
    (repo / "shop" / "cart.py").write_text("changed\n")
    plain_git(repo, "diff")
    assert marker.exists(), "plain git runs diff.external (the attack is real)"
    marker.unlink()
    plain_git(repo, "config", "--unset", "diff.external")
    plain_git(repo, "diff")
    assert marker.exists(), "plain git runs a textconv driver (the attack is real)"
    marker.unlink()
    plain_git(repo, "config", "diff.external", f"touch {marker};:")
    plain_git(repo, "add", ".gitattributes")
    plain_git(repo, "commit", "-qm", "attributes")
    wt = new_worktree(repo, tmp_path)
    (wt.path / "shop" / "cart.py").write_text("changed\n")
    gitops.commit_all(wt, "change")
    assert "+changed" in gitops.patch_since_base(wt)
    assert not marker.exists()


def test_a_rewritten_pointer_stops_host_git_before_it_runs(repo, tmp_path):
    marker = tmp_path / "evil-ran"
    wt = new_worktree(repo, tmp_path)
    evil_gitdir(wt.path, marker)
    (wt.path / ".git").write_text("gitdir: .evil\n")
    plain_git(wt.path, "status")
    assert marker.exists(), "plain git follows the rewritten pointer into .evil/config (the attack is real)"
    marker.unlink()
    for attempt in (lambda: gitops.run(wt.path, "status"), lambda: gitops.commit_all(wt, "x"),
                    lambda: gitops.patch_since_base(wt), lambda: gitops.has_changes(wt),
                    lambda: gitops.run(wt.path / "shop", "status"), lambda: list_files(wt.path)):
        with pytest.raises(gitops.GitTampered, match=r"the sandbox tampered with .*\.git \(its content changed\)"):
            attempt()
    assert not marker.exists()
    gitops.release_worktree(gitops.open_repo(repo), wt)  # by hand: git would read the pointer
    assert not wt.path.exists() and not wt.git_dir.exists() and not marker.exists()
    assert plain_git(repo, "worktree", "list", "--porcelain").stdout.count("worktree ") == 1


@pytest.mark.parametrize("kind", ["symlink", "directory", "removed"])
def test_a_pointer_replaced_by_a_symlink_or_dir_is_tampering(repo, tmp_path, kind):
    wt = new_worktree(repo, tmp_path)
    pointer = wt.path / ".git"
    real = pointer.read_bytes()
    pointer.unlink()
    if kind == "symlink":
        (tmp_path / "same").write_bytes(real)  # identical bytes behind a link still count
        pointer.symlink_to(tmp_path / "same")
    elif kind == "directory":
        pointer.mkdir()
    with pytest.raises(gitops.GitTampered) as caught:
        gitops.run(wt.path, "status")
    assert "\n" not in str(caught.value)


def test_the_worktree_is_pinned_and_the_users_git_variables_are_dropped(repo, tmp_path, monkeypatch):
    wt = new_worktree(repo, tmp_path)
    other = make_sample_repo(tmp_path / "other")
    marker = tmp_path / "ext-diff-ran"
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", f"touch {marker};:")
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "elsewhere.index"))
    assert gitops.run(wt.path, "rev-parse", "--abbrev-ref", "HEAD").strip() == wt.branch
    assert Path(gitops.run(wt.path, "rev-parse", "--absolute-git-dir").strip()) == wt.git_dir
    (wt.path / "shop" / "cart.py").write_text("changed\n")
    assert "+changed" in gitops.run(wt.path, "diff")
    assert not marker.exists() and not (tmp_path / "elsewhere.index").exists()
    assert wt.git_dir.parent == (repo / ".git" / "worktrees").resolve()


def test_errors_are_typed_and_one_line(repo):
    with pytest.raises(gitops.GitError) as caught:
        gitops.run(repo, "rev-parse", "--verify", "no-such-ref")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("git rev-parse: fatal:")
    assert caught.value.returncode == 128 and caught.value.exit_code == 3
    assert gitops.output(repo, "rev-parse", "--verify", "--quiet", "no-such-ref") is None


def test_a_git_that_hangs_is_killed_at_the_timeout(repo):
    with socket.socket() as server:  # accepts the connection, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/repo.git"
        started = time.monotonic()
        with pytest.raises(gitops.GitTimeout, match="no answer in 2 s"):
            gitops.call(repo, "fetch", url, timeout=2, write=True)
    assert time.monotonic() - started < 10

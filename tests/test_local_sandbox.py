"""The local sandbox: real subprocesses, process-group kills, bounded output, interpreter choice."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from sandbox.base import SandboxError
from sandbox.local import LocalSandbox, repo_python


def alive(pid: int) -> bool:
    """Running and not a zombie (an orphan may wait a while for a reaper in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_dead(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def fake_python(path: Path, label: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    exe = path / "python"
    exe.write_text(f'#!/bin/sh\necho {label} "$@"\n')
    exe.chmod(0o755)
    return exe


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalSandbox:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    sandbox = LocalSandbox(tmp_path)
    sandbox.start()
    return sandbox


def test_exec_captures_output_exit_code_and_cwd(box, tmp_path):
    result = box.exec(["sh", "-c", "pwd; echo oops >&2; exit 3"], timeout=10)
    assert result.exit_code == 3 and not result.timed_out
    assert result.stdout.strip() == str(tmp_path) and result.stderr.strip() == "oops"
    assert result.output == result.stdout + "\n" + result.stderr


def test_environment_has_no_agent_secrets(box, monkeypatch):
    monkeypatch.setenv("GLM_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs-should-not-leak")
    result = box.exec(["env"], timeout=10)
    assert "should-not-leak" not in result.stdout
    assert "PYTHONDONTWRITEBYTECODE=1" in result.stdout.splitlines()


def test_timeout_kills_the_whole_process_group(box, tmp_path):
    started = time.monotonic()
    result = box.exec(["sh", "-c", "sleep 1000 & echo $! > child.pid; echo started; sleep 1000"], timeout=1)
    assert result.timed_out and time.monotonic() - started < 6
    assert "started" in result.stdout and "timed out after 1s" in result.stderr
    assert wait_dead(int((tmp_path / "child.pid").read_text()))


def test_leftover_children_are_killed_after_a_normal_exit(box, tmp_path):
    started = time.monotonic()
    result = box.exec(["sh", "-c", "sleep 1000 & echo $! > child.pid; echo done"], timeout=30)
    assert result.exit_code == 0 and result.stdout.strip() == "done" and not result.timed_out
    assert time.monotonic() - started < 5  # the sleeper held stdout open; it did not block us
    assert wait_dead(int((tmp_path / "child.pid").read_text()))


def test_huge_output_is_bounded_head_and_tail(tmp_path, monkeypatch):
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    box = LocalSandbox(tmp_path, max_output_bytes=100_000)
    code = "import sys; sys.stdout.write('HEAD' + 'x' * 5_000_000 + 'TAIL')"
    result = box.exec([sys.executable, "-c", code], timeout=30)
    assert result.exit_code == 0
    assert len(result.stdout) < 110_000
    assert result.stdout.startswith("HEAD") and result.stdout.endswith("TAIL")
    assert "bytes of output cut" in result.stdout


def test_missing_command_and_root(box, tmp_path):
    result = box.exec(["no-such-binary-here"], timeout=5)
    assert result.exit_code == 127 and "cannot run" in result.stderr
    with pytest.raises(SandboxError):
        LocalSandbox(tmp_path / "missing").start()


def test_read_only_runs_in_a_scratch_copy(tmp_path):
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "keep.txt").write_text("original\n")
    (root / ".git").mkdir()
    with LocalSandbox(root, read_only=True) as box:
        result = box.exec(["sh", "-c", "cat pkg/keep.txt; ls -a; echo changed > pkg/keep.txt; touch new.txt"],
                          timeout=10)
        assert result.exit_code == 0 and result.stdout.startswith("original")
        assert ".git" not in result.stdout.split()
        scratch = box.cwd
        assert scratch != root and (scratch / "new.txt").exists()
    assert (root / "pkg" / "keep.txt").read_text() == "original\n" and not (root / "new.txt").exists()
    assert not scratch.exists()


def test_env_root_supplies_the_venv(tmp_path, monkeypatch):
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    user = tmp_path / "user"
    fake_python(user / ".venv" / "bin", "user-venv")
    (tmp_path / "worktree").mkdir()
    box = LocalSandbox(tmp_path / "worktree", env_root=user)
    assert box.exec(["python", "-V"], timeout=10).stdout.strip() == "user-venv -V"


def test_python_is_the_repos_interpreter(tmp_path, monkeypatch):
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    fake_python(tmp_path / ".venv" / "bin", "repo-venv")
    box = LocalSandbox(tmp_path)
    assert box.exec(["python", "-c", "pass"], timeout=10).stdout.strip() == "repo-venv -c pass"
    env_out = box.exec(["sh", "-c", 'echo "$VIRTUAL_ENV"; command -v python'], timeout=10).stdout.split()
    venv = (tmp_path / ".venv").resolve()
    assert env_out == [str(venv), str(venv / "bin" / "python")]

    active = tmp_path / "active"
    fake_python(active / "bin", "active-venv")
    monkeypatch.setenv("VIRTUAL_ENV", str(active))
    assert LocalSandbox(tmp_path).exec(["python", "-V"], timeout=10).stdout.strip() == "active-venv -V"


def test_interpreter_fallbacks(tmp_path):
    bin_dir = tmp_path / "bin"
    exe = fake_python(bin_dir, "x")
    (bin_dir / "python3").symlink_to(exe)
    assert repo_python(tmp_path / "repo", {"PATH": str(bin_dir)}) == (str(bin_dir / "python3"), None)
    assert repo_python(tmp_path / "repo", {"PATH": str(tmp_path / "empty")}) == (sys.executable, None)
    stale = {"VIRTUAL_ENV": str(tmp_path / "gone"), "PATH": str(bin_dir)}
    assert repo_python(tmp_path / "repo", stale)[0] == str(bin_dir / "python3")


def test_processes_run_in_their_own_session(box):
    result = box.exec([sys.executable, "-c", "import os; print(os.getpgid(0) == os.getpid())"], timeout=10)
    assert result.stdout.strip() == "True"
    code = "import os; print(os.getsid(0))"
    assert int(box.exec([sys.executable, "-c", code], timeout=10).stdout) != os.getsid(0)

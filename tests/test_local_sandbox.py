"""The local sandbox: real subprocesses, process-group kills, bounded output, interpreter choice.

Behaviour tests run twice: under bubblewrap (when it works here) and unisolated.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from sandbox.base import SandboxError
from sandbox.bwrap import find_bwrap
from sandbox.local import LocalSandbox, repo_python


def alive(pid: int) -> bool:
    """Running and not a zombie (an orphan may wait a while for a reaper in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def marked_alive(marker: str) -> list[int]:
    """Host pids whose command line holds `marker` (pids written inside a pid namespace mean nothing here)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes() and alive(int(proc.name)):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def wait_none_marked(marker: str, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not marked_alive(marker):
            return True
        time.sleep(0.05)
    return False


def fake_python(path: Path, label: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    exe = path / "python"
    exe.write_text(f'#!/bin/sh\necho {label} "$@"\n')
    exe.chmod(0o755)
    return exe


ISOLATED = find_bwrap()[0] is not None
MODES = [pytest.param(True, id="bubblewrap", marks=pytest.mark.skipif(not ISOLATED, reason="no bubblewrap here")),
         pytest.param(False, id="unisolated")]


@pytest.fixture(params=MODES)
def box(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    sandbox = LocalSandbox(tmp_path, isolate=request.param)
    sandbox.start()
    yield sandbox
    sandbox.stop()


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


def test_environment_is_an_allowlist(tmp_path, monkeypatch):
    """A secret under a name nobody listed (a CI's deploy key, a cloud token) does not pass either."""
    for name in ("DEPLOY_KEY", "AWS_SECRET_ACCESS_KEY", "ACTIONS_RUNTIME_TOKEN", "PYTHONSTARTUP", "PYTHONPATH"):
        monkeypatch.setenv(name, f"/leak/{name}")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    (tmp_path / "src").mkdir()
    for isolate in (True, False):
        box = LocalSandbox(tmp_path, isolate=isolate, extra_env={"PYTEST_ADDOPTS": "-q"})
        env = dict(line.split("=", 1) for line in box.exec(["env"], timeout=10).stdout.splitlines() if "=" in line)
        box.stop()
        assert not any("/leak/" in value for value in env.values())
        assert env["LC_ALL"] == "C.UTF-8" and env["PYTEST_ADDOPTS"] == "-q"
        site, *roots = env["PYTHONPATH"].split(os.pathsep)  # first: the sitecustomize (sandbox.worktreesite)
        assert Path(site).name.startswith("agent-site-")
        assert roots == [str(tmp_path.resolve()), str((tmp_path / "src").resolve())]
        assert env["AGENT_WORKTREE_ROOTS"].split(os.pathsep) == roots


def test_timeout_kills_the_whole_process_group(box, tmp_path):
    marker = f"sleeper-{os.getpid()}-{time.monotonic_ns()}"
    code = f"import time; time.sleep(1000)  # {marker}"
    started = time.monotonic()
    result = box.exec(["sh", "-c", f"{sys.executable} -c '{code}' & echo started; sleep 1000"], timeout=1)
    assert result.timed_out and time.monotonic() - started < 6
    assert "started" in result.stdout and "timed out after 1s" in result.stderr
    assert wait_none_marked(marker)


def test_leftover_children_are_killed_after_a_normal_exit(box, tmp_path):
    marker = f"leftover-{os.getpid()}-{time.monotonic_ns()}"
    code = f"import time; time.sleep(1000)  # {marker}"
    started = time.monotonic()
    result = box.exec(["sh", "-c", f"{sys.executable} -c '{code}' & sleep 0.3; echo done"], timeout=30)
    assert result.exit_code == 0 and result.stdout.strip() == "done" and not result.timed_out
    assert time.monotonic() - started < 5  # the sleeper held stdout open; it did not block us
    assert wait_none_marked(marker)


def test_huge_output_is_bounded_head_and_tail(box):
    box.max_output_bytes = 100_000
    code = "import sys; sys.stdout.write('HEAD' + 'x' * 5_000_000 + 'TAIL')"
    result = box.exec([sys.executable, "-c", code], timeout=30)
    assert result.exit_code == 0
    assert len(result.stdout) < 110_000
    assert result.stdout.startswith("HEAD") and result.stdout.endswith("TAIL")
    assert "bytes of output cut" in result.stdout


def test_missing_command_and_root(box, tmp_path):
    result = box.exec(["no-such-binary-here"], timeout=5)
    assert result.exit_code != 0 and "no-such-binary-here" in result.stderr
    with pytest.raises(SandboxError):
        LocalSandbox(tmp_path / "missing").start()


def read_only_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "keep.txt").write_text("original\n")
    (root / ".git").mkdir()
    return root


def test_read_only_unisolated_runs_in_a_scratch_copy(tmp_path):
    root = read_only_repo(tmp_path)
    with LocalSandbox(root, read_only=True, isolate=False) as box:
        result = box.exec(["sh", "-c", "cat pkg/keep.txt; ls -a; echo changed > pkg/keep.txt; touch new.txt"],
                          timeout=10)
        assert result.exit_code == 0 and result.stdout.startswith("original")
        assert ".git" not in result.stdout.split()
        scratch = box.cwd
        assert scratch != root and (scratch / "new.txt").exists()
    assert (root / "pkg" / "keep.txt").read_text() == "original\n" and not (root / "new.txt").exists()
    assert not scratch.exists()


@pytest.mark.skipif(not ISOLATED, reason="no bubblewrap here")
def test_read_only_isolated_binds_the_worktree_read_only(tmp_path):
    root = read_only_repo(tmp_path)
    with LocalSandbox(root, read_only=True) as box:
        assert box.cwd == root  # no copy
        result = box.exec(["sh", "-c", "cat pkg/keep.txt; echo changed > pkg/keep.txt || echo refused; "
                                       "touch new.txt || echo refused"], timeout=10)
        assert result.stdout.split() == ["original", "refused", "refused"], result.output
        assert "Read-only file system" in result.stderr
    assert (root / "pkg" / "keep.txt").read_text() == "original\n" and not (root / "new.txt").exists()


def test_env_root_supplies_the_venv(tmp_path, monkeypatch):
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    user = tmp_path / "user"
    fake_python(user / ".venv" / "bin", "user-venv")
    (tmp_path / "worktree").mkdir()
    box = LocalSandbox(tmp_path / "worktree", env_root=user)
    assert box.exec(["python", "-V"], timeout=10).stdout.strip() == "user-venv -V"
    assert box.python_source == "repo .venv" and "(repo .venv)" in box.describe()


@pytest.mark.parametrize("isolate", [m.values[0] for m in MODES], ids=["bubblewrap", "unisolated"])
def test_python_is_the_repos_interpreter(tmp_path, monkeypatch, isolate):
    if isolate and not ISOLATED:
        pytest.skip("no bubblewrap here")
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    fake_python(tmp_path / ".venv" / "bin", "repo-venv")
    box = LocalSandbox(tmp_path, isolate=isolate)
    assert box.exec(["python", "-c", "pass"], timeout=10).stdout.strip() == "repo-venv -c pass"
    env_out = box.exec(["sh", "-c", 'echo "$VIRTUAL_ENV"; command -v python'], timeout=10).stdout.split()
    venv = (tmp_path / ".venv").resolve()
    assert env_out == [str(venv), str(venv / "bin" / "python")]
    box.stop()

    # The repo's .venv comes before an active virtualenv (which may be the agent's own).
    active = tmp_path / "active"
    fake_python(active / "bin", "active-venv")
    monkeypatch.setenv("VIRTUAL_ENV", str(active))
    assert LocalSandbox(tmp_path, isolate=isolate).python_source == "repo .venv"
    (tmp_path / ".venv" / "bin" / "python").unlink()
    box = LocalSandbox(tmp_path, isolate=isolate)
    assert box.exec(["python", "-V"], timeout=10).stdout.strip() == "active-venv -V"
    assert box.python_source == "active virtualenv"
    box.stop()


def test_interpreter_fallbacks(tmp_path):
    bin_dir = tmp_path / "bin"
    exe = fake_python(bin_dir, "x")
    (bin_dir / "python3").symlink_to(exe)
    (bin_dir / "python3.9").symlink_to(exe)
    env = {"PATH": str(bin_dir)}
    assert repo_python(tmp_path / "repo", env) == (str(bin_dir / "python3"), None, "python3 on PATH")
    assert repo_python(tmp_path / "repo", env, configured="3.9") == (str(bin_dir / "python3.9"), None,
                                                                      "[sandbox] python")
    assert repo_python(tmp_path / "repo", env, configured="3.7")[0] == str(bin_dir / "python3")
    assert repo_python(tmp_path / "repo", {"PATH": str(tmp_path / "empty")}) == (
        sys.executable, None, "the agent's interpreter")
    stale = {"VIRTUAL_ENV": str(tmp_path / "gone"), "PATH": str(bin_dir)}
    assert repo_python(tmp_path / "repo", stale)[0] == str(bin_dir / "python3")


def test_processes_run_in_their_own_session(box):
    """A command's session starts in the sandbox: a timeout kills its whole group, and under
    bubblewrap it cannot push keystrokes into the agent's terminal (TIOCSTI)."""
    code = "import os; print(os.getsid(0), os.getpgid(0), os.getpid())"
    sid, pgid, pid = map(int, box.exec([sys.executable, "-c", code], timeout=10).stdout.split())
    leader = 1 if box.isolated else pid  # bubblewrap's init (pid 1 of the namespace) calls setsid
    assert sid == pgid == leader

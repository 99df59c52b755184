"""The Docker sandbox against a real engine: isolation, limits, timeouts, ownership, clean-up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

OWNER = 4321  # a uid that exists nowhere: files must come back owned by it, not by root


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    root.mkdir()
    (root / "test_ok.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    if os.geteuid() == 0:
        for path in (root, root / "test_ok.py"):
            os.chown(path, OWNER, OWNER)
    return root


@pytest.fixture
def box(env_image, worktree):
    from sandbox.docker import DockerSandbox

    sandbox = DockerSandbox(worktree, image=env_image, memory="256m", pids=64, cpus=1.0)
    sandbox.start()
    yield sandbox
    sandbox.stop()


def sh(box, script: str, timeout: float = 20):
    return box.exec(["sh", "-c", script], timeout)


def test_runs_pytest_with_the_venv_python(box):
    result = box.exec(["python", "-c", "import sys, pytest; print(sys.prefix)"], 20)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "/opt/venv"
    run = box.exec(["python", "-m", "pytest", "-q"], 60)
    assert run.exit_code == 0 and "1 passed" in run.stdout
    assert not (box.root / ".pytest_cache").exists() and not list(box.root.rglob("__pycache__"))


def test_no_network_but_loopback(box):
    result = sh(box, "cat /proc/net/dev")
    interfaces = {line.split(":")[0].strip() for line in result.stdout.splitlines() if ":" in line}
    assert interfaces == {"lo"}
    connect = "import socket; socket.create_connection(('1.1.1.1', 443), timeout=3)"
    probe = box.exec(["python", "-c", connect], 20)
    assert probe.exit_code != 0 and "Network is unreachable" in probe.stderr


def test_root_fs_read_only_and_nothing_written_outside_worktree(box):
    result = sh(box, "for p in /etc/x /opt/venv/x /usr/x /x; do touch $p 2>&1; done; echo tmp > /tmp/t; "
                     "echo ok > /repo/made.txt")
    assert result.stdout.count("Read-only file system") == 4, result.output
    assert (box.root / "made.txt").read_text() == "ok\n"
    assert box.container.diff() in (None, [])  # the container's own layer is untouched


def test_files_created_belong_to_worktree_owner(box):
    result = sh(box, "id -u; mkdir -p /repo/pkg && echo x > /repo/pkg/new.py")
    owner = box.root.stat().st_uid
    assert result.stdout.split()[0] == str(owner)
    assert (box.root / "pkg").stat().st_uid == owner and (box.root / "pkg" / "new.py").stat().st_uid == owner


def test_read_only_sandbox_cannot_change_worktree(env_image, worktree):
    from sandbox.docker import DockerSandbox

    with DockerSandbox(worktree, image=env_image, read_only=True) as ro:
        result = ro.exec(["sh", "-c", "echo x > /repo/test_ok.py"], 20)
        run = ro.exec(["python", "-m", "pytest", "-q"], 60)
    assert result.exit_code != 0 and "Read-only file system" in result.stderr
    assert (worktree / "test_ok.py").read_text().startswith("def test_ok")
    assert run.exit_code == 0, run.output


def test_memory_hog_is_oom_killed_and_reported(box):
    hog = "b = []\nwhile True: b.append(bytearray(32 * 2**20))"
    result = box.exec(["python", "-c", hog], 60)
    assert result.exit_code == 137 and result.oom_killed and not result.timed_out
    after = box.exec(["python", "-c", "print('alive')"], 20)
    assert after.stdout.strip() == "alive" and not after.oom_killed


def test_fork_bomb_is_contained(box):
    bomb = "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"
    result = box.exec(["python", "-c", bomb], 3)
    assert result.timed_out
    started = time.monotonic()
    after = sh(box, "ls -d /proc/[0-9]* | wc -l")
    assert after.exit_code == 0 and time.monotonic() - started < 2
    assert int(after.stdout.strip()) <= 6  # init, idle keeper, timeout, sh, ls, wc


def test_hanging_command_times_out_then_same_container_serves(box):
    container_id = box.container.id
    result = box.exec(["sh", "-c", "sleep 100 & setsid sleep 200 & sleep 300"], 1)
    assert result.timed_out and result.exit_code == 137 and result.duration < 7
    started = time.monotonic()
    after = sh(box, "for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline; echo; done")
    assert time.monotonic() - started < 1.0
    assert box.container.id == container_id
    assert "sleep 200" not in after.stdout and "sleep 300" not in after.stdout  # whole tree killed


def test_stop_removes_container(env_image, worktree):
    from docker.errors import NotFound

    from sandbox.docker import DockerSandbox
    from sandbox.engine import ensure_engine

    with DockerSandbox(worktree, image=env_image) as sb:
        name = sb.name
        assert ensure_engine().containers.get(name).status == "running"
    with pytest.raises(NotFound):
        ensure_engine().containers.get(name)


def test_missing_image_is_a_clear_error(worktree):
    from sandbox.base import SandboxError
    from sandbox.docker import DockerSandbox

    with pytest.raises(SandboxError, match="build-base"):
        DockerSandbox(worktree, image="agent-env:does-not-exist").start()


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from sandbox.docker import DockerSandbox
    sb = DockerSandbox(Path(sys.argv[1]), image=sys.argv[2])
    sb.start()
    print(sb.name, flush=True)
    time.sleep(120)
""")


def _child(worktree: Path, image: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(worktree), image], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[1])
    name = proc.stdout.readline().strip()
    assert name.startswith("agent-sandbox-"), name
    return proc, name


def test_gc_removes_container_of_killed_run_and_keeps_live_ones(env_image, worktree, box):
    from docker.errors import NotFound

    from sandbox.docker import gc
    from sandbox.engine import ensure_engine

    proc, name = _child(worktree, env_image)
    proc.kill()  # SIGKILL: no atexit, no handler, the container stays behind
    proc.wait()
    client = ensure_engine()
    assert client.containers.get(name).status == "running"
    removed = gc()
    assert name in removed and box.name not in removed
    with pytest.raises(NotFound):
        client.containers.get(name)
    assert client.containers.get(box.name).status == "running"


def test_sigterm_removes_container(env_image, worktree):
    from docker.errors import NotFound

    from sandbox.engine import ensure_engine

    proc, name = _child(worktree, env_image)
    proc.terminate()
    assert proc.wait(timeout=30) == 128 + 15
    with pytest.raises(NotFound):
        ensure_engine().containers.get(name)


def test_gc_survives_a_container_another_run_removes_while_it_lists(env_image, worktree):
    """Every sandbox start sweeps; two runs at once (two CI workers) race: a labelled container listed by
    one may be gone when it is inspected, and the start failed with NotFound (seen in CI)."""
    from docker.errors import NotFound

    from sandbox.docker import gc
    from sandbox.engine import ensure_engine, owner_labels

    client = ensure_engine()
    other = client.containers.run(env_image, ["sleep", "60"], detach=True, labels=owner_labels())
    inspect = client.api.inspect_container

    def removed_first(container, *args, **kwargs):  # the other run's clean-up lands between list and inspect
        if container in (other.id, other.name):
            client.api.remove_container(other.id, force=True)
        return inspect(container, *args, **kwargs)

    client.api.inspect_container = removed_first
    try:
        assert other.name not in gc(client=client)
    finally:
        client.api.inspect_container = inspect
        try:
            client.api.remove_container(other.id, force=True)
        except NotFound:
            pass

"""The local sandbox's trust boundary: each test performs an attack from inside a command.

The subject is a real git worktree of a real repository, laid out as `agent fix` lays it out
(the worktree under $AGENT_HOME/runs/, its `.git` a pointer into the user's checkout).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from evals.sample_repo import git
from sandbox.bwrap import _probe, find_bwrap
from sandbox.local import LocalSandbox

TOKEN = "ghs_extraheader_token_5b1f"
needs_bwrap = pytest.mark.skipif(find_bwrap()[0] is None, reason=f"no bubblewrap here: {find_bwrap()[1]}")


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A user checkout with an Actions-style token in its git config, and a run's worktree of it."""
    home, agent_home, config = tmp_path / "home", tmp_path / "agent-home", tmp_path / "config"
    for path in (home, agent_home / "runs" / "older-run", config / "agent"):
        path.mkdir(parents=True)
    (agent_home / "runs" / "older-run" / "trajectory.jsonl").write_text("other task's secrets\n")
    (config / "agent" / "config.toml").write_text('[model]\napi_key = "from-config"\n')
    (home / ".git-credentials").write_text("https://user:cred-in-home@github.com\n")
    for name, value in (("HOME", home), ("AGENT_HOME", agent_home), ("XDG_CONFIG_HOME", config)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    user = tmp_path / "user"
    (user / "pkg").mkdir(parents=True)
    (user / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    git(user, "init", "-q", "-b", "main")
    git(user, "add", "-A")
    git(user, "commit", "-q", "-m", "initial")
    git(user, "config", "http.https://github.com/.extraheader", f"AUTHORIZATION: basic {TOKEN}")
    worktree = agent_home / "runs" / "this-run" / "worktree"
    git(user, "worktree", "add", "-q", "-b", "agent/x", str(worktree))
    return {"user": user, "worktree": worktree, "home": home, "agent_home": agent_home, "config": config}


def run_in(layout: dict[str, Path], script: str, **kwargs) -> subprocess.CompletedProcess:
    with LocalSandbox(layout["worktree"], env_root=layout["user"], **kwargs) as box:
        result = box.exec(["sh", "-c", script], timeout=30)
    return subprocess.CompletedProcess([], result.exit_code, result.stdout, result.stderr)


@needs_bwrap
def test_git_config_in_the_worktree_shows_no_extraheader(layout):
    common_config = layout["user"] / ".git" / "config"
    done = run_in(layout, f"git config --list --show-origin; cat {common_config}; git status --short; "
                          "git log --oneline -1")
    assert TOKEN not in done.stdout + done.stderr
    assert "initial" in done.stdout  # git still works: objects and refs are readable
    assert TOKEN in common_config.read_text()  # the host's config is untouched


@needs_bwrap
def test_root_inside_cannot_unmount_what_hides_the_config(layout):
    config = layout["user"] / ".git" / "config"
    done = run_in(layout, f"umount {config}; umount -l {config}; cat {config}")
    assert TOKEN not in done.stdout


@needs_bwrap
def test_agent_home_config_and_home_credentials_are_hidden(layout):
    older = layout["agent_home"] / "runs" / "older-run" / "trajectory.jsonl"
    done = run_in(layout, f"cat {older}; ls {layout['agent_home']}/runs; "
                          f"cat {layout['config']}/agent/config.toml; cat $HOME/.git-credentials; echo end")
    assert "other task's secrets" not in done.stdout and "older-run" not in done.stdout
    assert "from-config" not in done.stdout and "cred-in-home" not in done.stdout
    assert done.stdout.strip().endswith("end")


@needs_bwrap
def test_nothing_outside_the_worktree_is_writable(layout, tmp_path):
    targets = [layout["user"] / "escape.txt", layout["home"] / "escape.txt", tmp_path / "escape.txt",
               Path(sys.prefix) / "escape.txt"]
    script = "; ".join(f"echo x > {t} 2>/dev/null && echo wrote {t}" for t in targets)
    try:
        done = run_in(layout, script + "; echo inside > made-here.txt; echo /tmp-private > /tmp/scratch.txt")
        assert f"wrote {targets[-1]}" not in done.stdout  # refused; those under /tmp land in its private tmpfs
        assert not any(t.exists() for t in targets)
    finally:
        targets[-1].unlink(missing_ok=True)
    assert (layout["worktree"] / "made-here.txt").read_text() == "inside\n"  # the worktree is writable


@needs_bwrap
def test_the_git_pointer_cannot_be_rewritten_or_removed(layout):
    pointer = layout["worktree"] / ".git"
    before = pointer.read_text()
    done = run_in(layout, "echo 'gitdir: .evil' > .git; rm -f .git; mv .git gone; "
                          "mkdir -p .evil && printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' > .evil/config; "
                          "cat .git")
    assert pointer.read_text() == before and done.stdout.strip() == before.strip()
    assert git(layout["worktree"], "rev-parse", "--abbrev-ref", "HEAD").strip() == "agent/x"


@needs_bwrap
def test_no_network_not_even_the_hosts_loopback(layout):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
                "    print('connected')\nexcept OSError as exc:\n    print('refused', exc)\n")
        done = run_in(layout, f"{sys.executable} -c \"{code}\"")
    assert done.stdout.startswith("refused"), done.stdout + done.stderr


@needs_bwrap
def test_the_agents_process_and_environ_are_invisible(layout, tmp_path):
    """A stand-in agent process holding the key runs the sandbox; the command scans every /proc/*/environ."""
    scan = layout["worktree"] / "scan.py"
    scan.write_text("import os, pathlib\nhits, seen = [], 0\nfor p in pathlib.Path('/proc').iterdir():\n"
                    "    try:\n        data = (p / 'environ').read_bytes()\n    except OSError:\n        continue\n"
                    "    seen += 1\n    hits += [p.name] if b'sk-agent-key-91' in data else []\n"
                    "print('seen', seen, 'hits', hits, 'env', 'sk-agent-key-91' in str(os.environ))\n")
    agent = (f"from sandbox.local import LocalSandbox\n"
             f"box = LocalSandbox({str(layout['worktree'])!r}, env_root={str(layout['user'])!r})\n"
             f"box.start()\nprint(box.exec([{sys.executable!r}, {str(scan)!r}], 30).output)\nbox.stop()\n")
    env = {**os.environ, "GLM_API_KEY": "sk-agent-key-91", "PYTHONPATH": str(Path(__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", agent], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("seen ") and "hits [] env False" in out.stdout, out.stdout + out.stderr


def test_without_bubblewrap_the_run_is_unisolated_and_says_so(layout, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "cat", "git"):
        (bin_dir / tool).symlink_to(subprocess.check_output(["sh", "-c", f"command -v {tool}"], text=True).strip())
    monkeypatch.setenv("PATH", str(bin_dir))
    box = LocalSandbox(layout["worktree"], env_root=layout["user"])
    assert not box.isolated and box.isolation == "none (bubblewrap is not installed: apt-get install bubblewrap)"
    # and a bwrap that cannot make namespaces (a host without user namespaces) is detected at start
    fake = bin_dir / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    _probe.cache_clear()
    box = LocalSandbox(layout["worktree"], env_root=layout["user"])
    assert not box.isolated
    assert box.isolation == ("none (bubblewrap cannot create its namespaces: "
                             "bwrap: No permissions to creating new namespace)")
    done = box.exec(["sh", "-c", "cat .git"], timeout=10)
    assert done.exit_code == 0 and done.stdout.startswith("gitdir:")  # still runs, unisolated


@needs_bwrap
def test_code_under_test_gets_a_writable_home_that_is_not_the_users(layout):
    """Many test suites write caches under ~: they work, and nothing lands in the user's home."""
    script = ("mkdir -p ~/.cache/tool && echo cached > ~/.cache/tool/x && cat ~/.cache/tool/x && "
              "test ! -e ~/.git-credentials && echo no-credentials")
    done = run_in(layout, script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cached", "no-credentials"]
    assert not (layout["home"] / ".cache").exists()

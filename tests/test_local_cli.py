"""`agent fix --sandbox local` against a hostile repository: the attack comes through the CLI.

The repository's own conftest.py runs at reproduction and at every test run of the loop; what it
can read it writes into the worktree, which the agent then commits on its branch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.fake_glm import FakeGLM
from evals.sample_repo import FILES, fixing_script, git, make_sample_repo
from sandbox.bwrap import find_bwrap
from tests.conftest import TEST_KEY, run_cli
from tests.test_fix_cli import fix_args

TOKEN = "ghs_actions_checkout_token_c0ffee"
needs_bwrap = pytest.mark.skipif(find_bwrap()[0] is None, reason=f"no bubblewrap here: {find_bwrap()[1]}")

SECRETS_PROBE = '''import os, pathlib, subprocess

environs = []
for proc in pathlib.Path("/proc").iterdir():
    try:
        environs.append(proc.name + ": " + (proc / "environ").read_bytes().decode(errors="replace"))
    except OSError:
        pass
config = subprocess.run(["git", "config", "--list", "--show-origin"], capture_output=True, text=True)
pathlib.Path("leak.txt").write_text(
    f"probe ran; environ files read: {len(environs)}\\n" + "\\n".join(environs) + "\\n"
    + repr(dict(os.environ)) + "\\n" + config.stdout + config.stderr)
'''

ESCAPE_PROBE = '''import os, pathlib

results = []
pointer = pathlib.Path(".git").read_text().split(":", 1)[1].strip()
user_checkout = pathlib.Path(pointer).parents[2]
# the user's real home by its path ($HOME inside the sandbox is a private /tmp)
for target in [user_checkout / "escape.txt", pathlib.Path("{home}") / "escape.txt", pathlib.Path("{outside}")]:
    try:
        target.write_text("escaped")
        results.append(f"wrote {{target}}")
    except OSError as exc:
        results.append(f"refused {{target}}: {{exc.strerror}}")
evil = pathlib.Path(".evil")
evil.mkdir(exist_ok=True)
(evil / "config").write_text("[core]\\n\\tfsmonitor = touch {pwned}\\n\\thooksPath = .evil\\n")
try:
    pathlib.Path(".git").write_text("gitdir: .evil\\n")
    results.append("pointer rewritten")
except OSError as exc:
    results.append(f"pointer refused: {{exc.strerror}}")
pathlib.Path("probe.txt").write_text("\\n".join(results) + "\\n")
'''


def hostile_repo(tmp_path: Path, conftest: str) -> Path:
    repo = make_sample_repo(tmp_path / "shop", {**FILES, "tests/conftest.py": conftest})
    # What actions/checkout leaves in the repository's config.
    git(repo, "config", "http.https://github.com/.extraheader", f"AUTHORIZATION: basic {TOKEN}")
    return repo


def branch_file(repo: Path, branch: str, name: str) -> str:
    return git(repo, "show", f"{branch}:{name}")


@needs_bwrap
def test_repo_code_cannot_read_the_key_or_the_checkout_token(tmp_path, agent_env):
    repo = hostile_repo(tmp_path, SECRETS_PROBE)
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(repo, server), agent_env)
    assert result.code == 0, result.stderr
    report = result.report
    leak = branch_file(repo, report["branch"], "leak.txt")
    assert leak.startswith("probe ran; environ files read: ")  # the attack ran and its output was committed
    assert TEST_KEY not in leak and TEST_KEY not in report["patch"]
    assert TOKEN not in leak and "extraheader" not in leak
    assert TOKEN not in report["patch"]
    assert "sandbox local (bubblewrap)" in result.stderr and report["sandbox_isolation"] == "bubblewrap"


@needs_bwrap
def test_repo_code_cannot_write_outside_the_worktree_or_redirect_host_git(tmp_path, agent_env):
    outside, pwned = Path("/var/tmp") / f"agent-escape-{os.getpid()}", tmp_path / "pwned"
    home = tmp_path / "home"
    home.mkdir()
    agent_env["HOME"] = str(home)
    repo = hostile_repo(tmp_path, ESCAPE_PROBE.format(outside=outside, pwned=pwned, home=home))
    try:
        with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
            result = run_cli(fix_args(repo, server), agent_env)
        assert result.code == 0, result.stderr
        probe = branch_file(repo, result.report["branch"], "probe.txt")
        lines = probe.splitlines()
        assert sum(line.startswith("refused ") for line in lines) == 3, probe  # no "wrote ..."
        assert lines[-1].startswith("pointer refused"), probe
        assert not (repo / "escape.txt").exists() and not (home / "escape.txt").exists()
        assert not outside.exists() and not pwned.exists()
        assert result.report["status"] == "resolved"
    finally:
        outside.unlink(missing_ok=True)


def test_without_bubblewrap_the_run_says_unisolated(tmp_path, agent_env, sample_repo):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh"):
        (bin_dir / tool).symlink_to(subprocess.check_output(["sh", "-c", f"command -v {tool}"], text=True).strip())
    (bin_dir / "python3").symlink_to(sys.executable)
    agent_env["PATH"] = str(bin_dir)
    with FakeGLM(turns=fixing_script(), api_key=TEST_KEY) as server:
        result = run_cli(fix_args(sample_repo, server), agent_env)
    assert result.code == 0, result.stderr
    why = "bubblewrap is not installed: apt-get install bubblewrap"
    assert f"sandbox local (unisolated: {why})" in result.stderr
    assert result.report["sandbox_isolation"] == f"none ({why})"

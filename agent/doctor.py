"""`agent doctor`: one line per prerequisite, each failure with its fix."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from agent import gitops
from agent.config import Settings, load_settings
from agent.errors import EnvironmentProblem
from agent.run_context import api_key_from_env

Check = tuple[str, bool, str]


def _key() -> Check:
    key = api_key_from_env()
    if key:
        return "api key", True, f"set ({len(key)} characters)"
    return "api key", False, "not set: export GLM_API_KEY=... (or ZAI_API_KEY); `agent demo` needs none"


def _endpoint(settings: Settings, key: str | None) -> Check:
    """The preflight's one-token request: key, endpoint and model checked together."""
    from agent.preflight import check_endpoint

    base_url = settings.model.base_url
    try:
        note = check_endpoint(settings, key)
    except EnvironmentProblem as exc:
        return "endpoint", False, str(exc).replace("--base-url / AGENT_BASE_URL", "AGENT_BASE_URL")
    return "endpoint", True, f"{base_url} accepts the key and model {settings.model.name}" + (
        f" ({note})" if note else "")


def _git() -> Check:
    path = shutil.which("git")
    if not path:
        return "git", False, "not found: install git (apt-get install git)"
    try:
        version = gitops.run(Path.home() if Path.home().is_dir() else Path("/"), "--version").strip()
    except gitops.GitError as exc:
        return "git", False, str(exc)
    return "git", True, version


def _ripgrep() -> Check:
    from tools.search import rg_binary

    try:
        path = rg_binary()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return "ripgrep", False, f"{exc}: pip install ripgrep==14.1.0"
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return "ripgrep", True, version


def _grammars() -> Check:
    try:
        from tree_sitter_language_pack import get_parser

        for name in ("python", "javascript", "typescript", "go", "rust", "java", "c", "cpp"):
            get_parser(name)
    except Exception as exc:  # noqa: BLE001
        return "grammars", False, f"{exc}: pip install tree-sitter-language-pack==0.13.0"
    return "grammars", True, "python, javascript, typescript, go, rust, java, c, cpp (bundled)"


def run_checks() -> Iterator[Check]:
    settings = load_settings()
    yield _key()
    yield _endpoint(settings, api_key_from_env())
    yield _git()
    yield _ripgrep()
    yield _grammars()
    try:
        from sandbox.cli import doctor_checks
    except ImportError as exc:
        yield "docker", False, f"sandbox module unavailable: {exc}"
        return
    yield from doctor_checks(settings.sandbox.python)

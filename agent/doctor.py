"""`agent doctor`: one line per prerequisite, each failure with its fix."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from agent import gitops
from agent.config import load_settings
from agent.fix import api_key_from_env

Check = tuple[str, bool, str]


def _key() -> Check:
    key = api_key_from_env()
    if key:
        return "api key", True, f"set ({len(key)} characters)"
    return "api key", False, "not set: export GLM_API_KEY=... (or ZAI_API_KEY); `agent demo` needs none"


def _endpoint(base_url: str, key: str | None) -> Check:
    url = base_url.rstrip("/") + "/chat/completions"
    try:
        response = httpx.post(url, json={}, headers={"Authorization": f"Bearer {key or 'none'}"}, timeout=8.0)
    except httpx.HTTPError as exc:
        return "endpoint", False, f"{base_url} unreachable ({type(exc).__name__}): set --base-url / AGENT_BASE_URL"
    # An empty body is a bad request: any HTTP answer proves the endpoint is there.
    if response.status_code == 401:
        return "endpoint", False, f"{base_url} answered 401: the key is not accepted"
    return "endpoint", True, f"{base_url} answers (HTTP {response.status_code} to an empty request)"


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
    yield _endpoint(settings.model.base_url, api_key_from_env())
    yield _git()
    yield _ripgrep()
    yield _grammars()
    try:
        from sandbox.cli import doctor_checks
    except ImportError as exc:
        yield "docker", False, f"sandbox module unavailable: {exc}"
        return
    yield from doctor_checks(settings.sandbox.python)

"""Preflight: key, endpoint and sandbox checked before any worktree, image or reproduction.

A wrong key or a stopped Docker engine should cost the user a second, not a
first environment build. Each failure is an EnvironmentProblem: one line, a
fix in English first, the server's own text after it.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import httpx

from agent.config import Settings
from agent.errors import EnvironmentProblem
from agent.model.errors import (
    ACCOUNT_CODES,
    AuthenticationError,
    ModelError,
    OverloadedError,
    RateLimitError,
    ServerError,
    error_from_response,
)
from agent.model.types import Usage
from agent.redact import Redactor

PROBE_TIMEOUT = 30.0  # seconds for the whole one-token answer once connected
KEY_FIX = "check GLM_API_KEY (or ZAI_API_KEY): it must be a key of the endpoint's platform"
# The documented business codes (glm-api.md §4.3), as what the user should do about them.
CODE_HINTS: dict[int, str] = {
    1113: "the account has no balance or resource package: recharge it, or with a GLM Coding Plan key use "
          "--base-url https://api.z.ai/api/coding/paas/v4",
    1211: "the endpoint does not know this model: check --model / AGENT_MODEL (e.g. glm-5.2)",
    1304: "the daily call limit is reached: wait for the reset or raise the limit",
    1308: "the plan's usage window is spent: wait for the reset time below",
    1309: "the GLM Coding Plan has expired: renew it, or use a pay-as-you-go key with "
          "--base-url https://api.z.ai/api/paas/v4",
    1310: "the plan's weekly or monthly limit is reached: wait for the reset time below",
    1311: "the plan has no access to this model: pick another --model or upgrade the plan",
    1313: "the Coding Plan's fair-use throttling is on: try again later",
    1220: "the key has no permission for this API: check the key's platform and plan",
    1221: "this API is offline for the account: check the endpoint (--base-url / AGENT_BASE_URL)",
    1222: "this API does not exist: check the endpoint (--base-url / AGENT_BASE_URL)",
}
STATUS_HINTS: dict[int, str] = {
    404: "no chat-completions API at this address: check --base-url / AGENT_BASE_URL "
         "(it ends before /chat/completions, e.g. https://api.z.ai/api/paas/v4)",
    434: "the key has no permission for this API",
}


def probe_body(settings: Settings) -> dict[str, Any]:
    """The cheapest request the API takes: one output token, thinking off, no tools, not streamed.

    The service has no model-listing endpoint (glm-api.md §1.1), so a one-token completion is the
    check; the profile's `off` fragment turns thinking off the way this backend understands it.
    """
    body: dict[str, Any] = {"model": settings.model.name, "messages": [{"role": "user", "content": "ping"}],
                            "max_tokens": 1, "stream": False}
    body.update(settings.profile().get("off") or {})
    return body


def hint_for(error: ModelError) -> str:
    """An English fix for a model error, by business code, then by kind, then by HTTP status."""
    if error.code in CODE_HINTS:
        return CODE_HINTS[error.code]
    if isinstance(error, AuthenticationError):
        return f"the API key was refused: {KEY_FIX}"
    if error.code in ACCOUNT_CODES:
        return "the account is inactive, locked or missing: check it on the platform's console"
    if error.status in STATUS_HINTS:
        return STATUS_HINTS[error.status]
    return "the endpoint refused a one-token request: check --base-url, --model and --profile"


def check_endpoint(settings: Settings, api_key: str | None, spent: list[Usage] | None = None) -> str | None:
    """Send the probe; raise EnvironmentProblem when key or endpoint is unusable.

    Returns a note when the service only asked to slow down (rate limit, overload, 5xx): the key
    may be fine and the run's own retries handle that, so it is not a reason to stop. The probe is
    billed like any call: its usage goes to `spent`, and the run charges it to its budget.
    """
    url = settings.model.base_url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json; charset=UTF-8", "Accept": "application/json",
               "Accept-Language": "en-US,en"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    redact = Redactor([api_key])
    timeout = httpx.Timeout(PROBE_TIMEOUT, connect=settings.model.connect_timeout)
    try:
        # Plain http needs no certificate store (loading it is a third of a second).
        response = httpx.post(url, content=json.dumps(probe_body(settings)).encode("utf-8"), headers=headers,
                              timeout=timeout, verify=url.startswith("https://"))
    except httpx.TimeoutException:
        raise EnvironmentProblem(f"the endpoint {url} did not answer within {settings.model.connect_timeout:g}s"
                                 f" to connect or {PROBE_TIMEOUT:g}s to reply: check --base-url / "
                                 "AGENT_BASE_URL and the network") from None
    except httpx.HTTPError as exc:
        reason = _reason(exc)
        raise EnvironmentProblem(f"cannot reach the endpoint {url}: check --base-url / AGENT_BASE_URL and the "
                                 f"network ({redact(reason)})") from None
    if response.status_code < 300:
        if spent is not None:
            spent.append(_usage_of(response))
        return None
    error = error_from_response(response.status_code, response.text, response.headers)
    if isinstance(error, (RateLimitError, OverloadedError, ServerError)):
        return f"the endpoint is busy ({redact(str(error))}); the run retries with backoff"
    raise EnvironmentProblem(f"{hint_for(error)} — server said: {redact(str(error))}")


def _usage_of(response: httpx.Response) -> Usage:
    """The probe's usage as the API reported it; its worst case (body bytes + 1) when unreadable."""
    try:
        usage = response.json().get("usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        return Usage(prompt_tokens=int(usage["prompt_tokens"]), cached_tokens=int(cached),
                     completion_tokens=int(usage.get("completion_tokens", 1)))
    except (ValueError, KeyError, TypeError, AttributeError):
        return Usage(prompt_tokens=len(response.request.content), completion_tokens=1)


def _reason(exc: BaseException) -> str:
    """The OS's words for a connection failure (`Connection refused`), not httpx's nested reprs."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        todo += [current.__cause__, current.__context__]
    text = " ".join(str(exc).split())
    return text.removeprefix("[Errno ").split("] ", 1)[-1] if text else type(exc).__name__


def check_docker(python: str, root: Any) -> None:
    """The engine answers and the base image for the project's Python exists; the repository's own
    image may be built later."""
    from sandbox.base import SandboxError
    from sandbox.base_image import base_image_status
    from sandbox.environment import resolve_python

    try:
        version = resolve_python(root, python)
        exists, tag = base_image_status(version)
    except SandboxError as exc:
        raise EnvironmentProblem(str(exc)) from None
    if not exists:
        raise EnvironmentProblem(f"the Docker base image {tag} is missing: build it once with "
                                 f"`agent sandbox build-base --python {version}` (or use --sandbox local)")


def check_interpreter(root: Any, configured: str | None = None) -> None:
    """The interpreter the local sandbox would run the tests with starts."""
    from sandbox.local import repo_python

    python, _, _ = repo_python(root, configured=configured)
    try:
        proc = subprocess.run([python, "-c", "import sys"], capture_output=True, timeout=30,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentProblem(f"the interpreter {python} cannot be started: activate a virtualenv or "
                                 f"create .venv in the repository ({_reason(exc)})") from None
    if proc.returncode != 0:
        raise EnvironmentProblem(f"the interpreter {python} fails to start (exit {proc.returncode}): activate "
                                 "a virtualenv or create .venv in the repository")


def preflight(settings: Settings, api_key: str | None, root: Any, spent: list[Usage] | None = None) -> list[str]:
    """Every check `fix` needs before it touches anything; returns notes for the report (and the
    probe's usage in `spent`)."""
    note = check_endpoint(settings, api_key, spent)
    if settings.sandbox.kind == "docker":
        check_docker(settings.sandbox.python, root)
    elif settings.sandbox.kind == "local":
        check_interpreter(root, settings.sandbox.python)
    return [note] if note else []

"""The GLM chat-completions client over httpx (glm-api.md §2–§7).

One pooled `httpx.Client` per run; streaming by default; retries with capped,
jittered exponential backoff; typed errors; usage and cost per call. Modes map
to request fragments from the profile in settings, never from code.
"""

from __future__ import annotations

import json
import logging
import platform
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from agent.config import ConfigError, ModelSettings, PriceRow, Settings, deep_merge
from agent.model.errors import (
    ConnectionFailedError,
    ContentFilterError,
    ContextOverflowError,
    DeadlineError,
    IncompleteStreamError,
    ModelError,
    ProtocolError,
    StreamError,
    error_from_response,
)
from agent.model.pricing import cost_of
from agent.model.sse import Assembled, SSEParser, StreamAssembler, assemble_message
from agent.model.types import MODES, AttemptBudget, AttemptCost, Completion, ToolCall, Usage
from agent.redact import Redactor
from agent.retry import backoff
from agent.tokens import estimate_json_tokens, estimate_tokens

log = logging.getLogger("agent.model")

FORBIDDEN_EFFORTS = frozenset({"low", "medium", "xhigh"})  # alias traps on GLM-5.2 (glm-api.md §7)
OFF_EFFORTS = frozenset({"none", "minimal"})
RetryHook = Callable[[int, ModelError, float], None]
# Set by the harness after the profile's fragment is merged: a fragment may not change what is billed,
# how much may be generated, or what is sent.
HARNESS_FIELDS = ("model", "messages", "tools", "tool_choice", "stream", "max_tokens", "request_id")
OUTPUT_CAPS = ("max_completion_tokens", "max_new_tokens")  # aliases some servers honour over max_tokens


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("glm-agent")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "0"


USER_AGENT = f"glm-agent/{_version()} (httpx/{httpx.__version__}; python/{platform.python_version()})"


def _efforts(fragment: Any) -> list[str]:
    """Every `reasoning_effort` value anywhere in a request fragment."""
    found: list[str] = []
    if isinstance(fragment, dict):
        for key, value in fragment.items():
            if key == "reasoning_effort":
                found.append(str(value))
            else:
                found.extend(_efforts(value))
    return found


def _thinking_off(fragment: dict[str, Any]) -> bool:
    thinking = fragment.get("thinking")
    kwargs = fragment.get("chat_template_kwargs") or {}
    return ((isinstance(thinking, dict) and thinking.get("type") == "disabled")
            or kwargs.get("enable_thinking") is False
            or any(effort in OFF_EFFORTS for effort in _efforts(fragment)))


def validate_profile(profile: dict[str, Any], name: str = "profile") -> None:
    """Raise ConfigError unless every mode states its effort explicitly and none is an alias trap."""
    for mode in MODES:
        fragment = profile.get(mode)
        if not isinstance(fragment, dict):
            raise ConfigError(f"model profile {name!r} has no [{mode}] request fragment")
        efforts = _efforts(fragment)
        bad = sorted(FORBIDDEN_EFFORTS.intersection(efforts))
        if bad:
            raise ConfigError(f"model profile {name!r} mode {mode!r} would send reasoning_effort={bad[0]!r};"
                              " GLM-5.2 only takes 'high' or 'max' (low/medium/xhigh alias silently)")
        if mode == "off":
            if not _thinking_off(fragment):
                raise ConfigError(f"model profile {name!r} mode 'off' does not disable thinking")
        elif mode not in efforts:
            raise ConfigError(f"model profile {name!r} mode {mode!r} must send reasoning_effort={mode!r}"
                              " explicitly (the server default is max)")


def usage_from(raw: dict[str, Any] | None) -> Usage:
    raw = raw or {}
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


class _RetryWithoutToolStream(Exception):
    """Streamed tool arguments did not parse; replay once with whole calls (glm-api.md §3.3.4 note)."""

    def __init__(self, usage: Usage | None) -> None:
        super().__init__("tool arguments not valid JSON")
        self.usage = usage  # the unusable answer was still generated, and billed


class GLMClient:
    """`ModelClient` for Z.ai GLM and OpenAI-compatible vLLM/SGLang endpoints."""

    def __init__(self, settings: ModelSettings, profile: dict[str, Any], api_key: str | None,
                 prices: dict[str, PriceRow] | None = None, *, profile_name: str | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: Callable[[], float] = random.random,
                 on_retry: RetryHook | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.profile_name = profile_name or settings.profile
        validate_profile(profile, self.profile_name)
        self.profile = profile
        self.self_hosted = bool(profile.get("self_hosted"))
        self.prices = prices or {}
        self._api_key = api_key
        self._redact = Redactor([api_key])
        self._sleep = sleep
        self._rng = rng
        self._on_retry = on_retry
        self.url = settings.base_url.rstrip("/") + "/chat/completions"
        timeout = httpx.Timeout(settings.idle_timeout, connect=settings.connect_timeout)
        self._http = httpx.Client(timeout=timeout, transport=transport, headers={"User-Agent": USER_AGENT})

    def __repr__(self) -> str:
        return (f"GLMClient(url={self.url!r}, model={self.settings.name!r}, profile={self.profile_name!r}, "
                f"key={'set' if self._api_key else 'none'})")

    def __enter__(self) -> GLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- request -------------------------------------------------------------------------------

    def build_body(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], mode: str, *,
                   request_id: str, stream: bool | None = None, tool_stream: bool | None = None,
                   max_tokens: int | None = None) -> dict[str, Any]:
        """The exact JSON body for one attempt.

        The mode's fragment is merged, then the harness fields are set again: a profile can tune
        thinking, never raise the output allowance the budget granted or change the billed model.
        """
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        stream = self.settings.stream if stream is None else stream
        tool_stream = self.settings.tool_stream if tool_stream is None else tool_stream
        body: dict[str, Any] = {"model": self.settings.name, "messages": messages}
        if tools:
            body["tools"] = tools
            body["tool_choice"] = "auto"
        body["stream"] = stream
        if stream and tool_stream and tools and not self.self_hosted:
            body["tool_stream"] = True
        if stream and self.self_hosted:
            body["stream_options"] = {"include_usage": True}
        body["max_tokens"] = min(max_tokens, self.settings.max_tokens) if max_tokens else self.settings.max_tokens
        if self.settings.temperature is not None:
            body["temperature"] = self.settings.temperature
        body["request_id"] = request_id
        fixed = {key: body[key] for key in HARNESS_FIELDS if key in body}
        body = deep_merge(body, self.profile[mode])
        for key in HARNESS_FIELDS:
            body.pop(key, None)
        for key in OUTPUT_CAPS:
            body.pop(key, None)
        body.update(fixed)
        return body

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "Accept": "text/event-stream" if stream else "application/json",
            "Accept-Language": "en-US,en",
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    # ---- the call ------------------------------------------------------------------------------

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], mode: str, *,
                 max_tokens: int | None = None, budget: AttemptBudget | None = None) -> Completion:
        """One model turn, assembled; retries transient failures; raises a ModelError otherwise.

        `max_tokens` caps this call's output below the configured limit (the budget's allowance).
        With `budget`, every failed attempt is charged (its usage, else its worst case) and every
        retry or resend asks for its allowance first, so retries cannot outspend the limits.
        """
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        call_id = f"agent-{uuid.uuid4().hex[:20]}"
        tool_stream = self.settings.tool_stream
        retries: list[dict[str, Any]] = []
        attempt = 0
        started = time.monotonic()
        while True:
            attempt += 1
            left = budget.seconds_left() if budget is not None else None
            deadline = None if left is None else time.monotonic() + left
            request_id = f"{call_id}-{attempt}"
            body = self.build_body(messages, tools, mode, request_id=request_id, tool_stream=tool_stream,
                                   max_tokens=max_tokens)
            try:
                completion = self._attempt(body, mode, allow_fallback=tool_stream and "tool_stream" in body,
                                           deadline=deadline)
            except _RetryWithoutToolStream as resend:
                tool_stream = False
                retries.append({"attempt": attempt, "error": "tool arguments not valid JSON", "wait": 0.0})
                log.info("model: streamed tool arguments unparseable; retrying without tool_stream")
                if budget is not None:
                    budget.failed(AttemptCost("tool arguments not valid JSON", resend.usage,
                                              output=body["max_tokens"]))
                    max_tokens = budget.next_allowance()
                continue
            except ModelError as err:
                err.message = self._redact(err.message)
                err.args = (err.message,)
                err.attempts = attempt
                if budget is not None:
                    budget.failed(err.cost or _worst_case(err, body["max_tokens"]))
                if not err.retryable or attempt > self.settings.max_retries:
                    log.warning("model: %s", self._redact(str(err)))
                    raise
                if budget is not None:
                    max_tokens = budget.next_allowance()
                wait = self.backoff(err, attempt)
                retries.append({"attempt": attempt, "error": self._redact(str(err)), "wait": wait})
                log.info("model: attempt %d failed (%s); retrying in %.2fs", attempt, self._redact(str(err)),
                         wait)
                if self._on_retry is not None:
                    self._on_retry(attempt, err, wait)
                self._sleep(wait if deadline is None else min(wait, max(deadline - time.monotonic(), 0.0)))
                if budget is not None:
                    max_tokens = budget.next_allowance()  # the wait spent time: ask again (a time limit stops here)
                continue
            completion.attempts = attempt
            completion.extra["retries"] = retries
            completion.extra["seconds"] = round(time.monotonic() - started, 3)
            return completion

    def backoff(self, err: ModelError, attempt: int) -> float:
        """Seconds before retry `attempt + 1`: the server's hint if any, else capped jittered exponential."""
        if err.overload:
            base, cap = self.settings.overload_backoff_base, self.settings.overload_backoff_cap
        else:
            base, cap = self.settings.backoff_base, self.settings.backoff_cap
        if err.retry_after is not None:
            return min(err.retry_after, max(cap, self.settings.overload_backoff_cap))
        return backoff(attempt, base, cap, self._rng)

    def _attempt(self, body: dict[str, Any], mode: str, *, allow_fallback: bool,
                 deadline: float | None = None) -> Completion:
        """One HTTP exchange; with a `deadline` (monotonic), no wait or read runs past it."""
        stream = bool(body.get("stream"))
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        timeout, left = self._http.timeout, float("inf")
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._deadline(body, sent=False)
            timeout = httpx.Timeout(min(self.settings.idle_timeout, left),
                                    connect=min(self.settings.connect_timeout, left))
        try:
            with self._http.stream("POST", self.url, content=payload, headers=self._headers(stream),
                                   timeout=timeout) as resp:
                if resp.status_code >= 300:
                    text = resp.read().decode("utf-8", errors="replace")
                    raise error_from_response(resp.status_code, text, resp.headers)
                if stream and "text/event-stream" in resp.headers.get("content-type", ""):
                    assembled = self._read_stream(resp, int(body["max_tokens"]), deadline)
                else:
                    assembled = self._read_json(resp)
        except httpx.TimeoutException as exc:
            connecting = isinstance(exc, httpx.ConnectTimeout)
            if left < (self.settings.connect_timeout if connecting else self.settings.idle_timeout):
                raise self._deadline(body, sent=not connecting) from None  # the deadline set this timeout
            phase = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
            limit = self.settings.connect_timeout if phase == "connect" else self.settings.idle_timeout
            cls = ConnectionFailedError if phase == "connect" else StreamError
            raise cls(f"{phase} timed out after {limit:g}s ({self.url})") from None
        except httpx.ConnectError as exc:
            raise ConnectionFailedError(f"cannot connect to {self.url}: {self._redact(str(exc))}") from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise IncompleteStreamError(f"connection dropped: {self._redact(str(exc))}") from None
        except httpx.HTTPError as exc:
            raise ConnectionFailedError(f"{type(exc).__name__}: {self._redact(str(exc))}") from None
        return self._finish(assembled, body, mode, allow_fallback=allow_fallback)

    def _deadline(self, body: dict[str, Any], *, sent: bool) -> DeadlineError:
        """The run's time ran out during an attempt; charged as its worst case once the request went out."""
        err = DeadlineError("the run's time limit passed during a model call; the client hung up")
        err.cost = AttemptCost(err.kind, prompt=sent, output=int(body["max_tokens"]) if sent else 0)
        return err

    def _read_stream(self, resp: httpx.Response, max_tokens: int, deadline: float | None = None) -> Assembled:
        """The assembled stream; stops reading once it has provably passed `max_tokens`.

        Every non-empty delta carries at least one generated token, so more deltas than the
        allowance means the server ignores it: reading on would only run up the bill.
        """
        parser, assembler = SSEParser(), StreamAssembler()
        try:
            for line in resp.iter_lines():
                event = parser.feed_line(line)
                if event is not None and assembler.feed_event(*event):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise DeadlineError(f"the run's time limit passed {assembler.chunks} chunks into a "
                                        "stream; the client hung up")
                if assembler.output_deltas > max_tokens:
                    err = ProtocolError(f"the server streamed past max_tokens={max_tokens} "
                                        f"({assembler.output_deltas} deltas); stopped reading")
                    err.cost = AttemptCost("stream past max_tokens", output=max_tokens)
                    raise err
            else:
                tail = parser.flush()
                if tail is not None:
                    assembler.feed_event(*tail)
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if assembler.finish_reason is None:
                raise IncompleteStreamError(f"stream dropped after {assembler.chunks} chunks: "
                                            f"{self._redact(str(exc))}") from None
        except httpx.ReadTimeout:
            raise StreamError(f"stream idle for {self.settings.idle_timeout:g}s after "
                              f"{assembler.chunks} chunks") from None
        return assembler.result()

    def _read_json(self, resp: httpx.Response) -> Assembled:
        text = resp.read().decode("utf-8", errors="replace")
        try:
            body = json.loads(text)
        except ValueError:
            raise ProtocolError(f"response is not JSON: {self._redact(text[:120])!r}") from None
        if not isinstance(body, dict):
            raise ProtocolError("response is not a JSON object")
        if body.get("error"):
            raise error_from_response(resp.status_code, text, resp.headers)
        if not body.get("choices"):
            raise ProtocolError("response has no choices")
        return assemble_message(body)

    # ---- policy on the assembled turn (glm-api.md §3.2, §3.3.4, §6) ------------------------------

    def _finish(self, a: Assembled, body: dict[str, Any], mode: str, *, allow_fallback: bool) -> Completion:
        reason = a.finish_reason
        if reason is None:
            if not a.done:
                raise IncompleteStreamError(
                    f"stream ended without finish_reason or [DONE] after {a.chunks} chunks")
            reason = "unknown"
        if reason == "sensitive":
            raise _billed(ContentFilterError("generation withdrawn by content safety (finish_reason=sensitive)",
                                             content_filter=a.content_filter, request_id=a.response_id or None), a)
        if reason == "network_error":
            raise _billed(StreamError("server reported network_error mid-generation",
                                      request_id=a.response_id or None), a)
        extra: dict[str, Any] = {"profile": self.profile_name}
        calls: list[ToolCall] = []
        unusable: list[dict[str, Any]] = []
        invalid = False
        for slot in a.calls:
            call = ToolCall(id=slot["id"] or f"call_{uuid.uuid4().hex[:24]}", name=slot["name"],
                            arguments=slot["arguments"] or "{}")
            ok = bool(call.name)
            try:
                ok = ok and isinstance(json.loads(call.arguments), dict)
            except ValueError:
                ok = False
            if reason in ("length", "model_context_window_exceeded"):
                if not ok:
                    unusable.append({"id": call.id, "name": call.name, "arguments": call.arguments})
                    continue
            elif not ok:
                invalid = True
            calls.append(call)
        if invalid and allow_fallback:
            raise _RetryWithoutToolStream(usage_from(a.usage) if a.usage else None)
        if invalid:
            extra["invalid_tool_calls"] = [c.id for c in calls if not _parses(c.arguments)]
        if unusable:
            extra["incomplete_tool_calls"] = unusable  # truncated: never execute these
        content, reasoning = a.content, a.reasoning
        if (self.self_hosted and reason == "stop" and not content.strip() and not calls and reasoning):
            content, reasoning = reasoning, ""  # SGLang #37645: the answer landed in reasoning
            extra["reasoning_promoted"] = True
        usage = usage_from(a.usage)
        if a.usage is None:
            usage = self._estimate_usage(body, content, reasoning, calls)
            extra["usage_estimated"] = True
        extra["cost"] = cost_of(usage, self.prices)
        if not self.prices:
            extra["unpriced"] = True
        if a.content_filter:
            extra["content_filter"] = a.content_filter
        completion = Completion(content=content, tool_calls=calls, finish_reason=reason, usage=usage,
                                reasoning=reasoning or None, model=a.model or self.settings.name,
                                request_id=a.response_id or str(body.get("request_id", "")), mode=mode,
                                extra=extra)
        if reason == "model_context_window_exceeded":
            overflow = ContextOverflowError("model context window exceeded during generation "
                                            "(finish_reason=model_context_window_exceeded)",
                                            partial=completion, request_id=completion.request_id or None)
            overflow.cost = AttemptCost("context overflow mid-generation", usage)
            raise overflow
        return completion

    @staticmethod
    def _estimate_usage(body: dict[str, Any], content: str, reasoning: str, calls: list[ToolCall]) -> Usage:
        """No usage from the server: the upper bound (agent/tokens.py), output capped by max_tokens."""
        cap = int(body.get("max_tokens") or 1 << 62)
        prompt = estimate_json_tokens(body.get("messages", [])) + estimate_json_tokens(body.get("tools", []))
        out = estimate_tokens(content + reasoning + "".join(c.name + c.arguments for c in calls))
        return Usage(prompt_tokens=prompt, completion_tokens=min(out, cap),
                     reasoning_tokens=min(estimate_tokens(reasoning), cap))


def _billed(err: ModelError, a: Assembled) -> ModelError:
    """Attach the server's usage to an error raised after generation, so it is charged as billed."""
    if a.usage:
        err.cost = AttemptCost(err.kind, usage_from(a.usage))
    return err


def _worst_case(err: ModelError, max_tokens: int) -> AttemptCost:
    """What a failed attempt may be billed when the server did not say.

    An HTTP error answer (429, 4xx, 5xx) came instead of a generation: no output; a 5xx may still
    have read the prompt, a 429/4xx was refused before the model ran. A failed connect sent
    nothing. Anything else (dropped or stalled stream, network_error without usage) may have
    generated up to the attempt's max_tokens.
    """
    if err.status is not None:
        return AttemptCost(err.kind, prompt=err.status >= 500, output=0)
    if isinstance(err, ConnectionFailedError) and err.message.startswith(("cannot connect", "connect timed out")):
        return AttemptCost(err.kind, prompt=False, output=0)
    return AttemptCost(err.kind, output=max_tokens)


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def client_from_settings(settings: Settings, api_key: str | None, **kwargs: Any) -> GLMClient:
    """The client for the configured endpoint, profile and price rows."""
    return GLMClient(settings.model, settings.profile(), api_key, settings.prices(),
                     profile_name=settings.model.profile, **kwargs)

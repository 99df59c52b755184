"""Typed model errors and the parser for every GLM error envelope (glm-api.md §4).

All errors derive from `ModelError` (the CLI maps it to exit 3) and print as one
line. `retryable` says whether the client may replay the request; `overload`
selects the longer backoff schedule.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agent.model.types import AttemptCost
from agent.retry import parse_retry_after

# Business codes (glm-api.md §4.3).
AUTH_CODES = frozenset(range(1000, 1005))
ACCOUNT_CODES = frozenset({1110, 1111, 1112, 1121})
QUOTA_CODES = frozenset({1113, 1304, 1308, 1309, 1310, 1311, 1313})
RATE_CODES = frozenset({1302, 1303})
OVERLOAD_CODES = frozenset({1305, 1312})
TRANSIENT_CODES = frozenset({1120, 1230, 1234})
OVERFLOW_WORDING = re.compile(r"(?i)(more than max tokens|exceeds? (the )?max(imum)? (length|context)|"
                              r"context (length|window)|prompt exceeds)")
_BRACKET_CODE = re.compile(r"^\s*\[(\d{3,5})\]")
_RESET_AT = re.compile(r"(?i)reset (?:at|on)\s+([0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:]{5,8})")


class ModelError(Exception):
    """Base of every model-call failure; `str()` is a single line without secrets."""

    retryable = False
    overload = False
    kind = "model error"

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None,
                 request_id: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.attempts = 1
        self.cost: AttemptCost | None = None  # what this attempt may be billed, when the client knows

    def __str__(self) -> str:
        parts = [self.kind]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        head = " ".join(parts)
        text = " ".join(self.message.split())  # one line, always
        tail = f" (after {self.attempts} attempts)" if self.attempts > 1 else ""
        rid = f" [request {self.request_id}]" if self.request_id else ""
        return f"{head}: {text}{tail}{rid}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class AuthenticationError(ModelError):
    kind = "authentication failed"


class AccountError(ModelError):
    kind = "account unusable"


class QuotaExhaustedError(ModelError):
    """Balance, package or time-boxed quota is spent; retrying now cannot help."""

    kind = "quota exhausted"

    def __init__(self, message: str, *, reset_at: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reset_at = reset_at

    def __str__(self) -> str:
        base = super().__str__()
        if self.reset_at and self.reset_at not in self.message:
            base += f" (resets at {self.reset_at})"
        return base


class BadRequestError(ModelError):
    kind = "bad request"


class ModelNotFoundError(BadRequestError):
    kind = "unknown model"


class ContextOverflowError(ModelError):
    """The prompt (or prompt + output) exceeds the model window: compact the history and retry."""

    kind = "context window exceeded"

    def __init__(self, message: str, *, partial: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.partial = partial


class ContentFilterError(ModelError):
    """Content safety blocked the input or output; the partial output is withdrawn."""

    kind = "content filtered"

    def __init__(self, message: str, *, content_filter: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.content_filter = content_filter


class RateLimitError(ModelError):
    retryable = True
    kind = "rate limited"


class OverloadedError(ModelError):
    retryable = True
    overload = True
    kind = "service overloaded"


class ServerError(ModelError):
    retryable = True
    kind = "server error"


class ConnectionFailedError(ModelError):
    """Could not connect, or the connection failed before a response."""

    retryable = True
    kind = "connection failed"


class StreamError(ModelError):
    """The stream broke after it started (idle timeout, error frame, network_error)."""

    retryable = True
    kind = "stream failed"


class StreamCorruptedError(StreamError):
    kind = "stream corrupted"


class IncompleteStreamError(StreamError):
    kind = "stream ended early"


class DeadlineError(ModelError):
    """The run's time limit passed during a call: the client hung up; never retried."""

    kind = "time limit"


class ProtocolError(ModelError):
    """The server answered 200 with something that is not a chat completion."""

    kind = "unexpected response"


def _to_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def parse_envelope(body: Any) -> tuple[int | None, str, str | None, Any]:
    """(code, message, request_id, content_filter) from any envelope shape A/A'/B/C/D."""
    if not isinstance(body, dict):
        return None, str(body or "")[:500], None, None
    err = body.get("error") if isinstance(body.get("error"), dict) else body
    message = err.get("message") or body.get("msg") or body.get("message") or ""
    if not isinstance(message, str):
        message = json.dumps(message, ensure_ascii=False)
    code = _to_int(err.get("code"))
    if code is None:
        found = _BRACKET_CODE.match(message)
        code = int(found.group(1)) if found else None
    rid = body.get("request_id") or body.get("id")
    request_id = rid if isinstance(rid, str) else None
    content_filter = body.get("contentFilter") or body.get("content_filter") or err.get("contentFilter")
    return code, message, request_id, content_filter


def classify(code: int | None, message: str, *, status: int | None = None, request_id: str | None = None,
             content_filter: Any = None, retry_after: float | None = None,
             should_retry: str | None = None) -> ModelError:
    """The typed error for a business code and/or HTTP status (glm-api.md §4.3, §4.4)."""
    kw: dict[str, Any] = {"code": code, "status": status, "request_id": request_id,
                          "retry_after": retry_after}
    message = message or (f"HTTP {status}" if status else "no message")
    err: ModelError
    if code in AUTH_CODES or status == 401:
        err = AuthenticationError(message, **kw)
    elif code in ACCOUNT_CODES:
        err = AccountError(message, **kw)
    elif code in QUOTA_CODES:
        found = _RESET_AT.search(message)
        err = QuotaExhaustedError(message, reset_at=found.group(1) if found else None, **kw)
    elif code == 1261 or (code in (1200, 1210, None) and OVERFLOW_WORDING.search(message)):
        err = ContextOverflowError(message, **kw)
    elif code == 1211:
        err = ModelNotFoundError(message, **kw)
    elif code == 1301:
        err = ContentFilterError(message, content_filter=content_filter, **kw)
    elif code in RATE_CODES:
        err = RateLimitError(message, **kw)
    elif code in OVERLOAD_CODES:
        err = OverloadedError(message, **kw)
    elif code in TRANSIENT_CODES:
        err = ServerError(message, **kw)
    elif status is not None and (status >= 500 or status in (408, 409)):
        err = ServerError(message, **kw)
    elif status == 429:
        err = RateLimitError(message, **kw)  # a 429 with no parseable code
    elif code is not None and code >= 500 and status is None:
        err = ServerError(message, **kw)  # in-stream error frame with an HTTP-like code
    elif code is not None and 1200 <= code < 1400:
        err = BadRequestError(message, **kw)
    elif status is None:
        err = StreamError(message, **kw)  # unknown in-stream error: transient by default
    else:
        err = BadRequestError(message, **kw)
    if should_retry is not None:  # the server's explicit hint wins (x-should-retry)
        hinted = should_retry.strip().lower()
        if hinted in ("true", "false") and not isinstance(err, (QuotaExhaustedError, AuthenticationError)):
            err.retryable = hinted == "true"
    return err


def error_from_response(status: int, text: str, headers: Any = None) -> ModelError:
    """Typed error for a non-2xx HTTP response."""
    try:
        body: Any = json.loads(text) if text else {}
    except ValueError:
        body = text
    code, message, request_id, content_filter = parse_envelope(body)
    retry_after = parse_retry_after(headers, message)
    should_retry = headers.get("x-should-retry") if headers is not None else None
    return classify(code, message, status=status, request_id=request_id, content_filter=content_filter,
                    retry_after=retry_after, should_retry=should_retry)


def error_from_frame(obj: dict[str, Any]) -> ModelError:
    """Typed error for an in-stream `data: {"error": ...}` frame."""
    code, message, request_id, content_filter = parse_envelope(obj)
    return classify(code, message, request_id=request_id, content_filter=content_filter)

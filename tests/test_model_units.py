"""Pure parts of the model boundary: error envelopes, Retry-After, SSE assembly, redaction, pricing."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from agent.config import PriceRow
from agent.model.errors import (
    ContentFilterError,
    ContextOverflowError,
    ModelError,
    OverloadedError,
    QuotaExhaustedError,
    RateLimitError,
    ServerError,
    StreamCorruptedError,
    error_from_frame,
    error_from_response,
    parse_envelope,
)
from agent.model.pricing import cost_of
from agent.model.sse import SSEParser, assemble_lines, assemble_message
from agent.model.types import Usage
from agent.redact import Redactor, redact
from agent.retry import parse_retry_after


@pytest.mark.parametrize(
    "body,code,rid",
    [
        ({"error": {"code": "1113", "message": "Insufficient balance"}}, 1113, None),
        (
            {"error": {"code": "1302", "message": "Rate limit"}, "request_id": "2026021206414457"},
            1302,
            "2026021206414457",
        ),
        (
            {"contentFilter": [{"level": 1, "role": "user"}], "error": {"code": "1301", "message": "unsafe"}},
            1301,
            None,
        ),
        ({"code": 1305, "message": "The service may be temporarily overloaded"}, 1305, None),
        (
            {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "[1305][busy][20260708]"},
                "request_id": "r-123456",
            },
            1305,
            "r-123456",
        ),
    ],
)
def test_every_envelope_shape_parses(body, code, rid):
    got_code, message, request_id, _ = parse_envelope(body)
    assert got_code == code and message and request_id == rid


@pytest.mark.parametrize(
    "status,body,error,retryable",
    [
        (429, {"error": {"code": "1302", "message": "Rate limit"}}, RateLimitError, True),
        (429, {"code": 1305, "message": "overloaded"}, OverloadedError, True),
        (429, {"error": {"code": "1312", "message": "model overloaded"}}, OverloadedError, True),
        (429, {"error": {"code": "1304", "message": "daily limit"}}, QuotaExhaustedError, False),
        (
            400,
            {"error": {"code": "1210", "message": "tokens in request more than max tokens allowed"}},
            ContextOverflowError,
            False,
        ),
        (
            400,
            {"error": {"code": "1261", "message": "Prompt exceeds max length"}},
            ContextOverflowError,
            False,
        ),
        (
            400,
            {"contentFilter": [{"level": 2, "role": "user"}], "error": {"code": "1301", "message": "x"}},
            ContentFilterError,
            False,
        ),
        (502, "<html>bad gateway</html>", ServerError, True),
        (429, "", RateLimitError, True),
    ],
)
def test_error_classification(status, body, error, retryable):
    text = body if isinstance(body, str) else json.dumps(body)
    err = error_from_response(status, text, {})
    assert type(err) is error and err.retryable is retryable and isinstance(err, ModelError)
    assert "\n" not in str(err)


def test_x_should_retry_header_wins():
    err = error_from_response(400, '{"error":{"code":"1234","message":"net"}}', {"x-should-retry": "false"})
    assert err.retryable is False


def test_in_stream_error_frames():
    assert isinstance(error_from_frame({"error": {"code": "1234", "message": "Network error"}}), ServerError)
    assert error_from_frame({"error": {"code": "1234", "message": "x"}}).retryable
    assert isinstance(error_from_frame({"error": {"code": "1261", "message": "x"}}), ContextOverflowError)


def test_retry_after_forms():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    now = 1_800_000_000.0
    assert parse_retry_after({"retry-after": formatdate(now + 12, usegmt=True)}, now=now) == pytest.approx(
        12, abs=1
    )
    assert parse_retry_after({}, "quota hit, retry-after-ms=1200") == 1.2
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after(None) is None


def _frame(obj) -> list[str]:
    return ["data: " + json.dumps(obj), ""]


def test_sse_assembly_tolerates_comments_events_nulls_and_usage_only_chunks():
    lines = [": keep-alive", ""]
    lines += _frame(
        {
            "id": "r1",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": None,
                    "delta": {"role": "assistant", "reasoning": "th", "content": None},
                }
            ],
        }
    )
    lines += _frame(
        {"choices": [{"delta": {"role": "assistant", "reasoning_content": "ink", "content": "A"}}]}
    )
    lines += _frame(
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"id": "c1", "function": {"name": "f", "arguments": "{"}},
                            {"id": "c2", "function": {"name": "g"}},
                        ]
                    }
                }
            ]
        }
    )
    lines += _frame(
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "}"}}]
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        }
    )
    lines += _frame({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
    lines += ["data: [DONE]", ""]
    out = assemble_lines(lines)
    assert (out.reasoning, out.content, out.finish_reason, out.done) == ("think", "A", "tool_calls", True)
    assert out.calls == [
        {"id": "c1", "name": "f", "arguments": "{}"},
        {"id": "c2", "name": "g", "arguments": ""},
    ]
    assert out.usage == {"prompt_tokens": 5, "completion_tokens": 2} and out.response_id == "r1"


def test_sse_multiline_data_and_error_event():
    parser = SSEParser()
    assert parser.feed_line("event: error") is None
    assert parser.feed_line('data: {"code": 1305,') is None
    assert parser.feed_line('data: "message": "busy"}') is None
    event, data = parser.feed_line("")
    assert event == "error" and json.loads(data) == {"code": 1305, "message": "busy"}
    with pytest.raises(OverloadedError):
        assemble_lines(["event: error", 'data: {"code": 1305, "message": "busy"}', ""])


@pytest.mark.parametrize(
    "lines",
    [
        ['data: {"choices": [{"delta": {"content": "a"}}]}{"choices": []}', ""],
        ['data: {"choices": [{"delta": {"cont', ""],
        ['data: {"choices": []}', 'data: {"choices": []}', ""],
        ['{"choices": []}', ""],
    ],
)
def test_sse_corruption_is_never_skipped(lines):
    with pytest.raises(StreamCorruptedError):
        assemble_lines(lines)


def test_last_frame_without_blank_line_still_counts():
    out = assemble_lines(['data: {"choices": [{"delta": {"content": "x"}, "finish_reason": "stop"}]}'])
    assert out.content == "x" and out.finish_reason == "stop" and not out.done


def test_non_stream_message_with_object_arguments_and_null_content():
    out = assemble_message(
        {
            "choices": [
                {
                    "finish_reason": "tool_calls",
                    "message": {
                        "content": None,
                        "reasoning": "r",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}],
                    },
                }
            ]
        }
    )
    assert out.content == "" and out.reasoning == "r" and out.calls[0]["arguments"] == '{"a": 1}'


def test_redactor():
    red = Redactor(["sk-abcdef123456", None, "ab"])
    text = "key sk-abcdef123456 in Authorization: Bearer sk-abcdef123456 and Bearer otherToken12345 ab"
    out = red(text)
    assert "sk-abcdef123456" not in out and "otherToken12345" not in out and out.endswith(" ab")
    assert red.redact_obj({"h": ["x sk-abcdef123456"], "n": 3}) == {"h": ["x ***"], "n": 3}
    assert redact("a secret-value b", ["secret-value"]) == "a *** b"
    assert "sk-" not in repr(red)


def test_cost_formula():
    prices = {
        "usd": PriceRow(input=1.40, cached_input=0.26, output=4.40),
        "rmb": PriceRow(input=8.0, cached_input=2.0, output=28.0),
    }
    cost = cost_of(Usage(prompt_tokens=1_000_000, cached_tokens=400_000, completion_tokens=100_000), prices)
    assert cost["usd"] == pytest.approx(0.6 * 1.40 + 0.4 * 0.26 + 0.1 * 4.40)
    assert cost["rmb"] == pytest.approx(0.6 * 8 + 0.4 * 2 + 0.1 * 28)
    assert cost_of(Usage(10, 0, 10), {}) == {"usd": 0.0, "rmb": 0.0}

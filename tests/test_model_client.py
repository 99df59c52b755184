"""The GLM client against the fake GLM server over real HTTP: assembly, modes, faults, retries, waits."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from agent.config import ConfigError, load_settings
from agent.model.client import GLMClient, client_from_settings, validate_profile
from agent.model.errors import (
    AuthenticationError,
    BadRequestError,
    ConnectionFailedError,
    ContentFilterError,
    ContextOverflowError,
    DeadlineError,
    IncompleteStreamError,
    ModelError,
    ModelNotFoundError,
    QuotaExhaustedError,
    RateLimitError,
    ServerError,
    StreamCorruptedError,
    StreamError,
)
from agent.model.pricing import cost_of
from agent.model.types import AttemptCost, ToolCall, Usage
from evals.fake_glm import FakeGLM, canonical_text, effective_effort
from evals.fake_glm.cache import common_prefix_len

KEY = "sk-test-Secret0123456789abcdef"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "view",
            "description": "Show a file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]
MESSAGES = [
    {"role": "system", "content": "You are a coding agent."},
    {"role": "user", "content": "Fix tests/test_cart.py::test_discount"},
]
CALLS = [
    {"id": "call_a1", "name": "view", "arguments": {"path": "src/cart.py"}},
    {"id": "call_b2", "name": "search", "arguments": {"pattern": "def discount", "glob": "*.py"}},
]
EXPECTED_CALLS = [
    ToolCall("call_a1", "view", '{"path": "src/cart.py"}'),
    ToolCall("call_b2", "search", '{"pattern": "def discount", "glob": "*.py"}'),
]


class Harness:
    def __init__(self) -> None:
        self.servers: list[FakeGLM] = []
        self.clients: list[GLMClient] = []
        self.waits: list[float] = []

    def server(self, turns=None, **kw) -> FakeGLM:
        kw.setdefault("api_key", KEY)
        srv = FakeGLM(turns, **kw).start()
        self.servers.append(srv)
        return srv

    def client(
        self,
        srv: FakeGLM | None = None,
        *,
        base_url: str | None = None,
        profile: str = "zai",
        key: str | None = KEY,
        **model,
    ) -> GLMClient:
        overrides = {"model.base_url": base_url or srv.base_url, "model.profile": profile}
        overrides.update({f"model.{k}": v for k, v in model.items()})
        settings = load_settings(overrides=overrides, env={})
        client = client_from_settings(settings, key, sleep=self.waits.append, rng=lambda: 0.0)
        self.clients.append(client)
        return client


@pytest.fixture
def h():
    harness = Harness()
    yield harness
    for client in harness.clients:
        client.close()
    for srv in harness.servers:
        srv.stop()


# ---- happy paths ---------------------------------------------------------------------------------


def test_streamed_text_with_reasoning_usage_cost_and_request_shape(h):
    srv = h.server([{"reasoning": "The user wants a fix.", "content": "Done: fixed the discount."}])
    client = h.client(srv)
    out = client.complete(MESSAGES, TOOLS, "high")
    assert (out.content, out.reasoning, out.finish_reason) == (
        "Done: fixed the discount.",
        "The user wants a fix.",
        "stop",
    )
    assert out.tool_calls == [] and out.attempts == 1 and h.waits == []
    assert out.usage.prompt_tokens == srv.count_tokens(canonical_text(srv.requests[0]))
    assert out.usage.completion_tokens > 0 and out.usage.reasoning_tokens == srv.count_tokens("The user wants a fix.")
    prices = load_settings(env={}).prices()
    assert out.extra["cost"] == cost_of(out.usage, prices) and out.extra["cost"]["usd"] > 0
    assert out.mode == "high"
    body = srv.requests[0]
    assert body["reasoning_effort"] == "high" and body["thinking"] == {
        "type": "enabled",
        "clear_thinking": False,
    }
    assert body["stream"] is True and body["tool_stream"] is True and body["tool_choice"] == "auto"
    assert body["tools"] == TOOLS and body["messages"] == MESSAGES and "stream_options" not in body
    assert 6 <= len(body["request_id"]) <= 64 and out.request_id == body["request_id"]
    headers = srv.request_headers[0]
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["user-agent"].startswith("glm-agent/") and "httpx" in headers["user-agent"]


@pytest.mark.parametrize("variant", [None, "B1", "B2"])
@pytest.mark.parametrize("fragment", [1, 3, 64])
def test_tool_calls_assemble_identically_in_every_stream_variant(h, variant, fragment):
    srv = h.server(
        [{"reasoning": "Read the code first.", "content": "Looking.", "tool_calls": CALLS}],
        tool_stream_variant=variant or "B1",
        fragment_size=fragment,
    )
    client = h.client(srv, tool_stream=variant is not None)
    out = client.complete(MESSAGES, TOOLS, "max")
    assert out.tool_calls == EXPECTED_CALLS
    assert (out.content, out.reasoning, out.finish_reason) == (
        "Looking.",
        "Read the code first.",
        "tool_calls",
    )
    assert out.usage.prompt_tokens > 0 and out.attempts == 1
    assert ("tool_stream" in srv.requests[0]) is (variant is not None)
    assert out.to_message()["tool_calls"][1]["function"]["name"] == "search"


def test_non_streaming_path(h):
    srv = h.server([{"reasoning": "Think.", "tool_calls": CALLS}, {"content": "All good."}])
    client = h.client(srv, stream=False)
    out = client.complete(MESSAGES, TOOLS, "high")
    assert (
        out.tool_calls == EXPECTED_CALLS and out.finish_reason == "tool_calls" and out.reasoning == "Think."
    )
    assert out.content == ""
    assert srv.requests[0]["stream"] is False and "tool_stream" not in srv.requests[0]
    assert client.complete(MESSAGES, TOOLS, "high").content == "All good."


@pytest.mark.parametrize(
    "profile,flavor", [("zai", "zai"), ("zai-coding", "zai"), ("vllm", "vllm"), ("sglang", "sglang")]
)
@pytest.mark.parametrize("mode", ["off", "high", "max"])
def test_modes_map_to_profile_fragments_with_explicit_effort(h, profile, flavor, mode):
    srv = h.server([{"reasoning": "hmm", "content": "ok"}], flavor=flavor)
    client = h.client(srv, profile=profile)
    out = client.complete(MESSAGES, [], mode)
    body = srv.requests[0]
    fragment = load_settings(env={}).profile(profile)[mode]
    for key, value in fragment.items():
        assert body[key] == value
    assert effective_effort(body, flavor) == mode  # what the server runs the request at, by its own rule
    assert (out.reasoning is None) is (mode == "off")
    assert "tools" not in body and "tool_choice" not in body
    if flavor == "zai":
        assert "stream_options" not in body
    else:
        assert body["stream_options"] == {"include_usage": True} and "tool_stream" not in body
        assert out.usage.prompt_tokens > 0 and "usage_estimated" not in out.extra


@pytest.mark.parametrize(
    "bad",
    [
        {"reasoning_effort": "low"},
        {"reasoning_effort": "medium"},
        {"reasoning_effort": "xhigh"},
        {"chat_template_kwargs": {"enable_thinking": True, "reasoning_effort": "medium"}},
    ],
)
def test_profiles_that_would_send_alias_efforts_are_refused(bad):
    profile = load_settings(env={}).profile("zai")
    with pytest.raises(ConfigError, match="reasoning_effort"):
        validate_profile({**profile, "high": {"thinking": {"type": "enabled"}, **bad}}, "x")


def test_profile_must_state_effort_and_modes_are_checked(h):
    profile = load_settings(env={}).profile("zai")
    with pytest.raises(ConfigError, match="explicitly"):
        validate_profile({**profile, "max": {"thinking": {"type": "enabled"}}})
    with pytest.raises(ConfigError, match="off"):
        validate_profile({**profile, "off": {"thinking": {"type": "enabled"}}})
    with pytest.raises(ConfigError, match="no \\[high\\]"):
        validate_profile({"off": profile["off"], "max": profile["max"]})
    srv = h.server([])
    with pytest.raises(ConfigError, match="unknown mode"):
        h.client(srv).complete(MESSAGES, [], "medium")
    assert srv.requests == []


def test_vllm_reasoning_field_is_read(h):
    srv = h.server(
        [{"reasoning": "vllm thinks", "content": "answer", "tool_calls": CALLS[:1]}], flavor="vllm"
    )
    out = h.client(srv, profile="vllm").complete(MESSAGES, TOOLS, "high")
    assert out.reasoning == "vllm thinks" and out.content == "answer" and out.tool_calls == EXPECTED_CALLS[:1]


def test_sglang_answer_in_reasoning_is_promoted(h):
    srv = h.server([{"reasoning": "The answer is 42.", "content": ""}], flavor="sglang")
    out = h.client(srv, profile="sglang").complete(MESSAGES, [], "high")
    assert (
        out.content == "The answer is 42."
        and out.extra["reasoning_promoted"] is True
        and out.reasoning is None
    )


# ---- in-stream faults ----------------------------------------------------------------------------

OK = {"content": "recovered"}


def test_sensitive_finish_raises_content_filter_without_retry(h):
    srv = h.server([{"content": "partial answer", "fault": "sensitive"}, OK])
    with pytest.raises(ContentFilterError) as info:
        h.client(srv).complete(MESSAGES, [], "high")
    assert info.value.content_filter == [{"role": "assistant", "level": 1}]
    assert len(srv.requests) == 1 and h.waits == []


@pytest.mark.parametrize("fault", ["network_error", "error_frame", "truncated", "concatenated", "drop"])
def test_transient_stream_faults_are_retried_with_backoff(h, fault):
    srv = h.server([{"content": "some partial output here", "fault": fault}, OK])
    out = h.client(srv).complete(MESSAGES, [], "high")
    assert out.content == "recovered" and out.attempts == 2 and h.waits == [0.5]
    assert len(srv.requests) == 2 and srv.requests[0]["request_id"] != srv.requests[1]["request_id"]
    assert out.extra["retries"][0]["wait"] == 0.5


@pytest.mark.parametrize(
    "fault,error",
    [
        ("network_error", StreamError),
        ("error_frame", ServerError),
        ("truncated", StreamCorruptedError),
        ("concatenated", StreamCorruptedError),
        ("drop", IncompleteStreamError),
    ],
)
def test_stream_fault_error_types_when_retries_run_out(h, fault, error):
    srv = h.server([{"content": "partial output", "fault": fault}] * 2)
    with pytest.raises(error) as info:
        h.client(srv, max_retries=1).complete(MESSAGES, [], "high")
    assert info.value.attempts == 2 and h.waits == [0.5] and "\n" not in str(info.value)


def test_stream_without_done_but_with_finish_is_accepted(h):
    srv = h.server([{"content": "complete", "fault": "no_done"}])
    out = h.client(srv).complete(MESSAGES, [], "high")
    assert out.content == "complete" and out.finish_reason == "stop" and out.attempts == 1


def test_context_window_exceeded_mid_stream_is_a_context_overflow(h):
    srv = h.server([{"content": "long partial", "fault": "context_window"}, OK])
    with pytest.raises(ContextOverflowError) as info:
        h.client(srv).complete(MESSAGES, [], "max")
    assert info.value.partial.content == "long partial"
    assert info.value.partial.finish_reason == "model_context_window_exceeded"
    assert len(srv.requests) == 1


@pytest.mark.parametrize("variant", ["B1", "B2"])
def test_length_inside_tool_arguments_never_yields_an_executable_call(h, variant):
    srv = h.server(
        [{"content": "Let me look.", "tool_calls": CALLS, "fault": "length"}],
        tool_stream_variant=variant,
        fragment_size=4,
    )
    out = h.client(srv).complete(MESSAGES, TOOLS, "high")
    assert out.finish_reason == "length" and out.tool_calls == [] and out.content == "Let me look."
    (cut,) = out.extra["incomplete_tool_calls"]
    assert (
        cut["id"] == "call_a1"
        and cut["name"] == "view"
        and '{"path": "src/cart.py"}'.startswith(cut["arguments"])
    )
    assert "tool_calls" not in out.to_message()


def test_unparseable_streamed_arguments_retry_once_without_tool_stream(h):
    bad = {"tool_calls": [{"id": "call_x", "name": "view", "arguments": '{"path": "a.py"}{"path'}]}
    srv = h.server([bad, bad])
    out = h.client(srv).complete(MESSAGES, TOOLS, "high")
    assert srv.requests[0]["tool_stream"] is True and "tool_stream" not in srv.requests[1]
    assert out.attempts == 2 and out.extra["invalid_tool_calls"] == ["call_x"] and h.waits == []


# ---- HTTP errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault,error,code",
    [
        ("balance", QuotaExhaustedError, 1113),
        ("quota-window", QuotaExhaustedError, 1308),
        ("sensitive-input", ContentFilterError, 1301),
    ],
)
def test_non_retryable_http_faults_raise_typed_errors(h, fault, error, code):
    srv = h.server([{"http_fault": fault}, OK])
    with pytest.raises(error) as info:
        h.client(srv).complete(MESSAGES, [], "high")
    assert info.value.code == code and len(srv.requests) == 1 and h.waits == []
    assert isinstance(info.value, ModelError) and "\n" not in str(info.value)


def test_quota_window_message_says_when_it_resets(h):
    srv = h.server([{"http_fault": "quota-window"}])
    with pytest.raises(QuotaExhaustedError) as info:
        h.client(srv).complete(MESSAGES, [], "high")
    assert info.value.reset_at == "2026-11-01 21:31:39" and "2026-11-01 21:31:39" in str(info.value)
    assert info.value.status == 429


def test_sensitive_input_keeps_content_filter(h):
    srv = h.server([{"http_fault": "sensitive-input"}])
    with pytest.raises(ContentFilterError) as info:
        h.client(srv).complete(MESSAGES, [], "high")
    assert info.value.content_filter == [{"level": 1, "role": "user"}]


@pytest.mark.parametrize(
    "faults,waits",
    [
        ([{"http_fault": "rate"}], [0.5]),
        ([{"http_fault": "rate"}, {"http_fault": "rate"}], [0.5, 1.0]),
        ([{"http_fault": "rate", "retry_after": 3}], [3.0]),
        ([{"http_fault": "rate", "retry_after_ms": 1500}], [1.5]),
        ([{"http_fault": "overload"}, {"http_fault": "overload"}], [2.0, 4.0]),
        ([{"http_fault": "model-overload"}], [2.0]),
        ([{"http_fault": "overload", "retry_after": 7}], [7.0]),
        ([{"http_fault": "server"}, {"http_fault": "unavailable"}], [0.5, 1.0]),
    ],
)
def test_retryable_http_faults_wait_as_scheduled(h, faults, waits):
    srv = h.server([*faults, OK])
    out = h.client(srv).complete(MESSAGES, [], "high")
    assert out.content == "recovered" and out.attempts == len(faults) + 1 and h.waits == waits


def test_retry_after_http_date_is_honoured(h):
    import time
    from email.utils import formatdate

    srv = h.server([{"http_fault": "rate", "retry_after": formatdate(time.time() + 5, usegmt=True)}, OK])
    h.client(srv).complete(MESSAGES, [], "high")
    assert len(h.waits) == 1 and 3.0 <= h.waits[0] <= 5.0


def test_backoff_is_capped_and_jittered(h):
    srv = h.server([])
    client = h.client(srv, backoff_base=1.0, backoff_cap=4.0)
    err = RateLimitError("x")
    assert [client.backoff(err, n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 4.0, 4.0]
    jittery = GLMClient(client.settings, client.profile, None, rng=lambda: 1.0)
    assert jittery.backoff(err, 3) == 3.0  # 4.0 * (1 - 0.25)
    jittery.close()


def test_retries_run_out(h):
    srv = h.server([{"http_fault": "rate"}] * 3 + [OK])
    with pytest.raises(RateLimitError) as info:
        h.client(srv, max_retries=2).complete(MESSAGES, [], "high")
    assert info.value.attempts == 3 and h.waits == [0.5, 1.0] and "after 3 attempts" in str(info.value)


def test_on_retry_hook_sees_each_retry(h):
    srv = h.server([{"http_fault": "server"}, OK])
    seen = []
    settings = load_settings(overrides={"model.base_url": srv.base_url}, env={})
    client = client_from_settings(
        settings,
        KEY,
        sleep=lambda s: None,
        rng=lambda: 0.0,
        on_retry=lambda n, err, wait: seen.append((n, type(err).__name__, wait)),
    )
    client.complete(MESSAGES, [], "high")
    client.close()
    assert seen == [(1, "ServerError", 0.5)]


# ---- validation errors from the server -----------------------------------------------------------


def test_unknown_model(h):
    srv = h.server([OK])
    with pytest.raises(ModelNotFoundError) as info:
        h.client(srv, name="glm-5.2[1m]").complete(MESSAGES, [], "high")
    assert info.value.code == 1211 and info.value.status == 400 and len(srv.requests) == 1


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_nope", "content": "r"}],
        [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        [{"role": "system", "content": "only system"}],
    ],
)
def test_illegal_messages(h, messages):
    srv = h.server([OK])
    with pytest.raises(BadRequestError) as info:
        h.client(srv).complete(messages, [], "high")
    assert info.value.code == 1214 and h.waits == []


@pytest.mark.parametrize("overflow_code", [1261, 1210])
def test_prompt_over_window_is_context_overflow(h, overflow_code):
    srv = h.server([OK], context_window=20, overflow_code=overflow_code)
    with pytest.raises(ContextOverflowError) as info:
        h.client(srv).complete(MESSAGES, TOOLS, "high")
    assert info.value.code == overflow_code and len(srv.requests) == 1


def test_wrong_key_is_authentication_error_and_key_is_never_shown(h, caplog):
    srv = h.server([OK], api_key="the-right-key")
    caplog.set_level(logging.DEBUG)
    client = h.client(srv)
    with pytest.raises(AuthenticationError) as info:
        client.complete(MESSAGES, [], "high")
    assert info.value.status == 401 and len(srv.requests) == 1
    for text in (str(info.value), repr(info.value), repr(client), str(client), caplog.text):
        assert KEY not in text


def test_missing_key_is_authentication_error(h):
    srv = h.server([OK])
    with pytest.raises(AuthenticationError):
        h.client(srv, key=None).complete(MESSAGES, [], "high")


def test_key_never_leaks_through_any_failure(h, caplog):
    caplog.set_level(logging.DEBUG)
    srv = h.server(
        [{"http_fault": "server"}, {"content": "x", "fault": "truncated"}, {"http_fault": "balance"}],
        api_key=KEY,
    )
    client = h.client(srv)
    with pytest.raises(QuotaExhaustedError) as info:
        client.complete(MESSAGES, [], "high")
    assert info.value.attempts == 3 and "retrying" in caplog.text  # the retries were logged
    for text in (str(info.value), repr(info.value), repr(client), caplog.text):
        assert KEY not in text


# ---- connection-level failures -------------------------------------------------------------------


def test_connection_refused_is_retried_then_raised(h):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = h.client(base_url=f"http://127.0.0.1:{port}/api/paas/v4", max_retries=2)
    with pytest.raises(ConnectionFailedError) as info:
        client.complete(MESSAGES, [], "high")
    assert info.value.attempts == 3 and h.waits == [0.5, 1.0] and KEY not in str(info.value)


def test_idle_stream_times_out_and_is_retried(h):
    srv = h.server([{"content": "slow", "delay": 0.6}, OK])
    client = h.client(srv, idle_timeout=0.2)
    out = client.complete(MESSAGES, [], "high")
    assert out.content == "recovered" and out.attempts == 2
    assert "timed out after 0.2s" in out.extra["retries"][0]["error"]


# ---- cache ---------------------------------------------------------------------------------------


def test_second_request_with_same_prefix_reports_cached_tokens(h):
    srv = h.server([{"tool_calls": CALLS[:1]}, {"content": "done"}])
    client = h.client(srv)
    first = client.complete(MESSAGES, TOOLS, "high")
    history = MESSAGES + [
        first.to_message(),
        {"role": "tool", "tool_call_id": "call_a1", "content": "def discount(): ..."},
    ]
    second = client.complete(history, TOOLS, "high")
    assert first.usage.cached_tokens == 0
    a, b = (canonical_text(r) for r in srv.requests)
    assert second.usage.cached_tokens > 0
    assert second.usage.cached_tokens == srv.count_tokens(a[:common_prefix_len(a, b)])
    assert second.usage.cached_tokens >= srv.count_tokens(a) - 2  # the whole first prompt is reused
    unpriced = Usage(second.usage.prompt_tokens, 0, second.usage.completion_tokens)
    assert second.extra["cost"]["usd"] < cost_of(unpriced, load_settings(env={}).prices())["usd"]


# ---- the run's time limit bounds a call in flight ---------------------------------------------------


class _Clock:
    """An attempt budget with a wall-clock limit; records what it was charged."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.charged: list[AttemptCost] = []

    def failed(self, cost: AttemptCost) -> None:
        self.charged.append(cost)

    def next_allowance(self) -> int:
        return 256

    def seconds_left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)


@pytest.mark.parametrize("turn", [
    {"content": "still thinking", "delay": 30},  # no byte for far longer than the limit
    {"content": "a slow trickle " * 300, "frame_delay": 0.2},  # every frame well within the idle timeout
], ids=["slow-first-byte", "trickle"])
def test_a_call_in_flight_stops_at_the_run_deadline_and_is_charged(h, turn):
    srv = h.server([turn])
    client = h.client(srv)
    clock = _Clock(1.5)
    started = time.monotonic()
    with pytest.raises(DeadlineError):
        client.complete(MESSAGES, TOOLS, "high", max_tokens=256, budget=clock)
    assert time.monotonic() - started < 10  # not the 30 s first byte or 300 s idle timeout, nor the 60 s stream
    assert [c.output for c in clock.charged] == [256]  # once, at its worst case; never retried

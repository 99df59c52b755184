"""The fake GLM server's wire contract (glm-api.md §8), checked with plain httpx over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from evals.fake_glm import FakeGLM, canonical_text
from evals.fake_glm.cache import PrefixCache, common_prefix_len, token_count

KEY = "fake-key-123456"
AUTH = {"Authorization": f"Bearer {KEY}"}
USER = [{"role": "user", "content": "hello"}]
TOOLS = [
    {"type": "function", "function": {"name": "view", "description": "", "parameters": {"type": "object"}}}
]
CALL = {"id": "call_q1", "name": "view", "arguments": {"path": "src/app.py"}}


@pytest.fixture
def serve():
    servers = []

    def start(turns=None, **kw):
        kw.setdefault("api_key", KEY)
        srv = FakeGLM(turns, **kw).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


def post(srv, body, headers=AUTH, path=None):
    url = srv.base_url + "/chat/completions" if path is None else f"http://127.0.0.1:{srv.port}{path}"
    return httpx.post(url, json=body, headers=headers, timeout=10)


def body(**kw):
    return {"model": "glm-5.2", "messages": USER, **kw}


def chunks(resp):
    """Parsed data frames of an SSE response (without [DONE]) and whether [DONE] ended it."""
    frames = [block[6:] for block in resp.text.split("\n\n") if block.startswith("data: ")]
    done = frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames if f != "[DONE]"], done


# ---- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers,code",
    [({}, "1001"), ({"Authorization": "Basic abc"}, "1001"), ({"Authorization": "Bearer wrong"}, "1000")],
)
def test_auth_failures_are_401_envelopes(serve, headers, code):
    srv = serve([{"content": "x"}])
    resp = post(srv, body(), headers=headers)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == code
    assert resp.headers["content-type"].startswith("application/json")
    assert srv.script.remaining == 1  # a rejected request consumes no turn


def test_unknown_model_is_1211(serve):
    resp = post(serve(), body(model="glm-5.2[1m]"))
    assert resp.status_code == 400 and resp.json() == {
        "error": {"code": "1211", "message": "Unknown Model, please check the model code."}
    }


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}],
        [{"role": "user", "content": "u"}, {"role": "tool", "content": "r"}],
        [{"role": "user", "content": [{"type": "text", "text": "u"}]}],
        [
            {"role": "user", "content": "u"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_2", "content": "r"},
        ],
    ],
)
def test_illegal_messages_are_1214(serve, messages):
    resp = post(serve(), {"model": "glm-5.2", "messages": messages})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "1214"


def test_paired_tool_results_are_accepted(serve):
    messages = [
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "r"},
    ]
    assert post(serve(), {"model": "glm-5.2", "messages": messages}).status_code == 200


@pytest.mark.parametrize(
    "extra",
    [
        {"max_tokens": 0},
        {"max_tokens": 131073},
        {"temperature": 1.5},
        {"top_p": 0.001},
        {"reasoning_effort": "extreme"},
        {"tool_choice": "required"},
        {"request_id": "abc"},
        {"request_id": "x" * 65},
    ],
)
def test_parameter_ranges_are_1210(serve, extra):
    resp = post(serve(), body(**extra))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "1210"


@pytest.mark.parametrize(
    "code,message",
    [(1261, "Prompt exceeds max length"), (1210, "tokens in request more than max tokens allowed")],
)
def test_prompt_over_window(serve, code, message):
    resp = post(serve(context_window=5, overflow_code=code), body())
    assert resp.status_code == 400 and resp.json()["error"] == {"code": str(code), "message": message}


@pytest.mark.parametrize(
    "fault,status,code",
    [
        ("balance", 429, "1113"),
        ("rate", 429, "1302"),
        ("overload", 429, "1305"),
        ("quota-window", 429, "1308"),
        ("sensitive-input", 400, "1301"),
        ("server", 500, "500"),
        ("unavailable", 503, "500"),
    ],
)
def test_http_faults(serve, fault, status, code):
    srv = serve([{"http_fault": fault, "retry_after": 2}, {"content": "after"}])
    resp = post(srv, body(stream=True))
    assert resp.status_code == status and resp.json()["error"]["code"] == code
    assert resp.headers["retry-after"] == "2"
    if fault == "rate":
        assert len(resp.json()["request_id"]) == 30
    if fault == "sensitive-input":
        assert resp.json()["contentFilter"] == [{"level": 1, "role": "user"}]
    assert post(srv, body()).json()["choices"][0]["message"]["content"] == "after"


# ---- streaming shape -----------------------------------------------------------------------------


def test_stream_wire_properties(serve):
    srv = serve([{"reasoning": "Think about it.", "content": "Hello, world!"}], fragment_size=4)
    resp = post(srv, body(stream=True, request_id="req-000001"))
    assert resp.headers["content-type"] == "text/event-stream;charset=UTF-8"
    frames, done = chunks(resp)
    assert done and len(frames) > 4
    for frame in frames:
        assert frame["choices"][0]["delta"]["role"] == "assistant"
        assert frame["id"] == "req-000001" and frame["object"] == "chat.completion.chunk"
    assert all("finish_reason" not in f["choices"][0] for f in frames[:-1])
    assert all("usage" not in f for f in frames[:-1])
    last = frames[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and last["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 0
    }
    assert "".join(f["choices"][0]["delta"].get("reasoning_content", "") for f in frames) == "Think about it."
    assert "".join(f["choices"][0]["delta"].get("content", "") for f in frames) == "Hello, world!"
    assert max(len(f["choices"][0]["delta"].get("content", "")) for f in frames) == 4
    assert last["usage"]["completion_tokens_details"]["reasoning_tokens"] == 4


def test_whole_calls_without_tool_stream(serve):
    srv = serve([{"tool_calls": [CALL, {**CALL, "id": "call_q2"}]}])
    frames, _ = chunks(post(srv, body(stream=True, tools=TOOLS)))
    whole = [f for f in frames if f["choices"][0]["delta"].get("tool_calls")]
    assert [f["choices"][0]["finish_reason"] for f in whole] == ["tool_calls", "tool_calls"]
    assert [f["choices"][0]["delta"]["tool_calls"][0]["index"] for f in whole] == [0, 1]
    assert (
        json.loads(whole[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"])
        == CALL["arguments"]
    )
    assert "usage" in frames[-1] and frames[-1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


@pytest.mark.parametrize("variant", ["B1", "B2"])
def test_tool_stream_variants(serve, variant):
    srv = serve([{"tool_calls": [CALL]}], tool_stream_variant=variant, fragment_size=5)
    frames, _ = chunks(post(srv, body(stream=True, tool_stream=True, tools=TOOLS)))
    deltas = [(f["choices"][0], tc) for f in frames for tc in f["choices"][0]["delta"].get("tool_calls", [])]
    args = "".join(tc["function"].get("arguments", "") for _, tc in deltas)
    assert json.loads(args) == CALL["arguments"] and len(deltas) > 3
    if variant == "B1":
        assert deltas[0][1]["function"]["arguments"] == ""
        assert all("id" not in tc for _, tc in deltas[1:])
        assert "tool_calls" not in frames[-1]["choices"][0]["delta"]
    else:
        assert deltas[0][1]["function"]["arguments"] != "" and all(tc["id"] == "call_q1" for _, tc in deltas)
        assert deltas[-1][0].get("finish_reason") == "tool_calls" and "usage" in frames[-1]


@pytest.mark.parametrize("flavor,key", [("vllm", "reasoning"), ("sglang", "reasoning_content")])
def test_self_hosted_flavors(serve, flavor, key):
    srv = serve([{"reasoning": "hm", "content": "ok"}] * 2, flavor=flavor)
    frames, done = chunks(post(srv, body(stream=True)))
    assert done and all("usage" not in f for f in frames)
    assert all("finish_reason" in f["choices"][0] for f in frames)  # explicit nulls
    assert frames[0]["choices"][0]["finish_reason"] is None and key in frames[0]["choices"][0]["delta"]
    frames, _ = chunks(post(srv, body(stream=True, stream_options={"include_usage": True})))
    assert frames[-1]["choices"] == [] and frames[-1]["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize(
    "flavor,extra,effort",
    [
        ("zai", {}, "max"),
        ("zai", {"reasoning_effort": "high"}, "high"),
        ("zai", {"reasoning_effort": "low"}, "high"),
        ("zai", {"reasoning_effort": "medium"}, "high"),
        ("zai", {"reasoning_effort": "xhigh"}, "max"),
        ("zai", {"reasoning_effort": "none"}, "off"),
        ("zai", {"thinking": {"type": "disabled"}}, "off"),
        ("vllm", {"chat_template_kwargs": {"reasoning_effort": "high"}}, "high"),
        ("vllm", {"chat_template_kwargs": {"reasoning_effort": "low"}}, "max"),
        ("vllm", {"reasoning_effort": "high"}, "high"),
        ("vllm", {"reasoning_effort": "none"}, "off"),
        ("sglang", {"chat_template_kwargs": {"enable_thinking": False}}, "off"),
        ("sglang", {"thinking": {"type": "disabled"}}, "max"),
    ],
)
def test_effective_effort_header_and_thinking(serve, flavor, extra, effort):
    srv = serve([{"reasoning": "secret thoughts", "content": "ok"}], flavor=flavor)
    resp = post(srv, body(**extra))
    assert resp.headers["x-fake-effective-effort"] == effort
    message = resp.json()["choices"][0]["message"]
    assert ("reasoning_content" in message or "reasoning" in message) is (effort != "off")


# ---- faults --------------------------------------------------------------------------------------


def test_in_stream_faults_on_the_wire(serve):
    srv = serve(
        [
            {"content": "abcdefgh", "fault": "sensitive"},
            {"content": "abcdefgh", "fault": "network_error"},
            {"content": "abcdefgh", "fault": "context_window"},
            {"content": "abcdefgh", "fault": "error_frame"},
            {"content": "abcdefgh", "fault": "truncated"},
            {"content": "abcdefgh", "fault": "concatenated"},
            {"tool_calls": [CALL], "fault": "length"},
        ]
    )
    frames, _ = chunks(post(srv, body(stream=True)))
    assert frames[-1]["choices"][0]["finish_reason"] == "sensitive" and frames[-1]["content_filter"]
    frames, _ = chunks(post(srv, body(stream=True)))
    assert frames[-1]["choices"][0]["finish_reason"] == "network_error"
    frames, _ = chunks(post(srv, body(stream=True)))
    assert frames[-1]["choices"][0]["finish_reason"] == "model_context_window_exceeded"
    resp = post(srv, body(stream=True))
    assert resp.text.rstrip().endswith('please contact customer service"}}') and "[DONE]" not in resp.text
    resp = post(srv, body(stream=True))
    with pytest.raises(ValueError):
        chunks(resp)
    assert "[DONE]" not in resp.text
    with pytest.raises(ValueError):
        chunks(post(srv, body(stream=True)))
    frames, _ = chunks(post(srv, body(stream=True, tool_stream=True, tools=TOOLS)))
    args = "".join(
        tc["function"].get("arguments", "")
        for f in frames
        for tc in f["choices"][0]["delta"].get("tool_calls", [])
    )
    assert frames[-1]["choices"][0]["finish_reason"] == "length" and 0 < len(args) < len(
        json.dumps(CALL["arguments"])
    )


def test_drop_closes_mid_stream(serve):
    srv = serve([{"content": "abcdefghijkl", "fault": "drop"}])
    with pytest.raises(httpx.RemoteProtocolError):
        post(srv, body(stream=True))


def test_non_stream_body_shape(serve):
    srv = serve([{"reasoning": "r", "tool_calls": [CALL]}], include_object=False)
    data = post(srv, body(tools=TOOLS)).json()
    assert "object" not in data and data["id"] == data["request_id"] and len(data["id"]) == 30
    message = data["choices"][0]["message"]
    assert message["content"] == "" and message["tool_calls"][0]["index"] == 0
    assert isinstance(message["tool_calls"][0]["function"]["arguments"], str)
    assert (
        data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )


# ---- cache ---------------------------------------------------------------------------------------


def test_cached_tokens_follow_real_prefix_reuse(serve):
    srv = serve()
    first = body(tools=TOOLS, messages=[{"role": "system", "content": "stable system prompt " * 20}, *USER])
    second = {
        **first,
        "messages": first["messages"]
        + [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "more"}],
    }
    other = {**first, "messages": [{"role": "system", "content": "different"}, *USER]}
    usages = [post(srv, b).json()["usage"] for b in (first, second, other)]
    assert usages[0]["prompt_tokens_details"]["cached_tokens"] == 0
    prefix = canonical_text(first)[:common_prefix_len(canonical_text(first), canonical_text(second))]
    assert usages[1]["prompt_tokens_details"]["cached_tokens"] == srv.count_tokens(prefix) > 50
    assert usages[1]["prompt_tokens"] == srv.count_tokens(canonical_text(second))
    assert 0 < usages[2]["prompt_tokens_details"]["cached_tokens"] < 40  # only the tools and `[{"content":"`


def test_cache_delay_and_block_size():
    clock = [0.0]
    cache = PrefixCache(delay=2.0, block=16, clock=lambda: clock[0])
    text = "x" * 400
    assert cache.hit_and_store(text) == 0
    assert cache.hit(text + "y") == 0  # written, but not yet visible
    clock[0] = 2.5
    assert cache.hit(text + "y") == 96  # 100 tokens of prefix, rounded down to blocks of 16
    assert cache.hit("x" * 10) <= token_count("x" * 10)


def test_cache_is_an_lru():
    cache = PrefixCache(size=2)
    for text in ("a" * 40, "b" * 40, "c" * 40):
        cache.store(text)
    assert cache.hit("a" * 40) == 0 and cache.hit("c" * 40) == 10


# ---- scripts -------------------------------------------------------------------------------------


def test_reactive_turns_exhaustion_and_recording(serve):
    seen = []

    def react(request):
        seen.append(len(request["messages"]))
        return {"content": f"saw {len(request['messages'])}"}

    srv = serve([react, {"content": "fixed"}])
    assert post(srv, body()).json()["choices"][0]["message"]["content"] == "saw 1"
    assert post(srv, body()).json()["choices"][0]["message"]["content"] == "fixed"
    data = post(srv, body(), path="/api/coding/paas/v4/chat/completions").json()
    assert data["choices"][0]["message"]["content"] == "(script exhausted)"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert seen == [1] and [r["model"] for r in srv.requests] == ["glm-5.2"] * 3
    assert post(srv, body(), path="/nope/chat/completions").status_code == 404


def test_whole_script_can_be_one_callable(serve):
    srv = serve(lambda request: None if len(request["messages"]) > 1 else {"content": "one"})
    assert post(srv, body()).json()["choices"][0]["message"]["content"] == "one"
    two = body(messages=USER + [{"role": "assistant", "content": "x"}, *USER])
    assert post(srv, two).json()["choices"][0]["message"]["content"] == "(script exhausted)"


def test_unknown_fault_is_rejected_early():
    with pytest.raises(ValueError, match="unknown fault"):
        from evals.fake_glm.script import normalize

        normalize({"fault": "meteor"})


def test_cli_serves_a_script_file(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"turns": [{"content": "from the CLI"}]}))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "evals.fake_glm",
            "--script",
            str(script),
            "--port",
            "0",
            "--api-key",
            KEY,
            "--variant",
            "B2",
            "--fragment-size",
            "3",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/paas/v4")
        resp = httpx.post(base_url + "/chat/completions", json=body(), headers=AUTH, timeout=10)
        assert resp.json()["choices"][0]["message"]["content"] == "from the CLI"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_start_stop_without_context_manager():
    srv = FakeGLM([{"content": "x"}]).start()
    try:
        started = time.monotonic()
        assert post(srv, body(), headers={"Authorization": "Bearer any-key"}).status_code == 200
    finally:
        srv.stop()
    assert time.monotonic() - started < 2

"""The loop in-process, with a scripted client: truncation, overflow, silent turns, failed finishes,
compaction, and verification asked for by a tool's effects (never by its name)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent.budget import Budget
from agent.config import load_settings
from agent.loop import MAX_FAILED_FINISHES, Loop
from agent.model.errors import ContextOverflowError
from agent.model.types import Completion, ToolCall, Usage
from agent.policy import Policy
from agent.prompting import render
from agent.trajectory import Trajectory
from agent.verify import Verification
from sandbox.pytest_runs import TestRun
from tools.base import Observation, Tool, ToolContext
from tools.registry import fix_tools

TARGET = "tests/test_a.py::test_a"


class ScriptedClient:
    """Answers from a list: a Completion, or an exception to raise. Records what each request held."""

    def __init__(self, answers: list[Completion | Exception]) -> None:
        self.answers = list(answers)
        self.requests: list[list[dict[str, Any]]] = []

    def complete(self, messages, tools, mode, *, max_tokens=None, budget=None) -> Completion:
        self.requests.append(json.loads(json.dumps(messages)))
        if not self.answers:
            raise AssertionError("the loop asked for more turns than scripted")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        prompt = sum(len(json.dumps(m)) for m in messages) // 4
        answer.usage = Usage(prompt_tokens=prompt, completion_tokens=10)
        return answer

    def close(self) -> None:
        pass


def said(text: str = "", *calls: tuple[str, dict[str, Any]], finish_reason: str | None = None) -> Completion:
    tool_calls = [ToolCall(f"call_{i}", name, json.dumps(args)) for i, (name, args) in enumerate(calls)]
    return Completion(content=text, tool_calls=tool_calls, usage=Usage(),
                      finish_reason=finish_reason or ("tool_calls" if tool_calls else "stop"))


class NoArgs(BaseModel):
    pass


class GreenTests(Tool):
    """A tool under a name the loop has never heard of whose effect is a passing run of the target."""

    name = "check_everything"
    description = "test double"

    Args = NoArgs

    def run(self, args: Any, ctx: ToolContext) -> Observation:
        return Observation("1 passed", test_run=TestRun(outcomes={TARGET: "passed"}))


def make_loop(tmp_path: Path, client: ScriptedClient, verdicts: list[bool], *, context_limit: int = 1 << 20,
              tools: list[Tool] | None = None) -> tuple[Loop, list[int]]:
    settings = load_settings(env={"XDG_CONFIG_HOME": str(tmp_path / "none")})
    (tmp_path / "repo").mkdir(exist_ok=True)
    (tmp_path / "repo" / "a.py").write_text("x = 1\n" * 200)
    asked: list[int] = []

    def verifier() -> Verification:
        asked.append(1)
        ok = verdicts.pop(0)
        return Verification(ok, "targets pass" if ok else "target tests still failing: " + TARGET)

    loop = Loop(client=client, tools=tools or fix_tools(), ctx=ToolContext(root=tmp_path / "repo",
                                                                           target_tests=[TARGET]),
                budget=Budget(settings.budget, settings.prices()["usd"]), policy=Policy(settings.policy),
                trajectory=Trajectory(tmp_path / "trajectory.jsonl"), verifier=verifier,
                prices=settings.prices(), max_output=1000, context_limit=context_limit)
    return loop, asked


def start() -> list[dict[str, Any]]:
    return [{"role": "system", "content": "system prompt and summary"}, {"role": "user", "content": "fix it"}]


def test_a_truncated_answer_is_followed_by_a_request_to_continue(tmp_path):
    client = ScriptedClient([said("half a thou", finish_reason="length"), said("", ("finish", {"summary": "ok"}))])
    loop, asked = make_loop(tmp_path, client, [True])
    outcome = loop.run(start())
    assert outcome.status == "resolved" and asked == [1]
    second = client.requests[1]
    assert second[-2] == {"role": "assistant", "content": "half a thou"}
    assert second[-1] == {"role": "user", "content": render("truncated.md")}


def test_a_context_overflow_compacts_once_and_resends(tmp_path):
    view = said("", ("view", {"path": "a.py"}))
    client = ScriptedClient([view, view, ContextOverflowError("too long"), said("", ("finish", {"summary": "ok"}))])
    loop, _ = make_loop(tmp_path, client, [True])
    messages = start()
    outcome = loop.run(messages)
    assert outcome.status == "resolved" and outcome.compactions == 1
    resent = client.requests[3]
    assert resent[:2] == start()  # the prefix stays byte-identical
    assert any(m["role"] == "tool" and m["content"].startswith("[elided") for m in resent)


def test_an_overflow_after_compaction_is_a_budget_stop(tmp_path):
    client = ScriptedClient([said("", ("view", {"path": "a.py"})), ContextOverflowError("too long"),
                             ContextOverflowError("still too long")])
    loop, _ = make_loop(tmp_path, client, [])
    outcome = loop.run(start())
    assert outcome.status == "budget_exhausted" and outcome.stop_reason.startswith("budget_context")


def test_two_silent_turns_end_the_run_after_one_nudge(tmp_path):
    client = ScriptedClient([said("thinking..."), said("still thinking")])
    loop, asked = make_loop(tmp_path, client, [])
    outcome = loop.run(start())
    assert outcome.status == "unresolved" and "stopped calling tools" in outcome.stop_reason
    assert client.requests[1][-1] == {"role": "user", "content": render("nudge.md")}
    assert asked == []


def test_finishing_while_tests_fail_is_told_then_ends_the_run(tmp_path):
    finish = said("", ("finish", {"summary": "done"}))
    client = ScriptedClient([finish] * MAX_FAILED_FINISHES)
    loop, asked = make_loop(tmp_path, client, [False] * MAX_FAILED_FINISHES)
    outcome = loop.run(start())
    assert outcome.status == "unresolved" and "finished while tests still fail" in outcome.stop_reason
    assert len(asked) == MAX_FAILED_FINISHES
    told = client.requests[1][-1]
    assert told["role"] == "user" and TARGET in told["content"]


def test_compaction_near_the_limit_keeps_the_prefix(tmp_path):
    views = [said("", ("view", {"path": "a.py"})) for _ in range(8)]
    client = ScriptedClient([*views, said("", ("finish", {"summary": "ok"}))])
    loop, _ = make_loop(tmp_path, client, [True], context_limit=6500)
    outcome = loop.run(start())
    assert outcome.status == "resolved" and outcome.compactions >= 1
    last = client.requests[-1]
    assert last[:2] == start()
    events = [json.loads(line) for line in (tmp_path / "trajectory.jsonl").read_text().splitlines()]
    compaction = next(e for e in events if e["event"] == "compaction")
    assert compaction["first_changed_message"] >= 2


def test_verification_follows_a_tools_effects_not_its_name(tmp_path):
    """A tool the loop has never heard of reports the targets green: the harness checks for itself."""
    client = ScriptedClient([said("", ("check_everything", {}))])
    loop, asked = make_loop(tmp_path, client, [True], tools=[*fix_tools(), GreenTests()])
    outcome = loop.run(start())
    assert outcome.status == "resolved" and asked == [1]


@pytest.mark.parametrize("name", ["finish", "run_tests"])
def test_the_loop_source_names_no_tool(name):
    source = Path(Loop.__module__.replace(".", "/") + ".py").read_text()
    assert f'"{name}"' not in source and f"'{name}'" not in source

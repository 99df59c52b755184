"""The plan-act-observe loop: one model call per turn, its tool calls in order, a budget check.

Messages are only ever appended (the prompt prefix stays byte-identical, which
is what GLM's cached-input price needs). Limits are exceptions carrying the
stop message; the trajectory is written after every step.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.budget import MIN_USEFUL_OUTPUT, Budget, BudgetExhausted
from agent.model.errors import ContextOverflowError, DeadlineError
from agent.model.pricing import cost_of
from agent.model.types import AttemptCost, Completion, ModelClient, Usage
from agent.policy import Decision, Policy
from agent.prompting import render
from agent.tokens import estimate_json_tokens
from agent.trajectory import Trajectory
from agent.verify import Verification
from sandbox.pytest_runs import TestRun
from sandbox.text import cut_middle
from tools.base import Observation, Tool, ToolContext, dispatch, schemas
from tools.registry import by_name

MAX_SILENT_TURNS = 2
MAX_FAILED_FINISHES = 3


@dataclass
class LoopOutcome:
    status: str  # resolved | unresolved | budget_exhausted
    stop_reason: str
    verification: Verification | None = None
    calls: dict[str, int] = field(default_factory=lambda: {"high": 0, "max": 0, "off": 0})
    max_reasoning_cost: dict[str, float] = field(default_factory=lambda: {"usd": 0.0, "rmb": 0.0})
    compactions: int = 0
    compaction_cache_loss: int = 0  # prompt tokens the cache could not serve because a compaction rewrote them


class Stop(Exception):
    def __init__(self, status: str, reason: str, verification: Verification | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.verification = verification


@dataclass
class Loop:
    client: ModelClient
    tools: list[Tool]
    ctx: ToolContext
    budget: Budget
    policy: Policy
    trajectory: Trajectory
    verifier: Callable[[], Verification]
    prices: dict[str, Any]
    max_output: int
    context_limit: int
    max_observation_chars: int = 12000
    seeds: list[str] = field(default_factory=list)
    progress: Callable[[str], None] = lambda line: None
    nudge: str = "nudge.md"  # the template sent after a turn without a tool call (review has its own)

    def __post_init__(self) -> None:
        self._by_name = by_name(self.tools)
        self._schemas = schemas(self.tools)
        self._schema_tokens = estimate_json_tokens(self._schemas)
        self._counted: list[_Counted] = []  # the API's counts, by the group of messages each request added
        self._test_timeout = self.ctx.test_timeout
        self._last_paths: set[str] = set()
        self._sent = 0
        self._last_prompt_tokens = 0
        self._prompt_before_compaction: int | None = None
        self.outcome = LoopOutcome("unresolved", "")

    # -- the loop -------------------------------------------------------------------------
    def run(self, messages: list[dict[str, Any]]) -> LoopOutcome:
        silent = failed_finishes = 0
        try:
            while True:
                completion = self._call(messages)
                if completion.finish_reason in ("length", "model_context_window_exceeded"):
                    messages.append({"role": "assistant", "content": completion.content or ""})
                    messages.append({"role": "user", "content": render("truncated.md")})
                    continue
                messages.append(completion.to_message())
                if not completion.tool_calls:
                    silent += 1
                    if silent >= MAX_SILENT_TURNS:
                        raise Stop("unresolved", "model_gave_up: it stopped calling tools")
                    messages.append({"role": "user", "content": render(self.nudge)})
                    continue
                silent = 0
                self._last_paths = set()
                asked = green = False
                for call in completion.tool_calls:
                    observation = self._run_tool(call.id, call.name, call.arguments)
                    messages.append({"role": "tool", "tool_call_id": call.id,
                                     "content": cut_middle(observation.text, self.max_observation_chars)})
                    asked = asked or observation.verify
                    green = green or self._targets_green(observation.test_run)
                verdict = self._verify() if asked or green else None  # once per turn, however many asked
                if verdict is not None:
                    if verdict.resolved:
                        raise Stop("resolved", "target tests pass", verdict)
                    if asked:
                        failed_finishes += 1
                        if failed_finishes >= MAX_FAILED_FINISHES:
                            raise Stop("unresolved", "model_gave_up: finished while tests still fail", verdict)
                        messages.append({"role": "user", "content": render("verify_failed.md",
                                                                           result=verdict.detail)})
        except BudgetExhausted as exc:
            self.outcome.status, self.outcome.stop_reason = "budget_exhausted", f"budget_{exc.kind}: {exc}"
        except Stop as stop:
            self.outcome.status, self.outcome.stop_reason = stop.status, stop.reason
            self.outcome.verification = stop.verification
        return self.outcome

    # -- one model call ---------------------------------------------------------------------
    def _prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Never below the count the API will report for `messages`.

        Each group of messages a request added is taken at the API's own count (the difference
        between consecutive prompt_tokens: the history is append-only, and a chat template
        tokenizes messages separately) while it is unchanged; a group a compaction rewrote, and
        every message not yet counted, at the upper bound of agent/tokens.py.
        """
        total = start = 0
        for group in self._counted:
            part = messages[start:group.end]
            if group.end <= len(messages) and _digest(part) == group.digest:
                total += group.tokens
            else:
                total += sum(estimate_json_tokens(m) for m in part) + (self._schema_tokens if start == 0 else 0)
            start = group.end
        total += sum(estimate_json_tokens(m) for m in messages[start:])
        return total + (0 if self._counted else self._schema_tokens)

    def _count(self, messages: list[dict[str, Any]], sent: int, prompt_tokens: int) -> None:
        """Record the API's count for the request that held messages[:sent]."""
        start = self._counted[-1].end if self._counted else 0
        intact = start <= sent and all(
            _digest(messages[(self._counted[i - 1].end if i else 0):g.end]) == g.digest
            for i, g in enumerate(self._counted))
        if not intact:
            start, self._counted = 0, []
        known = sum(g.tokens for g in self._counted)
        self._counted.append(_Counted(sent, max(prompt_tokens - known, 0), _digest(messages[start:sent])))

    def _call(self, messages: list[dict[str, Any]]) -> Completion:
        """One model call: fit the prompt, ask the budget and the policy, send, account."""
        prompt = self._fit(messages)
        allowance = self.budget.allow_call(prompt, min(self.max_output, self.context_limit - prompt))
        decision = self.policy.decide(set(self.seeds) | self.ctx.touched | self._last_paths)
        completion = self._send(messages, decision, prompt, allowance)
        self._account(messages, decision, completion)
        return completion

    def _fit(self, messages: list[dict[str, Any]]) -> int:
        """The prompt's worst-case size, compacting once when it and the output would pass the limit."""
        prompt = self._prompt_tokens(messages)
        if prompt + self.max_output > self.context_limit:
            prompt = self._compact(messages, reason="prompt near the context limit")
            if prompt + MIN_USEFUL_OUTPUT > self.context_limit:
                raise BudgetExhausted("context", f"the prompt (~{prompt} tokens) does not fit the context limit "
                                                 f"({self.context_limit}) even after compaction")
        return prompt

    def _send(self, messages: list[dict[str, Any]], decision: Decision, prompt: int, allowance: int) -> Completion:
        """The request (logged), and one resend after compaction when the API reports an overflow."""
        self.trajectory.event(
            "request", turn=self.budget.turns + 1, mode=decision.mode, reason=decision.reason,
            prompt_estimate=prompt, max_tokens=allowance, messages=messages[self._sent:],
            **({"tools": self._schemas} if self._sent == 0 else {}))
        self._sent = len(messages)
        attempts = _AttemptBudget(self, prompt)
        try:
            return self._complete(messages, decision, allowance, attempts)
        except ContextOverflowError as exc:
            if self.outcome.compactions:
                raise BudgetExhausted("context", f"the API still reports a context overflow after compaction "
                                                 f"({exc})") from None
        attempts.prompt = self._compact(messages, reason="the API reported a context overflow")
        allowance = attempts.next_allowance()  # the resend is a new request: the budget is asked again
        self.trajectory.event("request", turn=self.budget.turns + 1, mode=decision.mode, reason="resend",
                              prompt_estimate=attempts.prompt, max_tokens=allowance, messages=messages)
        self._sent = len(messages)
        try:
            return self._complete(messages, decision, allowance, attempts)
        except ContextOverflowError as again:
            raise BudgetExhausted("context", f"the API still reports a context overflow after compaction "
                                             f"({again})") from None

    def _complete(self, messages: list[dict[str, Any]], decision: Decision, allowance: int,
                  attempts: _AttemptBudget) -> Completion:
        """The client's call; a time limit that passes inside it stops the run like any other limit."""
        try:
            return self.client.complete(messages, self._schemas, decision.mode, max_tokens=allowance,
                                        budget=attempts)
        except DeadlineError as exc:
            raise BudgetExhausted("time", f"time limit reached during a model call ({self.budget.elapsed:.0f}s "
                                          f"of {self.budget.limits.max_seconds:.0f}s): {exc.message}") from None

    def _account(self, messages: list[dict[str, Any]], decision: Decision, completion: Completion) -> None:
        """The API's counts, the cache a compaction cost, the charge, the response event and the turn line."""
        if not completion.extra.get("usage_estimated"):
            self._count(messages, self._sent, completion.usage.prompt_tokens)
        if self._prompt_before_compaction is not None:
            lost = self._prompt_before_compaction - completion.usage.cached_tokens
            self.outcome.compaction_cache_loss += max(lost, 0)
            self._prompt_before_compaction = None
        self._last_prompt_tokens = completion.usage.prompt_tokens
        cost = completion.extra.get("cost") or cost_of(completion.usage, self.prices)
        self.budget.charge(completion.usage, cost)
        self.outcome.calls[decision.mode] = self.outcome.calls.get(decision.mode, 0) + 1
        if decision.mode == "max":
            self._count_max_reasoning(completion)
        self.trajectory.event(
            "response", turn=self.budget.turns, mode=decision.mode, finish_reason=completion.finish_reason,
            content=completion.content, reasoning=completion.reasoning,
            tool_calls=[c.to_wire() for c in completion.tool_calls], usage=completion.usage.to_dict(),
            cost=cost, attempts=completion.attempts, request_id=completion.request_id)
        names = ", ".join(c.name for c in completion.tool_calls) or "(no tool)"
        usage = completion.usage
        self.progress(
            f"turn {self.budget.turns:>2} · {decision.mode:<4} · {names} · in {usage.prompt_tokens} "
            f"(cached {usage.cached_share:.0%}) out {usage.completion_tokens} · "
            f"${self.budget.cost_usd:.4f} / ¥{self.budget.cost_rmb:.4f}")

    def _count_max_reasoning(self, completion: Completion) -> None:
        """Reasoning tokens of Max calls at the output price: the most Max can have added over High."""
        for currency, row in self.prices.items():
            price = row.output if hasattr(row, "output") else row["output"]
            self.outcome.max_reasoning_cost[currency] = (
                self.outcome.max_reasoning_cost.get(currency, 0.0) + completion.usage.reasoning_tokens * price / 1e6)

    def _compact(self, messages: list[dict[str, Any]], reason: str) -> int:
        """Shrink the context once, at a block boundary: old tool observations become stubs.

        The prefix (system prompt, summary, task) is kept byte-identical; the cache from the
        first elided message onward is lost once, instead of a little every turn.
        """
        keep_tail = 2  # the newest assistant message and its observation stay whole
        first_changed = None
        for index, message in enumerate(messages[:-keep_tail] if len(messages) > keep_tail else []):
            if message.get("role") == "tool" and not message["content"].startswith("[elided"):
                if first_changed is None:
                    first_changed = index
                message["content"] = f"[elided to save context: {len(message['content'])} chars]"
        self.outcome.compactions += 1
        self._prompt_before_compaction = self._last_prompt_tokens
        after = self._prompt_tokens(messages)
        self.trajectory.event("compaction", reason=reason, first_changed_message=first_changed,
                              prompt_estimate_after=after)
        self.progress(f"compacted context ({reason}); ~{after} tokens now")
        self._sent = 0  # the next request logs the full (rewritten) history
        return after

    # -- tools ------------------------------------------------------------------------------
    def _run_tool(self, call_id: str, name: str, arguments: str) -> Observation:
        """Run one call and take in its effects: the files it named, the tests it ran."""
        left = self.budget.seconds_left()
        if left <= 0:
            raise BudgetExhausted("time", f"time limit reached ({self.budget.elapsed:.0f}s of "
                                          f"{self.budget.limits.max_seconds:.0f}s) before {name}")
        self.ctx.test_timeout = min(self._test_timeout, left)  # a test run gets at most the time left
        self.trajectory.event("tool_call", id=call_id, name=name, arguments=arguments)
        observation = dispatch(self._by_name, name, arguments, self.ctx)
        self._last_paths.update(observation.paths)
        self.trajectory.event("tool_result", id=call_id, name=name, ok=observation.ok,
                              content=cut_middle(observation.text, self.max_observation_chars),
                              data=observation.data)
        if observation.test_run is not None:
            for target in self.ctx.target_tests:
                self.policy.record_test_run(target, observation.test_run.passed(target))
        return observation

    def _targets_green(self, run: TestRun | None) -> bool:
        """Did a test run the model made show every target passing? (Then the harness checks for itself.)"""
        return bool(run is not None and self.ctx.target_tests
                    and all(run.passed(t) for t in self.ctx.target_tests))

    def _verify(self) -> Verification:
        verdict = self.verifier()
        self.trajectory.event("test_run", purpose="verify", resolved=verdict.resolved, detail=verdict.detail,
                              runs=[r.to_dict() for r in verdict.runs])
        self.progress(("✓ " if verdict.resolved else "✗ ") + verdict.detail)
        return verdict


@dataclass(frozen=True)
class _Counted:
    end: int      # the request held messages[:end]
    tokens: int   # what the API counted for the messages it added (the first group: with the tool schemas)
    digest: str   # those messages as they were sent


def _digest(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class _AttemptBudget:
    """The budget as the client sees it around retries and resends of one call."""

    def __init__(self, loop: Loop, prompt: int) -> None:
        self.loop = loop
        self.prompt = prompt  # the prompt bound of the request being retried

    def failed(self, cost: AttemptCost) -> None:
        usage = cost.usage or Usage(prompt_tokens=self.prompt if cost.prompt else 0, completion_tokens=cost.output)
        charged = cost_of(usage, self.loop.prices)
        self.loop.budget.charge_attempt(usage, charged)
        self.loop.trajectory.event("attempt_failed", reason=cost.reason, usage=usage.to_dict(), cost=charged,
                                   estimated=cost.usage is None)

    def next_allowance(self) -> int:
        loop = self.loop
        return loop.budget.allow_call(self.prompt, min(loop.max_output, loop.context_limit - self.prompt))

    def seconds_left(self) -> float | None:
        return self.loop.budget.seconds_left()


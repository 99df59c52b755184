"""Unit tests of the loop's pure parts: task parsing, policy globs, fail-closed budgets, settings."""

from __future__ import annotations

import pytest

from agent.budget import Budget, BudgetExhausted
from agent.config import BudgetSettings, ConfigError, PolicySettings, PriceRow, load_settings
from agent.model.types import Usage
from agent.policy import Policy, matches
from agent.task import Task, is_selector, slugify

USD = PriceRow(input=1.40, cached_input=0.26, output=4.40)


@pytest.mark.parametrize(("text", "selector"), [
    ("tests/test_x.py::test_y", True), ("tests/test_x.py", True), ("tests/test_x.py::TestA::test_b[1-2]", True),
    ("the discount is wrong", False), ("fix tests/test_x.py please", False),
])
def test_selector_or_free_text(text, selector):
    assert is_selector(text) is selector


def test_task_targets_and_slug():
    target = "tests/test_cart.py::test_discount"
    task = Task.parse(target, ["tests/test_more.py::test_a", target])
    assert task.targets == ["tests/test_cart.py::test_discount", "tests/test_more.py::test_a"]
    assert task.target_files == ["tests/test_cart.py", "tests/test_more.py"]
    assert task.slug == "test-discount"
    assert Task.parse("Discount applied TWICE!!").slug == "discount-applied-twice"
    assert slugify("") == "task"


@pytest.mark.parametrize(("path", "pattern", "hit"), [
    ("src/pay/core.py", "src/pay/**", True), ("src/pay/core.py", "**/core.py", True), ("core.py", "**/core.py", True),
    ("src/pay/core.py", "*.py", False), ("src/pay/core.py", "src/*/core.py", True),
    ("src/pay/core.py", "src/pay", True),
    ("src/payments.py", "src/pay", False), ("src/pay/x/core.py", "src/*/core.py", False),
    (".github/workflows/ci.yml", ".github/**", True), ("./src/pay/core.py", "src/pay/**", True),
])
def test_critical_globs(path, pattern, hit):
    assert matches(path, pattern) is hit


def test_policy_high_by_default_max_for_critical_and_after_failures():
    policy = Policy(PolicySettings(critical=["src/pay/**"], max_after_failures=2))
    assert policy.decide({"src/shop/cart.py"}).mode == "high"
    decision = policy.decide({"src/shop/cart.py", "src/pay/core.py"})
    assert decision.mode == "max" and "src/pay/core.py" in decision.reason
    policy.record_test_run("t::a", passed=False)
    assert policy.decide(set()).mode == "high"
    policy.record_test_run("t::a", passed=False)
    assert policy.decide(set()).mode == "max"
    policy.record_test_run("t::a", passed=True)
    assert policy.decide(set()).mode == "high"
    assert Policy(PolicySettings(), forced_mode="max").decide(set()).mode == "max"


def _budget(**limits) -> Budget:
    base = {"max_turns": 10, "max_tokens": 100_000, "max_cost_usd": 1.0, "max_seconds": 60}
    return Budget(BudgetSettings(**{**base, **limits}), USD)


def test_budget_shrinks_the_output_allowance_then_refuses():
    budget = _budget(max_tokens=20_000)
    assert budget.allow_call(prompt_tokens=5_000, max_output=32_768) == 15_000
    budget.charge(Usage(prompt_tokens=5_000, completion_tokens=10_000), {"usd": 0.05})
    with pytest.raises(BudgetExhausted) as exc:
        budget.allow_call(prompt_tokens=5_000, max_output=32_768)
    assert exc.value.kind == "tokens"


def test_budget_cost_is_projected_at_worst_case_before_the_call():
    budget = _budget(max_cost_usd=0.01)
    # 5,000 fresh input tokens cost $0.007; what is left buys ~681 output tokens: not a useful call
    with pytest.raises(BudgetExhausted) as exc:
        budget.allow_call(prompt_tokens=5_000, max_output=32_768)
    assert exc.value.kind == "cost"
    allowance = _budget(max_cost_usd=0.05).allow_call(prompt_tokens=5_000, max_output=32_768)
    assert 5_000 * 1.40 / 1e6 + allowance * 4.40 / 1e6 <= 0.05


def test_budget_turns_and_time():
    budget = _budget(max_turns=1)
    budget.charge(Usage(), {})
    with pytest.raises(BudgetExhausted, match="turn limit"):
        budget.allow_call(10, 100)
    late = _budget(max_seconds=1)
    late.started -= 2
    with pytest.raises(BudgetExhausted, match="time limit"):
        late.allow_call(10, 100)


def test_settings_layering(tmp_path):
    (tmp_path / ".agent.toml").write_text('[policy]\ncritical = ["src/pay/**"]\n[budget]\nmax_turns = 7\n')
    settings = load_settings(tmp_path, {"budget.max_turns": 9}, env={"AGENT_SANDBOX": "local"})
    assert settings.policy.critical == ["src/pay/**"]
    assert settings.budget.max_turns == 9
    assert settings.sandbox.kind == "local"
    assert settings.prices()["rmb"] == PriceRow(input=8.0, cached_input=2.0, output=28.0)
    (tmp_path / ".agent.toml").write_text("[budget]\nmax_turns = 0\n")
    with pytest.raises(ConfigError, match="budget.max_turns"):
        load_settings(tmp_path, env={})
    (tmp_path / ".agent.toml").write_text("[budget\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path, env={})


def test_unknown_default_mode_is_a_config_error(tmp_path):
    (tmp_path / ".agent.toml").write_text('[model]\ndefault_mode = "medium"\n')
    with pytest.raises(ConfigError, match="model.default_mode"):
        load_settings(tmp_path, env={})


def test_filesystem_errors_in_a_tool_become_observations(tmp_path):
    from tools.base import ToolContext, dispatch
    from tools.registry import by_name, fix_tools

    (tmp_path / "a.py").write_text("x = 1\n")
    ctx = ToolContext(root=tmp_path)
    observation = dispatch(by_name(fix_tools()), "create", '{"path": "a.py/b/c.py", "content": "y"}', ctx)
    assert not observation.ok and "create failed" in observation.text

"""The reproduction phase's pure rules: what counts as only adding tests, and the phase's budget share."""

from __future__ import annotations

import pytest

from agent.budget import Budget, BudgetExhausted, PhaseCap
from agent.config import load_settings
from agent.model.types import Usage
from agent.reproduction_phase import defined_tests, only_adds

BASE = "import pytest\n\n\ndef test_a():\n    assert 1\n\n\nclass TestB:\n    def test_c(self):\n        assert 1\n"


def test_inserting_new_tests_is_allowed():
    new = BASE + "\n\ndef test_new():\n    assert 2\n"
    assert only_adds(BASE, new) is None
    assert defined_tests(new) - defined_tests(BASE) == {"test_new"}
    assert defined_tests(BASE) == {"test_a", "TestB::test_c"}


@pytest.mark.parametrize(("new", "words"), [
    (BASE.replace("assert 1\n\n\nclass", "assert 0\n\n\nclass"), "change or remove existing lines"),
    (BASE.replace("def test_a():\n    assert 1\n", ""), "change or remove existing lines"),
    (BASE + "\ntest_a = lambda: None\n", "bind `test_a` again in the module"),
    (BASE.replace("        assert 1\n", "        assert 1\n\n    test_c = None\n"),
     "bind `test_c` again in class TestB"),
    (BASE + "\nfrom os import path as test_a\n", "bind `test_a` again"),
])
def test_changing_or_shadowing_an_existing_test_is_refused(new, words):
    assert words in (only_adds(BASE, new) or "")


def test_unparsable_text_passes_while_writing_but_not_when_checked():
    half = BASE + "\ndef test_new(:\n"
    assert only_adds(BASE, half) is None
    assert "does not parse" in only_adds(BASE, half, strict=True)


def test_the_phase_cap_stops_turns_and_cost_with_its_own_kind():
    settings = load_settings(None, {"budget.max_cost_usd": 1.0}, env={})
    budget = Budget(settings.budget, settings.prices()["usd"])
    budget.phase = PhaseCap("reproduction", 1, 0.01, "the reproduction phase")
    budget.allow_call(1000, 2048)
    budget.charge(Usage(prompt_tokens=1000, completion_tokens=100), {"usd": 0.001})
    with pytest.raises(BudgetExhausted) as turns:
        budget.allow_call(1000, 2048)
    assert turns.value.kind == "reproduction" and "share of the turns" in str(turns.value)
    budget.phase = PhaseCap("reproduction", 10, 0.0012, "the reproduction phase")
    with pytest.raises(BudgetExhausted) as cost:
        budget.allow_call(1000, 2048)
    assert cost.value.kind == "reproduction" and "share of the cost" in str(cost.value)
    budget.phase = None
    assert budget.allow_call(1000, 2048) > 0  # the run's own budget is far from spent

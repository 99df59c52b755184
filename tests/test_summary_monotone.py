"""Property: at a larger token budget, every file the summary showed at a smaller one is still shown."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.summary import summarise
from evals.sample_repo import make_sample_repo

NAMES = [f"fn_{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
DIRS = ["src/pkg", "src/pkg/sub", "tests", "examples", "src/other"]


@st.composite
def repos(draw: st.DrawFn) -> dict[str, str]:
    """A few modules defining and calling a shared pool of names, plus one test file calling some."""
    files: dict[str, str] = {"src/pkg/__init__.py": ""}
    for i in range(draw(st.integers(2, 30))):
        d = draw(st.sampled_from(DIRS))
        defs = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=12, unique=True))
        calls = draw(st.lists(st.sampled_from(NAMES), max_size=6))
        body = "".join(f"def {n}(x):\n    return {' + '.join([*(f'{c}(x)' for c in calls[:2]), 'x'])}\n\n\n"
                       for n in defs)
        body += "".join(f"{c}(1)\n" for c in calls)
        files[f"{d}/mod_{i}.py"] = body or "X = 1\n"
    calls = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4))
    imports = "".join(f"from {p[4:-3].replace('/', '.')} import *\n" for p in sorted(files)
                      if p.startswith("src/pkg/") and draw(st.booleans()))
    files["tests/test_main.py"] = (imports + "\n\ndef test_it():\n"
                                   + "".join(f"    {c}(1)\n" for c in calls))
    return files


def shown(text: str, files: set[str]) -> set[str]:
    out = set()
    for line in text.splitlines():
        name = line[3:] if line.startswith("## ") else line.split(":", 1)[0]
        if name in files:
            out.add(name)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=repos(), budgets=st.lists(st.integers(16, 3000), min_size=2, max_size=8, unique=True),
       with_test=st.booleans())
def test_larger_budget_never_drops_a_file(files: dict[str, str], budgets: list[int], with_test: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        make_sample_repo(root, files)
        targets = ["tests/test_main.py::test_it"] if with_test else []
        before: set[str] = set()
        last = 0
        for tokens in sorted(budgets):
            index, _, summary = summarise(root, targets, [], tokens, task_text=" ".join(targets),
                                          cache_dir=Path(tmp) / "cache")
            now = shown(summary.text, set(index.files))
            assert before <= now, (last, tokens, sorted(before - now), summary.text)
            assert len(summary.text) <= tokens * 4 + 3
            before, last = now, tokens

"""The oracle replays a gold patch through the edit tool: each hunk must become an edit whose `old`
matches exactly one place, even when the hunk's own context appears twice in the file (humanize's
naturalday and naturaldate share a try-block)."""

from __future__ import annotations

import subprocess

from evals.oracle import plan_turns

HEAD = "    import datetime as dt\n\n    try:\n        value = dt.date(value.year, value.month, value.day)\n"
TAIL = "    except AttributeError:\n        return str(value)\n    except ValueError:\n        return str(value)\n"
BEFORE = f"def first(value):\n{HEAD}{TAIL}    return value\n\n\ndef second(value):\n{HEAD}{TAIL}    return value\n"
AFTER = BEFORE.replace(f"def second(value):\n{HEAD}{TAIL}",
                       f"def second(value):\n{HEAD}        today = dt.date.today()\n{TAIL}")


def test_a_hunk_whose_context_occurs_twice_is_widened_from_the_file(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "m.py").write_text(BEFORE)
    (repo / "new.py").write_text(AFTER)
    patch = subprocess.run(["git", "diff", "--no-index", "-U3", "m.py", "new.py"], cwd=repo, capture_output=True,
                           text=True).stdout.replace("b/new.py", "b/m.py")
    (repo / "new.py").unlink()
    edits = [c["arguments"] for t in plan_turns(patch, repo) for c in t.get("tool_calls", []) if c["name"] == "edit"]
    assert len(edits) == 1
    assert BEFORE.count(edits[0]["old"]) == 1, edits[0]["old"]  # before: it occurred twice, the edit was refused
    assert BEFORE.replace(edits[0]["old"], edits[0]["new"]) == AFTER

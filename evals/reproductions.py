"""Reproduction data of an instance: the issue text a user files and the tests that reproduce it.

Each instance of the bundled and real-commit sets carries `issue_statement` (the symptom, with no
test named), `reproduction_patch` (a diff that only adds tests, applying at base_commit) and
`REPRO_TESTS` (the node ids it adds, JSON-encoded as FAIL_TO_PASS is). The rules here are the ones a
description-only run is held to: the reproduction adds test code and nothing else, and the issue text
does not give away the answer key. They are structural, so a unit test checks them on the data;
whether the tests fail at base and pass with the gold patch is checked by evals.check_reproductions.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

from agent.diffs import parse_diff
from evals.bench_localization_real import is_test_path

FIELDS = ("issue_statement", "reproduction_patch", "REPRO_TESTS")


def decode_list(raw: Any) -> list[str]:
    """A test-id list stored JSON-encoded (SWE-bench style) or plain."""
    return json.loads(raw) if isinstance(raw, str) else list(raw or [])


def added_tests(rel: str, code: str) -> list[str]:
    """Node ids of the test functions (module level or in a class) that `code` defines in file `rel`."""
    ids = []
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            ids.append(f"{rel}::{node.name}")
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            ids += [f"{rel}::{node.name}::{item.name}" for item in node.body
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test")]
    return ids


def addition_patch(root: Path, additions: dict[str, str]) -> str:
    """The git diff that appends each code block to its file (created when absent) in the clean tree `root`.

    The tree is left as it was: the diff is what is kept, not the edit.
    """
    created = []
    try:
        for rel, code in additions.items():
            path = root / rel
            if path.exists():
                text = path.read_text(encoding="utf-8")
                text = text.rstrip("\n") + "\n\n\n" + code.strip("\n") + "\n"
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                created.append(rel)
                text = code.lstrip("\n").rstrip("\n") + "\n"
            path.write_text(text, encoding="utf-8")
        if created:
            subprocess.run(["git", "-C", str(root), "add", "-N", "--", *created], check=True, capture_output=True)
        return subprocess.run(["git", "-C", str(root), "diff", "--", *additions], check=True, capture_output=True,
                              text=True).stdout
    finally:
        if created:
            subprocess.run(["git", "-C", str(root), "rm", "-q", "--cached", "--", *created], capture_output=True)
            for rel in created:
                (root / rel).unlink(missing_ok=True)
        kept = [rel for rel in additions if rel not in created]
        if kept:
            subprocess.run(["git", "-C", str(root), "checkout", "-q", "--", *kept], capture_output=True)


def removed_lines(patch: str) -> list[str]:
    """Lines the patch deletes or replaces (a pure addition has none)."""
    out = []
    for line in patch.splitlines():
        if line.startswith("-") and not line.startswith("--- "):
            out.append(line)
    return out


def _test_names(ids: list[str]) -> set[str]:
    """Every name a statement must not mention: test files (path and base name) and test functions/classes."""
    names: set[str] = set()
    for node in ids:
        parts = node.split("[", 1)[0].split("::")
        names.add(parts[0])
        names.add(PurePosixPath(parts[0]).name)
        names.update(p for p in parts[1:] if p.lower().startswith("test"))
    return names


def structural_problems(record: dict[str, Any]) -> list[str]:
    """What breaks the reproduction rules in one raw record; empty when it keeps them."""
    problems = [f"missing {name}" for name in FIELDS if not record.get(name)]
    if problems:
        return problems
    statement, patch = record["issue_statement"], record["reproduction_patch"]
    repro = decode_list(record["REPRO_TESTS"])
    if not isinstance(record["REPRO_TESTS"], str):
        problems.append("REPRO_TESTS is not JSON-encoded")
    if not repro:
        problems.append("REPRO_TESTS is empty")
    if removed_lines(patch):
        problems.append(f"reproduction_patch removes or changes lines: {removed_lines(patch)[0][:80]!r}")
    items = parse_diff(patch)
    if not items:
        problems.append("reproduction_patch holds no file")
    for item in items:
        if item.status not in ("added", "modified"):
            problems.append(f"reproduction_patch {item.status} {item.path}")
        if not is_test_path(item.path):
            problems.append(f"reproduction_patch touches a non-test file {item.path}")
    touched = {item.path for item in items}
    for node in repro:
        if node.split("::", 1)[0] not in touched:
            problems.append(f"{node} is not in a file the reproduction_patch adds to")
        if re.search(r"^\+\s*(async\s+)?def\s+" + re.escape(node.split("::")[-1].split("[", 1)[0]) + r"\b", patch,
                     re.M) is None:
            problems.append(f"{node} is not a function the reproduction_patch adds")
    ids = repro + decode_list(record.get("FAIL_TO_PASS")) + decode_list(record.get("PASS_TO_PASS"))
    lowered = statement.lower()
    for name in sorted(_test_names(ids)):
        if re.search(r"(?<![\w.])" + re.escape(name.lower()) + r"(?![\w])", lowered):
            problems.append(f"issue_statement names the test {name!r}")
    if len(statement.splitlines()) > 12:
        problems.append("issue_statement is longer than 12 lines")
    return problems


def with_reproduction(record: dict[str, Any], root: Path, statement: str, additions: dict[str, str]) -> dict[str, Any]:
    """`record` plus the three fields, the patch built against `root` (a clean checkout of base_commit)."""
    ids = [node for rel, code in additions.items() for node in added_tests(rel, code)]
    out = {**record, "issue_statement": statement.strip("\n"),
           "reproduction_patch": addition_patch(root, additions), "REPRO_TESTS": json.dumps(ids)}
    problems = structural_problems(out)
    if problems:
        raise ValueError(f"{record['instance_id']}: {'; '.join(problems)}")
    return out

"""The file tools (search, view, outline, edit, create, comment, finish) on a real git repo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sandbox.pytest_runs import is_test_file
from tools.base import ToolContext, ToolLimits, dispatch, schemas
from tools.registry import by_name, fix_tools, review_tools

CART = '''"""A shopping cart."""


class Cart:
    def __init__(self):
        self.items = []

    def add(self, name, price):
        self.items.append((name, price))

    def total(self, discount=0):
        subtotal = sum(price for _, price in self.items)
        return subtotal - discount


def helper(x):
    return x * 2
'''

TEST_CART = '''from src.cart import Cart


def test_total():
    cart = Cart()
    cart.add("a", 10)
    assert cart.total(discount=0.1) == 9
'''


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "build").mkdir()
    (root / "src" / "cart.py").write_text(CART)
    (root / "src" / "__init__.py").write_text("")
    (root / "tests" / "test_cart.py").write_text(TEST_CART)
    (root / "build" / "generated.py").write_text("def total(): pass\n")
    (root / ".gitignore").write_text("build/\n")
    (root / "README.md").write_text("# Cart\n\n## Usage\n\nCall total.\n")
    (root / "blob.bin").write_bytes(b"\x00\x01\x02total")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("total secret\n")
    (root / "escape").symlink_to(outside)
    (root / "escape_file").symlink_to(outside / "secret.txt")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return root


@pytest.fixture
def ctx(repo: Path) -> ToolContext:
    return ToolContext(root=repo, protected_paths=is_test_file)


def call(ctx: ToolContext, name: str, review: bool = False, **args):
    tools = by_name(review_tools() if review else fix_tools())
    return dispatch(tools, name, json.dumps(args), ctx)


# --- registry and schemas -------------------------------------------------------------------------

def test_registry_order_and_read_only_review():
    names = [t.name for t in fix_tools()]
    assert names == ["search", "view", "outline", "edit", "create", "run_tests", "finish"]
    assert [t.name for t in fix_tools(shell=True)] == [*names[:-1], "run", "finish"]
    assert [t.name for t in review_tools()] == ["search", "view", "outline", "comment", "finish"]
    assert not any(t.writes for t in review_tools())
    # with a read-only sandbox, the sandboxed tools come along; nothing else that writes
    assert [t.name for t in review_tools(run_tests=True)] == ["search", "view", "outline", "run_tests", "run",
                                                              "comment", "finish"]
    assert all(t.sandboxed for t in review_tools(run_tests=True) if t.writes)
    assert {t.name for t in fix_tools(shell=True) if t.writes} == {"edit", "create", "run"}


def test_schemas_match_the_contract_and_are_stable():
    decl = {s["function"]["name"]: s["function"]["parameters"] for s in schemas(fix_tools() + review_tools())}
    assert list(decl["search"]["properties"]) == ["pattern", "path", "glob", "max_results"]
    assert decl["search"]["required"] == ["pattern"]
    assert list(decl["view"]["properties"]) == ["path", "start", "end"]
    assert list(decl["edit"]["properties"]) == ["path", "old", "new"]
    assert list(decl["create"]["properties"]) == ["path", "content"]
    assert list(decl["run_tests"]["properties"]) == ["tests"]
    assert list(decl["comment"]["properties"]) == ["path", "line", "body"]
    assert all(p.get("description") for d in decl.values() for p in d["properties"].values())
    assert json.dumps(schemas(fix_tools())) == json.dumps(schemas(fix_tools()))


def test_bad_arguments_become_observations(ctx):
    tools = by_name(fix_tools())
    assert "not valid JSON" in dispatch(tools, "view", "{path:", ctx).text
    obs = call(ctx, "view", start=1)
    assert not obs.ok and "path" in obs.text and "Field required" in obs.text
    obs = call(ctx, "search", pattern="x", max_results=0)
    assert not obs.ok and "max_results" in obs.text
    assert "unknown tool" in dispatch(tools, "comment", "{}", ctx).text  # not offered in fix mode


# --- path safety ----------------------------------------------------------------------------------

ESCAPES = ["../outside/secret.txt", "src/../../outside/secret.txt", "escape/secret.txt", "escape_file",
           "/etc/passwd"]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("tool", ["view", "outline", "search", "edit", "create"])
def test_paths_outside_the_repo_are_refused(ctx, repo, tool, path):
    args = {"view": {}, "outline": {}, "search": {"pattern": "x"}, "edit": {"old": "total", "new": "t"},
            "create": {"content": "x"}}[tool]
    obs = call(ctx, tool, path=path, **args)
    assert not obs.ok and obs.text.startswith("refused:")
    assert "absolute" in obs.text if path.startswith("/") else "outside the repository" in obs.text
    assert (repo.parent / "outside" / "secret.txt").read_text() == "total secret\n"


def test_search_does_not_follow_symlinks_out(ctx):
    obs = call(ctx, "search", pattern="total secret")
    assert obs.text == "no matches for 'total secret'" and obs.data["matches"] == 0


# --- search ---------------------------------------------------------------------------------------

def test_search_finds_matches_respecting_gitignore(ctx):
    obs = call(ctx, "search", pattern=r"def total\(")
    assert obs.ok
    assert obs.text.splitlines() == ["src/cart.py:11:     def total(self, discount=0):"]
    assert "build/" not in call(ctx, "search", pattern="total").text
    assert ".git/" not in call(ctx, "search", pattern="init").text


def test_search_glob_and_path(ctx):
    obs = call(ctx, "search", pattern="total", glob="*.md")
    assert obs.text == "README.md:5: Call total."
    obs = call(ctx, "search", pattern="total", path="tests")
    assert obs.text.startswith("tests/test_cart.py:4: def test_total():")


def test_search_cap_and_note(ctx, repo):
    (repo / "src" / "many.py").write_text("".join(f"value_{i} = {i}\n" for i in range(30)))
    obs = call(ctx, "search", pattern="value_", max_results=5)
    lines = obs.text.splitlines()
    assert lines[:5] == [f"src/many.py:{i + 1}: value_{i} = {i}" for i in range(5)]
    assert "25 more matches not shown" in lines[5]
    assert obs.data == {"matches": 30, "shown": 5}


def test_search_long_lines_cut_around_the_match(ctx, repo):
    (repo / "src" / "min.js").write_text("x" * 5000 + "NEEDLE" + "y" * 5000 + "\n")
    obs = call(ctx, "search", pattern="NEEDLE")
    first = obs.text.splitlines()[0]
    assert "NEEDLE" in first and len(first) < 300 and "chars cut" in first
    assert "1 long line cut" in obs.text


def test_search_bad_regex_reports_rg_message(ctx):
    obs = call(ctx, "search", pattern="total(")
    assert not obs.ok and "regex parse error" in obs.text


def test_search_no_match_and_leading_dash(ctx, repo):
    assert call(ctx, "search", pattern="zzz_nothing").text == "no matches for 'zzz_nothing'"
    (repo / "src" / "flags.txt").write_text("use --verbose here\n")
    assert call(ctx, "search", pattern="--verbose").text == "src/flags.txt:1: use --verbose here"


def test_search_non_utf8_line(ctx, repo):
    (repo / "src" / "latin.txt").write_bytes(b"caf\xe9 total\n")
    assert "src/latin.txt:1: caf\ufffd total" in call(ctx, "search", pattern="total").text


def test_search_lists_in_scope_matches_first(ctx, repo):
    (repo / "lib").mkdir()
    (repo / "lib" / "a.py").write_text("helper = 1\n")
    plain = call(ctx, "search", pattern="helper").text.splitlines()
    assert plain[0].startswith("lib/a.py")
    ctx.scope_fence = ["src"]
    fenced = call(ctx, "search", pattern="helper").text.splitlines()
    assert fenced[0].startswith("src/cart.py") and fenced[-1].startswith("lib/a.py")


# --- view -----------------------------------------------------------------------------------------

def test_view_numbered_lines_and_touched(ctx):
    obs = call(ctx, "view", path="src/cart.py", start=4, end=6)
    assert obs.text.splitlines()[:3] == ["4\tclass Cart:", "5\t    def __init__(self):",
                                         "6\t        self.items = []"]
    assert "[lines 4-6 of 17]" in obs.text and "start=7" in obs.text
    assert ctx.touched == {"src/cart.py"}


def test_view_whole_small_file_has_no_notes(ctx):
    obs = call(ctx, "view", path="./src/cart.py")
    assert obs.text.splitlines()[-1] == "17\t    return x * 2"
    assert obs.data["path"] == "src/cart.py"


def test_view_window_is_bounded(ctx, repo):
    (repo / "big.txt").write_text("".join(f"line {i}\n" for i in range(1, 1001)))
    ctx.limits = ToolLimits(view_lines=50)
    obs = call(ctx, "view", path="big.txt")
    lines = obs.text.splitlines()
    assert lines[0] == " 1\tline 1" and lines[49] == "50\tline 50"
    assert "at most 50 lines a call" in obs.text and "start=51" in obs.text
    obs = call(ctx, "view", path="big.txt", start=990)
    assert obs.text.splitlines()[-2] == "1000\tline 1000"


def test_view_bad_ranges(ctx):
    assert "past the end" in call(ctx, "view", path="src/cart.py", start=99).text
    assert "before start" in call(ctx, "view", path="src/cart.py", start=5, end=2).text
    assert not call(ctx, "view", path="src/cart.py", start=0).ok


def test_view_directory_binary_and_non_utf8(ctx, repo):
    listing = call(ctx, "view", path=".").text
    assert "src/" in listing and ".git/" not in listing and "README.md" in listing
    assert "escape/ (symlink out of the repository)" in listing
    assert "binary file" in call(ctx, "view", path="blob.bin").text
    (repo / "latin.txt").write_bytes(b"caf\xe9\n")
    obs = call(ctx, "view", path="latin.txt")
    assert "1\tcaf\ufffd" in obs.text and "not valid UTF-8" in obs.text
    assert "no such file" in call(ctx, "view", path="nope.py").text


# --- outline --------------------------------------------------------------------------------------

def test_outline_python_with_tree_sitter(ctx):
    obs = call(ctx, "outline", path="src/cart.py")
    assert obs.data["source"] == "tree-sitter"
    lines = obs.text.splitlines()
    assert lines[0] == "src/cart.py:"
    assert lines[1].split() == ["4-13", "class", "Cart"]
    assert lines[3].strip() == "8-9      def add(self, name, price)"
    assert lines[-1].split() == ["16-17", "def", "helper(x)"]


def test_outline_regex_fallback_and_index_first(ctx, repo):
    (repo / "app.js").write_text("export function load(x) {\n  return x\n}\nclass View {}\n")
    assert call(ctx, "outline", path="app.js").text.splitlines()[1:] == [
        "1  export function load(x)", "4  class View {}"]
    assert "3  ## Usage" in call(ctx, "outline", path="README.md").text

    class Index:
        def outline(self, rel: str) -> str | None:
            return f"index outline of {rel}" if rel.endswith(".py") else None

    ctx.index = Index()
    assert call(ctx, "outline", path="src/cart.py").text == "index outline of src/cart.py"
    assert call(ctx, "outline", path="app.js").data["source"] == "regex"
    assert "directory" in call(ctx, "outline", path="src").text


# --- edit -----------------------------------------------------------------------------------------

def test_edit_happy_path(ctx, repo):
    obs = call(ctx, "edit", path="src/cart.py", old="return subtotal - discount",
               new="return subtotal * (1 - discount)")
    assert obs.ok and obs.data == {"path": "src/cart.py", "edited": True}
    assert "13\t        return subtotal * (1 - discount)" in obs.text
    assert "10\t" in obs.text and "16\t" in obs.text  # context around the edit
    assert "subtotal * (1 - discount)" in (repo / "src" / "cart.py").read_text()
    assert ctx.touched == {"src/cart.py"}


def test_edit_miss_shows_nearest_candidates(ctx, repo):
    before = (repo / "src" / "cart.py").read_text()
    old = "def total(self, discount):\n    subtotal = sum(self.items)"
    obs = call(ctx, "edit", path="src/cart.py", old=old, new="x")
    assert not obs.ok and "not found" in obs.text
    assert "--- lines 11-12" in obs.text
    assert "11\t    def total(self, discount=0):" in obs.text
    assert (repo / "src" / "cart.py").read_text() == before


def test_edit_miss_by_indentation_says_so(ctx):
    obs = call(ctx, "edit", path="src/cart.py", old="def add(self, name, price):\n"
               "    self.items.append((name, price))", new="x")
    assert "apart from indentation" in obs.text and "8\t    def add" in obs.text


def test_edit_miss_with_nothing_close(ctx):
    obs = call(ctx, "edit", path="src/cart.py", old="qqqqqqqqqqqqqqqq zzzzzzzzzzzz", new="x")
    assert not obs.ok and "nothing in the file is close" in obs.text


def test_edit_duplicates_named_with_lines(ctx, repo):
    obs = call(ctx, "edit", path="src/cart.py", old="self.items", new="self.things")
    assert not obs.ok and "occurs 3 times" in obs.text and "lines 6, 9, 12" in obs.text
    assert "self.things" not in (repo / "src" / "cart.py").read_text()


def test_edit_keeps_crlf_files(ctx, repo):
    (repo / "win.py").write_bytes(b"a = 1\r\nb = 2\r\n")
    obs = call(ctx, "edit", path="win.py", old="a = 1\nb = 2", new="a = 3\nb = 4")
    assert obs.ok
    assert (repo / "win.py").read_bytes() == b"a = 3\r\nb = 4\r\n"


def test_edit_refuses_test_files_unless_allowed(ctx, repo):
    obs = call(ctx, "edit", path="tests/test_cart.py", old="== 9", new="== 9.9")
    assert not obs.ok and "test file" in obs.text and "--allow-test-edits" in obs.text
    assert "== 9\n" in (repo / "tests" / "test_cart.py").read_text()
    ctx.allow_test_edits = True
    assert call(ctx, "edit", path="tests/test_cart.py", old="== 9", new="== 9.9").ok


def test_edit_scope_fence(ctx, repo):
    ctx.scope_fence = ["lib"]
    obs = call(ctx, "edit", path="src/cart.py", old="return x * 2", new="return x * 3")
    assert not obs.ok and "outside the task's scope (lib)" in obs.text
    ctx.scope_fence = ["src/"]
    assert call(ctx, "edit", path="src/cart.py", old="return x * 2", new="return x * 3").ok


def test_edit_refuses_git_metadata_binary_and_noop(ctx, repo):
    assert "git metadata" in call(ctx, "edit", path=".git/config", old="[core]", new="[x]").text
    assert "binary" in call(ctx, "edit", path="blob.bin", old="total", new="x").text
    assert "identical" in call(ctx, "edit", path="src/cart.py", old="helper", new="helper").text
    assert "old: String should have at least 1 character" in call(ctx, "edit", path="src/cart.py", old="",
                                                                   new="x").text


def test_edit_through_a_symlink_inside_the_repo(ctx, repo):
    (repo / "link.py").symlink_to(repo / "src" / "cart.py")
    obs = call(ctx, "edit", path="link.py", old="return x * 2", new="return x + x")
    assert obs.ok and obs.data["path"] == "src/cart.py"
    assert "return x + x" in (repo / "src" / "cart.py").read_text()


# --- create ---------------------------------------------------------------------------------------

def test_create_makes_parents_and_refuses_overwrite(ctx, repo):
    obs = call(ctx, "create", path="src/pkg/new_mod.py", content="X = 1\nY = 2\n")
    assert obs.ok and obs.text == "created src/pkg/new_mod.py (2 lines)"
    assert (repo / "src" / "pkg" / "new_mod.py").read_text() == "X = 1\nY = 2\n"
    assert "src/pkg/new_mod.py" in ctx.touched
    obs = call(ctx, "create", path="src/cart.py", content="oops")
    assert not obs.ok and "already exists" in obs.text
    assert (repo / "src" / "cart.py").read_text() == CART


def test_create_refusals(ctx, repo):
    assert "test file" in call(ctx, "create", path="tests/test_new.py", content="def test_x(): pass\n").text
    assert "test file" in call(ctx, "create", path="conftest.py", content="").text
    assert not (repo / "tests" / "test_new.py").exists()
    assert "git metadata" in call(ctx, "create", path=".git/hooks/pre-commit", content="#!/bin/sh\n").text
    assert "directory" in call(ctx, "create", path="src/", content="x").text
    ctx.scope_fence = ["lib"]
    assert "outside the task's scope" in call(ctx, "create", path="src/z.py", content="").text


# --- comment and finish ---------------------------------------------------------------------------

def test_comment_records_valid_findings(ctx):
    obs = call(ctx, "comment", review=True, path="src/cart.py", line=13, body="discount is a rate here")
    assert obs.ok and ctx.comments == [{"path": "src/cart.py", "line": 13, "body": "discount is a rate here"}]
    assert "past the end" in call(ctx, "comment", review=True, path="src/cart.py", line=18, body="x").text
    assert "no such file" in call(ctx, "comment", review=True, path="nope.py", line=1, body="x").text
    assert "already recorded" in call(ctx, "comment", review=True, path="src/cart.py", line=13,
                                      body="discount is a rate here").text
    assert not call(ctx, "comment", review=True, path="src/cart.py", line=0, body="x").ok
    assert len(ctx.comments) == 1


def test_finish_sets_the_flag_only(ctx):
    obs = call(ctx, "finish", summary="  fixed the discount  ")
    assert ctx.finished == "fixed the discount" and obs.text == "Noted; finishing."
    ctx.sandbox = object()  # fix mode: the loop verifies
    assert "verify the target tests" in call(ctx, "finish", summary="done").text
    assert not call(ctx, "finish", summary="").ok


def test_is_test_file_follows_pytest_conventions():
    assert is_test_file("tests/test_cart.py") and is_test_file("cart_test.py") and is_test_file("conftest.py")
    assert not is_test_file("src/cart.py") and not is_test_file("tests/helpers.py")
    assert not is_test_file("tests/test_data.json") and not is_test_file("src/testing.py")


def test_edit_miss_on_a_big_file_is_fast_and_finds_the_block(ctx, repo):
    import time

    body = "".join(f"    value_{i} = compute(x, {i * 7 % 1000}) + other_{i % 7}\n" for i in range(5000))
    (repo / "src" / "big.py").write_text(body)
    old = "".join(body.splitlines(keepends=True)[2500:2510]).replace("compute", "compte")
    started = time.perf_counter()
    obs = call(ctx, "edit", path="src/big.py", old=old, new="x")
    assert time.perf_counter() - started < 20.0  # a guard against a quadratic search (minutes), not a timing
    assert obs.text.splitlines()[1].startswith("--- lines 2501-2510")

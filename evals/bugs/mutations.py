"""Single-site bug injections of the kinds real bugs have, found through the AST.

Each mutation is one text replacement in one file (a span of one line, or whole
lines for a deleted guard), so its reverse is a small, readable gold patch.
A mutation that leaves the AST unchanged (it only hit a string or a comment) or
does not parse is dropped.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

KINDS = ("wrong comparison", "off-by-one", "missing None check", "swapped arguments", "wrong default",
         "wrong boolean operator")
_FLIP = {ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">", ast.Eq: "!=", ast.NotEq: "=="}
_OP_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_NO_SWAP = {"isinstance", "issubclass", "getattr", "hasattr", "setattr", "super", "print", "join", "format",
            "warn", "append", "get", "pop", "setdefault", "TypeError", "ValueError", "KeyError"}


@dataclass(frozen=True)
class Mutation:
    kind: str
    line: int          # 1-based first line
    start: int         # character offsets in the file's text
    end: int
    replacement: str

    def apply(self, text: str) -> str:
        return text[: self.start] + self.replacement + text[self.end:]


def _offsets(text: str) -> list[int]:
    starts, at = [0], 0
    for line in text.splitlines(keepends=True):
        at += len(line)
        starts.append(at)
    return starts


def _one_line(node: ast.AST) -> bool:
    return getattr(node, "lineno", None) is not None and node.lineno == node.end_lineno


def _function_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def candidates(text: str) -> list[Mutation]:
    """Every single-site mutation of the supported kinds in a module's source."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    starts = _offsets(text)

    def off(line: int, col: int) -> int:
        # ast columns are UTF-8 byte offsets; convert through the line's bytes
        line_text = text[starts[line - 1]: starts[line]]
        return starts[line - 1] + len(line_text.encode("utf-8")[:col].decode("utf-8", "replace"))

    def span(node: ast.AST) -> tuple[int, int]:
        return off(node.lineno, node.col_offset), off(node.end_lineno, node.end_col_offset)

    out: list[Mutation] = []
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _FLIP and _one_line(node):
            a, b = off(node.left.end_lineno, node.left.end_col_offset), off(node.comparators[0].lineno,
                                                                              node.comparators[0].col_offset)
            gap = text[a:b]
            op = _OP_TEXT[type(node.ops[0])]
            if gap.strip() == op:
                out.append(Mutation("wrong comparison", node.lineno, a, b, gap.replace(op, _FLIP[type(node.ops[0])])))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) and _one_line(node) \
                and isinstance(node.right, ast.Constant) and node.right.value == 1 \
                and not isinstance(node.right.value, bool):
            s, _ = span(node)
            _, e = span(node.left)
            out.append(Mutation("off-by-one", node.lineno, s, span(node)[1], text[s:e]))
        elif isinstance(node, ast.Slice):
            for bound in (node.lower, node.upper):
                if isinstance(bound, ast.Constant) and type(bound.value) is int and _one_line(bound):
                    s, e = span(bound)
                    out.append(Mutation("off-by-one", bound.lineno, s, e, str(bound.value + 1)))
        elif isinstance(node, ast.If) and not node.orelse and len(node.body) == 1 and _is_none_test(node.test):
            parent = parents.get(node)
            siblings = next((getattr(parent, f) for f in ("body", "orelse", "finalbody")
                             if node in (getattr(parent, f, None) or [])), [])
            if len(siblings) > 1 and isinstance(node.body[0], (ast.Return, ast.Raise, ast.Assign, ast.Continue)):
                s, e = starts[node.lineno - 1], starts[node.end_lineno]
                if text[s:off(node.lineno, node.col_offset)].strip() == "":
                    out.append(Mutation("missing None check", node.lineno, s, e, ""))
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and _one_line(node) \
                and _function_name(node.func) not in _NO_SWAP \
                and not any(isinstance(a, ast.Starred) for a in node.args[:2]):
            (s0, e0), (s1, e1) = span(node.args[0]), span(node.args[1])
            if text[s0:e0] != text[s1:e1]:
                out.append(Mutation("swapped arguments", node.lineno, s0, e1,
                                    text[s1:e1] + text[e0:s1] + text[s0:e0]))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
                if isinstance(default, ast.Constant) and _one_line(default):
                    value = default.value
                    if isinstance(value, bool):
                        new = str(not value)
                    elif isinstance(value, int):
                        new = str(value + 1)
                    else:
                        continue
                    s, e = span(default)
                    out.append(Mutation("wrong default", default.lineno, s, e, new))
        elif isinstance(node, ast.BoolOp) and len(node.values) == 2 and _one_line(node):
            _, a = span(node.values[0])
            b, _ = span(node.values[1])
            word = "and" if isinstance(node.op, ast.And) else "or"
            if text[a:b].strip() == word:
                out.append(Mutation("wrong boolean operator", node.lineno, a, b,
                                    text[a:b].replace(word, "or" if word == "and" else "and")))
    return [m for m in out if changes_code(text, m.apply(text))]


def _is_none_test(test: ast.expr) -> bool:
    return isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Is) \
        and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value is None


def code_shape(source: str) -> str | None:
    """The AST with string constants blanked: equal shapes mean an edit hit only strings/comments."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)


def changes_code(before: str, after: str) -> bool:
    """Does `after` parse and differ from `before` in more than strings and comments?"""
    shape = code_shape(after)
    return shape is not None and shape != code_shape(before)

"""Tag queries, one real tree-sitter parse per language: definitions (with nesting) and references."""

from __future__ import annotations

import pytest

from agent.summary.index import format_outline
from agent.summary.languages import EXTENSIONS, language_for
from agent.summary.tags import extract, split_patterns

PY = b'''"""Cart."""
import decimal
from .money import Money, round_half

TAX_RATE = 0.2


class Cart(Base):
    currency = "EUR"

    def add(self, item, qty=1):
        def helper():
            return 1
        self.items.append(Money(item.price) * qty)

    @property
    def total(self) -> Money:
        return round_half(sum(self.items))


def load_rule(code):
    return RULES["discount_rule"]
'''


def names(defs):
    return [(d[0], d[1], d[4]) for d in defs]


def test_python_definitions_nest_and_skip_locals():
    defs, refs, error = extract("python", PY)
    assert not error
    assert names(defs) == [
        ("TAX_RATE", "constant", 0), ("Cart", "class", 0), ("currency", "field", 1), ("EUR", "key", 1),
        ("add", "method", 1), ("total", "method", 1), ("load_rule", "function", 0),
    ]
    add = next(d for d in defs if d[0] == "add")
    assert add[2:4] == (11, 14) and add[5] == "def add(self, item, qty=1):"
    assert next(d for d in defs if d[0] == "total")[5] == "def total(self) -> Money:"


def test_python_references_calls_attributes_imports_and_string_keys():
    _, refs, _ = extract("python", PY)
    for name in ("Money", "round_half", "append", "items", "Base", "decimal", "discount_rule", "money"):
        assert refs.get(name, 0) >= 1, name
    assert refs["Money"] == 3  # imported, called, annotated
    assert "EUR" in refs and "Cart." not in refs


CASES = {
    "javascript": (b"import { fmt } from './fmt';\nexport const LIMIT = 3;\nclass Cart extends Base {\n"
                   b"  total() { return fmt(this.items); }\n}\nfunction load() { return new Cart(); }\n",
                   [("LIMIT", "constant"), ("Cart", "class"), ("total", "method"), ("load", "function")],
                   ["fmt", "items", "Cart", "Base"]),
    "typescript": (b"interface Shape { area(): number }\ntype Id = string;\nenum Color { Red }\n"
                   b"export class Square implements Shape {\n  area(): number { return calc(this.side); }\n}\n",
                   [("Shape", "interface"), ("area", "method"), ("Id", "type"), ("Color", "enum"),
                    ("Square", "class"), ("area", "method")],
                   ["calc", "side", "Shape"]),
    "go": (b"package cart\n\nconst Limit = 3\n\ntype Cart struct{ Items []Item }\n\n"
           b"func (c *Cart) Total() int { return sum(c.Items) }\n\nfunc New() *Cart { return &Cart{} }\n",
           [("Limit", "constant"), ("Cart", "type"), ("Total", "method"), ("New", "function")],
           ["sum", "Items", "Cart", "Item"]),
    "rust": (b"pub struct Cart { items: Vec<Item> }\n"
             b"impl Cart {\n    pub fn total(&self) -> u32 { sum(&self.items) }\n}\n"
             b"pub trait Priced { fn price(&self) -> u32; }\nconst LIMIT: u32 = 3;\nfn main() { println!(\"x\"); }\n",
             [("Cart", "class"), ("Cart", "impl"), ("total", "method"), ("Priced", "interface"),
              ("price", "method"), ("LIMIT", "constant"), ("main", "function")],
             ["sum", "items", "Item", "println"]),
    "java": (b"package a;\nimport java.util.List;\npublic class Cart extends Base {\n  private int count;\n"
             b"  public Cart() {}\n  public int total() { return Util.sum(items); }\n}\n",
             [("Cart", "class"), ("count", "field"), ("Cart", "method"), ("total", "method")],
             ["sum", "List", "Base"]),
    "c": (b"#define LIMIT 3\nstruct cart { int n; };\ntypedef struct cart cart_t;\n"
          b"int total(cart_t *c) { return sum(c->n); }\nstatic char *name(void) { return 0; }\n",
          [("LIMIT", "constant"), ("cart", "class"), ("cart_t", "type"), ("total", "function"), ("name", "function")],
          ["sum", "n", "cart_t"]),
    "cpp": (b"namespace shop {\nclass Cart {\n public:\n  int total() const;\n};\n"
            b"int Cart::total() const { return sum(items_); }\n}\n",
            [("shop", "module"), ("Cart", "class"), ("total", "method"), ("total", "method")],
            ["sum", "Cart"]),
}


@pytest.mark.parametrize("lang", sorted(CASES))
def test_other_languages(lang):
    source, want_defs, want_refs = CASES[lang]
    defs, refs, error = extract(lang, source)
    assert not error, lang
    assert [(d[0], d[1]) for d in defs] == want_defs
    for name in want_refs:
        assert name in refs, (lang, name)


def test_every_grammar_has_a_compiling_query():
    for lang in sorted(set(EXTENSIONS.values())):
        defs, refs, _ = extract(lang, b"")
        assert defs == [] and refs == {}


def test_broken_and_non_utf8_source_still_yields_tags():
    defs, _, error = extract("python", b"def ok(a):\n    return a\n\ndef broken(:\n  pass\n\nclass Z:\n  pass\n")
    assert error and "ok" in [d[0] for d in defs] and "Z" in [d[0] for d in defs]
    defs, refs, _ = extract("python", b"# \xff\xfe latin-1 \xe9\nNAME = '\xe9t\xe9'\ndef f\xe9():\n  return g()\n")
    assert "NAME" in [d[0] for d in defs] and refs.get("g") == 1


def test_language_for_and_outline_format():
    assert language_for("a/b.py") == "python" and language_for("x.tsx") == "tsx"
    assert language_for("README") is None and language_for("a.b/c") is None
    defs, _, _ = extract("python", PY)
    text = format_outline("shop/cart.py", defs)
    assert text.splitlines()[0] == "shop/cart.py"
    assert "    11-14        def add(self, item, qty=1):" in text


def test_split_patterns_keeps_predicates_and_drops_comments():
    pats = split_patterns('; c\n(a) @x\n((b) @y (#match? @y "^(x)$"))\n[(c) (d)] @z\n')
    assert pats == ["(a) @x", '((b) @y (#match? @y "^(x)$"))', "[(c) (d)] @z"]


def test_lifted_match_predicates_filter_like_tree_sitter():
    """`#match?` applied in Python (for speed) keeps exactly what py-tree-sitter's predicate keeps."""
    from tree_sitter import Query, QueryCursor
    from tree_sitter_language_pack import get_language, get_parser

    from agent.summary.tags import _lift_predicates

    src = (b'class A:\n    code = """abc\n"""\n    c2 = "E501"\n    c3 = " x"\n    c4 = "ab"\n'
           b'print("hello_there", "no way", "x1")\n')
    pats = ['((string (string_content) @s) (#match? @s "^[A-Za-z_][A-Za-z0-9_]{2,63}$"))',
            '((identifier) @i (#match? @i "^c"))', "(call function: (identifier) @i)"]
    text, filters = _lift_predicates(pats)
    assert set(filters) == {"s"}  # @i also comes from an unfiltered pattern: its predicate stays
    assert "(#match? @i" in text and "(#match? @s" not in text
    lang = get_language("python")
    root = get_parser("python").parse(src).root_node
    native = QueryCursor(Query(lang, "\n".join(pats))).captures(root)
    lifted = QueryCursor(Query(lang, text)).captures(root)
    kept = sorted(n.text for n in lifted["s"] if filters["s"].search(n.text.decode()))
    assert kept == sorted(n.text for n in native["s"]) == [b"E501", b"abc\n", b"hello_there"]
    assert sorted(n.text for n in lifted["i"]) == sorted(n.text for n in native["i"])

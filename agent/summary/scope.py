"""Where a task lives: seed files (traceback frames, target tests, what they import, task identifiers)
and the user's --scope fence.

Seeds carry weights (traceback frames > imported modules > test files > names from the task text);
the ranking personalises toward them and the renderer details them first.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from textwrap import dedent as textwrap_dedent

from agent.summary.index import RepoIndex
from agent.summary.pyenv import external_top_names, is_auxiliary, is_test_path, project_packages

W_FRAME = 4.0
W_FRAME_LAST = 6.0    # the innermost in-repo frame: where the failure surfaced
W_IMPORT = 3.0
W_NAME_IMPORT = 3.0   # the file defining a name the test imports (through re-exports)
W_REEXPORT = 2.0      # modules an imported package's __init__ pulls in (`from .core import *`)
W_TEST = 2.0
W_TASK_PATH = 3.0
W_TASK_NAME = 1.0
W_DEEP_REEXPORT = 0.8  # one package level further down: steers the ranking, not a seed
W_SCOPE_DIR = 0.5
W_TEST_CALL = 1.5      # a definition the target test reaches through an attribute (`app.config.from_pyfile`)
W_TEST_STRING = 2.5    # a string in the target test naming a module, a file or a registry key
W_EXECUTED = 7.0       # times a file's best Ochiai score over the run's best: above every static signal
W_ERROR_NAME = 0.6     # a name on the failure's `E   ` lines: steers the ranking only
MAX_TEST_SOURCE = 2400  # characters of a target test function shown in the summary
SEED_MIN = 1.0         # lighter weights only personalise the ranking
MAX_NAME_DEFINERS = 4  # a task word defined in more files than this is too vague to seed from

_PY_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_PYTEST_FRAME = re.compile(r"^([^\s:][^:\n]*?\.[A-Za-z]+):(\d+):", re.M)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_PATHLIKE = re.compile(r"[\w./-]+\.[A-Za-z]{1,4}\b")


@dataclass
class Scope:
    seed_files: list[str]                  # heaviest first
    dirs: list[str]                        # directories the task lives in (seed dirs + --scope dirs)
    fence: list[str]                       # the user's --scope dirs only: edits outside are refused
    weights: dict[str, float] = field(default_factory=dict)
    frames: list[tuple[str, int]] = field(default_factory=list)  # in-repo traceback frames, outermost first
    tests: list[str] = field(default_factory=list)  # the target tests' files
    notes: list[str] = field(default_factory=list)
    test_sources: list[tuple[str, int, str]] = field(default_factory=list)  # (path, first line, source)
    executed: list[tuple[str, int, str, float]] = field(default_factory=list)  # ran by failing tests, best first


def parse_frames(traceback: str) -> list[tuple[str, int]]:
    """(path, line) frames from Python and pytest tracebacks, in order of appearance."""
    frames: list[tuple[int, str, int]] = []
    for m in _PY_FRAME.finditer(traceback):
        frames.append((m.start(), m.group(1), int(m.group(2))))
    for m in _PYTEST_FRAME.finditer(traceback):
        frames.append((m.start(), m.group(1).strip(), int(m.group(2))))
    frames.sort()
    return [(p, n) for _, p, n in frames]


class _PathResolver:
    """Maps paths seen from elsewhere (a sandbox mount, site-packages, a relative path) to indexed files."""

    def __init__(self, root: Path, files: list[str]) -> None:
        self.root = root
        self.files = set(files)
        self.packages = project_packages(files)
        self.by_suffix: dict[str, list[str]] = {}
        for path in files:
            parts = path.split("/")
            for i in range(len(parts)):
                self.by_suffix.setdefault("/".join(parts[i:]), []).append(path)

    def resolve(self, raw: str) -> str | None:
        raw = raw.replace("\\", "/")
        if raw in self.files:
            return raw
        try:
            rel = Path(raw).resolve().relative_to(self.root).as_posix() if raw.startswith("/") else None
        except (ValueError, OSError):
            rel = None
        if rel in self.files:
            return rel
        parts = [p for p in raw.split("/") if p not in ("", ".")]
        for i in range(len(parts)):
            suffix = "/".join(parts[i:])
            hits = self.by_suffix.get(suffix)
            if hits and (len(parts) - i >= 2 or "/" not in hits[0]):
                return min(hits, key=lambda h: (h.count("/"), h))
            if hits:
                return None
        return None

    def module(self, dotted: str) -> str | None:
        """A dotted module name -> its file, in any source layout (src/, lib/, flat).

        The project's own top-level packages come first; a name the Python environment provides
        (stdlib, installed) is never matched to a same-named repository file; anything else (test
        helpers on sys.path) matches by path suffix, preferring files outside examples and fixtures.
        """
        exact = dotted.replace(".", "/")
        for cand in (f"{exact}.py", f"{exact}/__init__.py"):
            if cand in self.files and "." in dotted:  # a relative import made absolute, or a root package
                return cand
        top, _, rest = dotted.partition(".")
        prefix = self.packages.get(top)
        if prefix is not None:
            if prefix.endswith(".py"):
                return prefix if not rest else None
            base = prefix + ("/" + rest.replace(".", "/") if rest else "")
            for cand in (f"{base}.py", f"{base}/__init__.py", f"{base}.pyi"):
                if cand in self.files:
                    return cand
            return None
        if top in external_top_names():
            return None
        rel = dotted.replace(".", "/")
        for cand in (f"{rel}.py", f"{rel}/__init__.py", f"{rel}.pyi"):
            hits = self.by_suffix.get(cand)
            if hits:
                return min(hits, key=lambda h: (is_auxiliary(h), h.count("/"), h))
        return None


@lru_cache(maxsize=8)
def _parsed(path: Path, stamp: tuple[int, int]) -> tuple[str, ast.Module] | None:
    """A file's text and tree, kept for the next caller (the test file is read for imports and source)."""
    try:
        text = path.read_text("utf-8", errors="replace")
        return text, ast.parse(text)
    except (SyntaxError, ValueError, OSError, RecursionError):
        return None


def _parse(path: Path) -> tuple[str, ast.Module] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return _parsed(path, (st.st_mtime_ns, st.st_size))


def _imports(path: Path, relpath: str) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every import in a Python file; relative ones made absolute."""
    got = _parse(path)
    if got is None:
        return []
    tree = got[1]
    package = PurePosixPath(relpath).parent.parts
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names if alias.name != "*"]
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                mod = node.module or ""
            if mod:
                out.append((mod, names))
            out.extend((f"{mod}.{n}" if mod else n, []) for n in names)
    return out


def compute_scope(root: Path, index: RepoIndex, target_tests: list[str], traceback: str | None,
                  scope_dirs: list[str], task_text: str,
                  executed: list[tuple[str, int, str, float]] | None = None) -> Scope:
    root = Path(root).resolve()
    files = sorted(index.files)
    resolver = _PathResolver(root, files)
    weights: dict[str, float] = {}
    notes: list[str] = []

    def add(path: str | None, w: float) -> None:
        if path is not None:
            weights[path] = max(weights.get(path, 0.0), w)

    # 1. traceback frames inside the repo
    frames: list[tuple[str, int]] = []
    for raw, line in parse_frames(traceback or ""):
        rel = resolver.resolve(raw)
        if rel and (rel, line) not in frames:
            frames.append((rel, line))
    for rel, _ in frames:
        add(rel, W_FRAME)
    if frames:
        add(frames[-1][0], W_FRAME_LAST)

    # 2. target tests, and what they import
    test_files: list[str] = []
    for sel in target_tests:
        raw = sel.split("::", 1)[0].strip()
        rel = resolver.resolve(raw) if raw else None
        if rel is None and raw and (root / raw).is_dir():
            notes.append(f"test selector {sel} names a directory; not seeding from it")
        elif rel is None and raw:
            notes.append(f"test file for {sel} not found in the index")
        elif rel not in test_files:
            test_files.append(rel)
    for rel in test_files:
        add(rel, W_TEST)
    for rel in sorted({f for f, _ in frames} | set(test_files)):
        if not rel.endswith(".py"):
            continue
        for mod, names in _imports(root / rel, rel):
            target = resolver.module(mod)
            if target is not None and target != rel:
                add(target, W_IMPORT)
            if target is not None and target.endswith("__init__.py") and target != rel:
                for inner in _package_imports(resolver, root, target):
                    add(inner, W_REEXPORT)
                    if inner.endswith("__init__.py"):
                        for deeper in _package_imports(resolver, root, inner):
                            add(deeper, W_DEEP_REEXPORT)
                pkg_dir = target[: -len("__init__.py")]
                for name in names:
                    definers = [p for p in _definers(index, name) if p.startswith(pkg_dir)]
                    if 0 < len(definers) <= MAX_NAME_DEFINERS:
                        for p in definers:
                            add(p, W_NAME_IMPORT)

    # 3. --scope dirs: the fence, and a light focus on what is inside
    fence: list[str] = []
    for d in scope_dirs:
        if Path(d).is_absolute():
            try:
                d = Path(d).resolve().relative_to(root).as_posix()
            except ValueError:
                notes.append(f"--scope {d}: outside the repository")
                continue
        norm = PurePosixPath(d.replace("\\", "/")).as_posix().strip("/")
        norm = "" if norm == "." else norm
        if not (root / norm).is_dir():
            notes.append(f"--scope {d}: not a directory in the repo")
        if norm not in fence:
            fence.append(norm)
    for path in files:
        if any(path.startswith(f + "/") or f == "" for f in fence):
            add(path, W_SCOPE_DIR)

    # 4. names and paths from the task text
    if task_text:
        for raw in sorted(set(_PATHLIKE.findall(task_text))):
            rel = resolver.resolve(raw) if "/" in raw or "." in raw else None
            add(rel, W_TASK_PATH)
        defined = _definition_map(index)
        for word in sorted(set(_WORD.findall(task_text))):
            if word.startswith("test"):  # a test's name names the test, already seeded by its file
                continue
            hits = [p for p in defined.get(word, ()) if p in test_files or not _aux_or_test(p)]
            if 0 < len(hits) <= MAX_NAME_DEFINERS and (len(word) >= 5 or "_" in word or word[:1].isupper()):
                for p in hits:
                    add(p, W_TASK_NAME)

    # 5. what the target test functions say: the definitions they call, the strings they pass
    sources: list[tuple[str, int, str]] = []
    for sel in target_tests:
        raw, _, name = sel.partition("::")
        rel = resolver.resolve(raw.strip()) if raw.strip() else None
        got = _test_function(root / rel, name) if rel and name and rel.endswith(".py") else None
        if got is not None and (rel, got[0], got[1]) not in sources:
            sources.append((rel, got[0], got[1]))
    for path, weight in sorted(_seeds_from_tests([s for _, _, s in sources], resolver, index).items()):
        add(path, weight)
    for word in sorted(set(_WORD.findall(_error_lines(traceback or "")))):
        hits = [p for p in _definers(index, word) if not _aux_or_test(p)]
        if 0 < len(hits) <= MAX_NAME_DEFINERS:
            for p in hits:
                add(p, W_ERROR_NAME)

    # 6. what the failing tests executed (a spectrum over the sandbox run): the strongest evidence there is
    ran = [e for e in executed or () if e[0] in index.files]
    best = max((e[3] for e in ran), default=0.0)
    for path, _line, _name, score in ran:
        add(path, W_EXECUTED * score / best if best > 0 else 0.0)

    seeds = sorted((p for p, w in weights.items() if w >= SEED_MIN), key=lambda p: (-weights[p], p))
    dirs = sorted({p.rsplit("/", 1)[0] if "/" in p else "." for p in seeds} | {f or "." for f in fence})
    return Scope(seeds, dirs, fence, dict(sorted(weights.items())), frames=frames, notes=notes, tests=test_files,
                 test_sources=sources, executed=ran)


def _aux_or_test(path: str) -> bool:
    return is_auxiliary(path) or is_test_path(path)


def _error_lines(output: str) -> str:
    """pytest's `E   ` lines: the assertion and exception text of the failure."""
    return "\n".join(line[1:] for line in output.splitlines() if line.startswith("E "))


def _test_function(path: Path, name: str) -> tuple[int, str] | None:
    """(first line, source) of `name` (`func`, `Class::func`, `func[param]`) in a test file."""
    parts = [p.split("[", 1)[0] for p in name.split("::") if p]
    got = _parse(path)
    if got is None:
        return None
    text, tree = got
    body: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for part in parts:
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            return None
        body = node.body
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = text.splitlines()[first - 1: node.end_lineno]
    source = "\n".join(lines)
    if len(source) > MAX_TEST_SOURCE:
        source = source[: MAX_TEST_SOURCE].rsplit("\n", 1)[0] + "\n    ..."
    return first, source


def _seeds_from_tests(sources: list[str], resolver: _PathResolver, index: RepoIndex) -> dict[str, float]:
    """Files the test functions name: attribute calls to a rarely defined name, and string literals that
    are a repository path, a dotted module or a key/name some definition carries (a rule code, a plugin)."""
    out: dict[str, float] = {}

    def add(path: str | None, w: float) -> None:
        if path is not None and not _aux_or_test(path):
            out[path] = max(out.get(path, 0.0), w)

    for source in sources:
        try:
            tree = ast.parse(textwrap_dedent(source))
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and len(node.attr) >= 4 and not node.attr.startswith("__"):
                hits = [p for p in _definers(index, node.attr) if not _aux_or_test(p)]
                if 0 < len(hits) <= MAX_NAME_DEFINERS - 1:
                    for p in hits:
                        add(p, W_TEST_CALL)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and 2 < len(node.value) <= 200:
                for path in _string_targets(node.value.strip(), resolver, index):
                    add(path, W_TEST_STRING)
    return out


def _string_targets(text: str, resolver: _PathResolver, index: RepoIndex) -> list[str]:
    if "/" in text or text.endswith((".py", ".pyi")):
        got = resolver.resolve(text) if " " not in text else None
        return [got] if got else []
    if re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+", text):
        got = resolver.module(text)
        if got:
            return [got]
        text = text.rsplit(".", 1)[-1]
    if re.fullmatch(r"[A-Za-z_][\w-]{2,63}", text):
        hits = [p for p in _definers(index, text) if not _aux_or_test(p)]
        mod = resolver.module(text.replace("-", "_"))
        hits += [mod] if mod and mod not in hits else []
        return hits if 0 < len(hits) <= MAX_NAME_DEFINERS else []
    return []


def _package_imports(resolver: _PathResolver, root: Path, init: str) -> list[str]:
    """Modules inside a package that its `__init__.py` imports (what it re-exports)."""
    pkg_dir = init[: -len("__init__.py")]
    out = []
    for sub, _names in _imports(root / init, init):
        inner = resolver.module(sub)
        if inner is not None and inner != init and inner.startswith(pkg_dir) and inner not in out:
            out.append(inner)
    return out


def _definition_map(index: RepoIndex) -> dict[str, list[str]]:
    cached = getattr(index, "_defmap", None)
    if cached is None:
        cached = {}
        for path in sorted(index.files):
            for d in index.files[path].defs:
                lst = cached.setdefault(d[0], [])
                if not lst or lst[-1] != path:
                    lst.append(path)
        index._defmap = cached  # type: ignore[attr-defined]
    return cached


def _definers(index: RepoIndex, name: str) -> list[str]:
    return _definition_map(index).get(name, [])

"""Which files we parse and with which grammar; the tag queries are package data files."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

# Extension -> grammar name in tree-sitter-language-pack. Query files are per *query* language,
# since TSX shares the TypeScript query and headers are read as C.
EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
}
QUERY_FILE: dict[str, str] = {"tsx": "typescript"}

# Bump when the shape of cached tags changes; cache keys include it and the query text hash.
TAGS_FORMAT = 4


def language_for(path: str) -> str | None:
    dot = path.rfind(".")
    if dot < 0 or "/" in path[dot:]:
        return None
    return EXTENSIONS.get(path[dot:].lower())


@cache
def query_text(lang: str) -> str:
    name = QUERY_FILE.get(lang, lang)
    return (Path(__file__).parent / "queries" / f"{name}-tags.scm").read_text("utf-8")


@cache
def query_version(lang: str) -> str:
    """Short hash of the query and format: a changed query invalidates exactly that language's cache."""
    digest = hashlib.sha1(f"{TAGS_FORMAT}\0{lang}\0{query_text(lang)}".encode()).hexdigest()
    return digest[:10]

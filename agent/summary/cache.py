"""On-disk tag cache: one sqlite table, key = query version + content id, value = marshalled record.

Content-keyed, so it is shared by every checkout, branch and worktree of every repo, and needs no
invalidation: a changed file simply has a new key.
"""

from __future__ import annotations

import marshal
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CHUNK = 500


def default_cache_dir() -> Path:
    from agent.runs import cache_dir

    return cache_dir()


class TagCache:
    """Key -> record store. Failing to open (read-only home, corrupt file) degrades to memory only."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.note: str | None = None
        directory = cache_dir if cache_dir is not None else default_cache_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(directory / "tags.sqlite", timeout=30)
            self._schema()
        except (OSError, sqlite3.Error) as exc:
            self.note = f"tag cache unavailable ({exc}); using memory only"
            self.db = sqlite3.connect(":memory:")
            self._schema()

    def _schema(self) -> None:
        # `data` = marshalled ("tags", defs, parse_error, note) or ("skip", reason); `refs` = {name: count}.
        # Refs live apart because only a graph rebuild needs them: warm runs skip loading them.
        self.db.execute("CREATE TABLE IF NOT EXISTS tags (key TEXT PRIMARY KEY, data BLOB NOT NULL,"
                        " refs BLOB NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS derived (key TEXT PRIMARY KEY, data BLOB NOT NULL,"
                        " used INTEGER NOT NULL)")

    def get_many(self, keys: Iterable[str], column: str = "data") -> dict[str, Any]:
        """key -> unmarshalled `data` (or `refs`) for the keys present; damaged rows count as misses."""
        assert column in ("data", "refs")
        keys = list(keys)
        found: dict[str, Any] = {}
        for i in range(0, len(keys), _CHUNK):
            part = keys[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            try:
                rows = self.db.execute(f"SELECT key, {column} FROM tags WHERE key IN ({marks})", part).fetchall()
            except sqlite3.Error:
                return found
            for key, data in rows:
                try:
                    found[key] = marshal.loads(data)
                except (ValueError, EOFError, TypeError):
                    continue
        return found

    def put_many(self, items: Iterable[tuple[str, bytes, bytes]]) -> None:
        """Store already-marshalled (key, data, refs) rows: workers marshal, the parent copies bytes."""
        try:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO tags (key, data, refs) VALUES (?, ?, ?)", items)
        except sqlite3.Error as exc:
            self.note = f"tag cache not written ({exc})"

    def has_derived(self, key: str) -> bool:
        try:
            return self.db.execute("SELECT 1 FROM derived WHERE key = ?", (key,)).fetchone() is not None
        except sqlite3.Error:
            return False

    def get_derived(self, key: str) -> Any:
        """Per-repo-state results (the file graph, the repo-wide part): cheap to drop, costly to redo."""
        try:
            row = self.db.execute("SELECT data FROM derived WHERE key = ?", (key,)).fetchone()
            return marshal.loads(row[0]) if row else None
        except (sqlite3.Error, ValueError, EOFError, TypeError):
            return None

    def put_derived(self, key: str, value: Any, keep: int = 40) -> None:
        """Store one derived value; only the `keep` most recently written survive, bounding disk use."""
        try:
            with self.db:
                used = self.db.execute("SELECT COALESCE(MAX(used), 0) + 1 FROM derived").fetchone()[0]
                self.db.execute("INSERT OR REPLACE INTO derived (key, data, used) VALUES (?, ?, ?)",
                                (key, marshal.dumps(value), used))
                self.db.execute("DELETE FROM derived WHERE used <= ?", (used - keep,))
        except (sqlite3.Error, ValueError) as exc:
            self.note = f"derived cache not written ({exc})"

    def close(self) -> None:
        self.db.close()

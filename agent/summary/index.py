"""RepoIndex: per-file tags for a repository, built from the content-keyed cache plus parallel parsing."""

from __future__ import annotations

import marshal
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.summary.cache import TagCache
from agent.summary.files import MAX_BYTES, Entry, blob_id, list_files
from agent.summary.languages import language_for, query_version
from agent.summary.parse import default_workers, parse_batch, record_for
from agent.summary.tags import HIDDEN, Def

_MAX_NOTES = 60
_SERIAL_BELOW = 24  # fewer misses than this are parsed in-process: a pool costs more than it saves


@dataclass
class FileInfo:
    path: str
    defs: list[Def]


@dataclass
class RepoIndex:
    root: Path
    files: dict[str, FileInfo]  # sorted by path
    notes: list[str]
    stats: dict[str, int] = field(default_factory=dict)
    is_git: bool = True
    cache_dir: Path | None = None
    _keys: dict[str, str] = field(default_factory=dict, repr=False)
    _refs: dict[str, dict[str, int]] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, root: Path, cache_dir: Path | None = None, workers: int | None = None,
              want_refs: Callable[[str], bool] | None = None) -> RepoIndex:
        """Index `root`. `want_refs(state_key)` says whether references are needed now (a caller
        holding a graph for this state says no); otherwise they load lazily via `refs()`."""
        root = Path(root).resolve()
        notes: list[str] = []
        if not root.is_dir():
            return cls(root, {}, [f"{root} is not a directory"], {"parsed": 0, "cached": 0}, False, cache_dir)
        entries, list_notes, is_git = list_files(root)
        notes.extend(list_notes)
        keys = _content_keys(root, entries, notes)
        cache = TagCache(cache_dir)
        if cache.note:
            notes.append(cache.note)
        records = cache.get_many(sorted(set(keys.values())))
        missing = sorted({k: e for e in entries if (k := keys.get(e.path)) and k not in records}.items())
        fresh_refs: dict[str, dict[str, int]] = {}
        if missing:
            jobs = [(key, e.lang, str(root / e.path)) for key, e in missing]
            fresh = _parse_all(jobs, workers)
            cache.put_many(sorted(fresh))
            if cache.note and cache.note not in notes:
                notes.append(cache.note)
            for key, blob, refs in fresh:
                records[key] = marshal.loads(blob)
                fresh_refs[key] = marshal.loads(refs)
        files: dict[str, FileInfo] = {}
        for e in entries:
            key = keys.get(e.path)
            rec = records.get(key) if key else None
            if rec is None:
                continue
            if rec[0] == "skip":
                notes.append(f"skipped {e.path}: {rec[1]}")
                continue
            _, defs, error, note = rec
            if note:
                notes.append(f"{e.path}: {note}")
            if error:
                notes.append(f"{e.path}: syntax errors; tags are partial")
            files[e.path] = FileInfo(e.path, defs)
        if not entries:
            notes.append("no source files to index (empty repository or no supported languages)")
        stats = {"files": len(files), "parsed": len(missing), "cached": len(entries) - len(missing)}
        keys = {p: k for p, k in keys.items() if p in files}
        index = cls(root, files, _cap(notes), stats, is_git, cache_dir, keys)
        if want_refs is None or want_refs(index.state_key()):
            need = sorted({k for k in keys.values() if k not in fresh_refs})
            got = cache.get_many(need, column="refs") if need else {}
            got.update(fresh_refs)
            index._refs = {p: got.get(k, {}) for p, k in keys.items()}
        cache.close()
        return index

    def refs(self) -> dict[str, dict[str, int]]:
        """path -> {referenced name: count}, loaded from the cache on first use."""
        if self._refs is None:
            cache = TagCache(self.cache_dir)
            got = cache.get_many(sorted(set(self._keys.values())), column="refs")
            cache.close()
            self._refs = {p: got.get(k, {}) for p, k in self._keys.items()}
        return self._refs

    def state_key(self) -> str:
        """A digest of (path, content) for every indexed file: equal keys mean equal summaries."""
        import hashlib

        digest = hashlib.sha1()
        for path in sorted(self._keys):
            digest.update(f"{path}\0{self._keys[path]}\n".encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def outline(self, relpath: str) -> str | None:
        """Definitions of one file with line numbers, from its current content (cached by content)."""
        relpath = relpath.strip().removeprefix("./")
        lang = language_for(relpath)
        path = (self.root / relpath).resolve()
        if lang is None or not path.is_file() or not path.is_relative_to(self.root):
            return None
        try:
            size = path.stat().st_size
            if size > MAX_BYTES:
                return f"{relpath}: not outlined (huge: {size // 1_000_000} MB)"
            data = path.read_bytes()
        except OSError:
            return None
        key = f"{query_version(lang)}:{blob_id(data)}"
        cache = TagCache(self.cache_dir)
        rec: Any = cache.get_many([key]).get(key)
        if rec is None:
            rec, refs = record_for(lang, data)
            cache.put_many([(key, marshal.dumps(rec), marshal.dumps(refs))])
        cache.close()
        if rec[0] == "skip":
            return f"{relpath}: not outlined ({rec[1]})"
        return format_outline(relpath, rec[1])


def format_outline(relpath: str, defs: list[Def]) -> str:
    lines = [f"{relpath}"]
    defs = [d for d in defs if d[1] not in HIDDEN]
    if not defs:
        lines.append("  (no definitions)")
    for _name, _kind, line, end, depth, sig in defs:
        lines.append(f"{line:>6}-{end:<6}{'    ' * depth}{sig}")
    return "\n".join(lines)


def _content_keys(root: Path, entries: list[Entry], notes: list[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for e in entries:
        blob = e.blob
        if blob is None:
            try:
                blob = blob_id((root / e.path).read_bytes())
            except OSError as exc:
                notes.append(f"skipped {e.path}: unreadable ({exc.strerror or exc})")
                continue
        keys[e.path] = f"{query_version(e.lang)}:{blob}"
    return keys


def _parse_all(jobs: list[tuple[str, str, str]], workers: int | None) -> list[tuple[str, bytes, bytes]]:
    """Parse cache misses, on every core when there are enough of them. Largest files go first."""
    workers = workers or default_workers()
    if workers <= 1 or len(jobs) < _SERIAL_BELOW:
        return parse_batch(jobs)
    sizes = {}
    for job in jobs:
        try:
            sizes[job] = os.path.getsize(job[2])
        except OSError:
            sizes[job] = 0
    ordered = sorted(jobs, key=lambda j: (-sizes[j], j[0]))
    per = max(1, min(32, len(ordered) // (workers * 8)))
    batches = [ordered[i : i + per] for i in range(0, len(ordered), per)]
    from concurrent.futures import ProcessPoolExecutor

    out: list[tuple[str, bytes, bytes]] = []
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(parse_batch, batches):
                out.extend(result)
    except (OSError, RuntimeError):  # no process support (or a worker died): parse serially instead
        out = parse_batch(jobs)
    return out


def _cap(notes: list[str]) -> list[str]:
    if len(notes) <= _MAX_NOTES:
        return notes
    return [*notes[:_MAX_NOTES], f"... and {len(notes) - _MAX_NOTES} more notes"]

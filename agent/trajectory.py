"""The trajectory: one JSON line per event, flushed as it happens, secrets redacted.

Written after every step so a crash or Ctrl-C still leaves a readable record;
requests log only the messages appended since the previous request, which is
enough to replay a run offline because history is append-only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from agent.redact import Redactor
from agent.runs import open_private


class Trajectory:
    def __init__(self, path: Path, secrets: list[str | None] | None = None) -> None:
        self.path = path
        self._redact = Redactor(secrets or [])
        self._file = open_private(path, "a")
        self._started = time.time()

    def event(self, kind: str, **fields: Any) -> None:
        record = {"event": kind, "ts": round(time.time(), 3), "t": round(time.time() - self._started, 3)}
        record.update(fields)
        line = json.dumps(record, ensure_ascii=False, sort_keys=False, default=str)
        self._file.write(self._redact(line) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                events.append(json.loads(line))
    return events

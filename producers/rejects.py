"""The rejects file: every row that was not published, with what to fix; and the quality
file: every value that was left out of a published record.

JSON Lines next to the checkpoint, one file per run
(``rejects-<UTC time>.jsonl``), each line ``{"row": N, "original": "...", "reason": "..."}``.
It holds the agency's original data, so it stays on the agency's machine with the checkpoint
(mode 0600) and is never sent to Kafka or written to a log.

Beside it, ``quality-<UTC time>.jsonl`` lists the data-quality issues of the rows that were
read and kept: one line per value left out, ``{"row", "source", "source_record_id", "field",
"problem"}`` (a problem code, never the value), so the agency can fix them in its system.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO


def _open_private(path: Path) -> IO[str]:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(descriptor, "w", encoding="utf-8")


class RejectsFile:
    def __init__(self, folder: Path, source_name: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.path = folder / f"rejects-{stamp}.jsonl"
        self.quality_path = folder / f"quality-{stamp}.jsonl"
        self.source_name = source_name
        self.count = 0
        self.flagged = 0  # values left out of kept records
        self.flagged_rows = 0
        self._stream: IO[str] | None = None
        self._quality: IO[str] | None = None

    def flag(self, row: int, source_record_id: str, issues: Iterable[tuple[str, str]]) -> None:
        """Record the data-quality issues of a kept row: field and problem, never a value."""
        lines = [
            json.dumps({
                "row": row, "source": self.source_name, "source_record_id": source_record_id,
                "field": field, "problem": problem,
            }, ensure_ascii=False) + "\n"
            for field, problem in issues
        ]
        if not lines:
            return
        if self._quality is None:
            self._quality = _open_private(self.quality_path)
        self._quality.writelines(lines)
        self.flagged += len(lines)
        self.flagged_rows += 1

    def add(self, row: int, original: str, reason: str) -> None:
        if self._stream is None:
            self._stream = _open_private(self.path)
        line = {
            "row": row,
            "source": self.source_name,
            "original": original.rstrip("\r\n"),
            "reason": f"row {row} of {self.source_name}: {reason}",
        }
        self._stream.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._quality is not None:
            self._quality.close()
            self._quality = None

    @property
    def written(self) -> str | None:
        """The file's path when at least one row was rejected, else None (no empty files)."""
        return str(self.path) if self.count else None

    @property
    def quality_written(self) -> str | None:
        """The quality file's path when a value was flagged, else None (no empty files)."""
        return str(self.quality_path) if self.flagged else None

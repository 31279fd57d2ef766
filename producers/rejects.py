"""The rejects file: every row that was not published, with what to fix.

JSON Lines next to the checkpoint, one file per run
(``rejects-<UTC time>.jsonl``), each line ``{"row": N, "original": "...", "reason": "..."}``.
It holds the agency's original data, so it stays on the agency's machine with the checkpoint
(mode 0600) and is never sent to Kafka or written to a log.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO


class RejectsFile:
    def __init__(self, folder: Path, source_name: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.path = folder / f"rejects-{stamp}.jsonl"
        self.source_name = source_name
        self.count = 0
        self._stream: IO[str] | None = None

    def add(self, row: int, original: str, reason: str) -> None:
        if self._stream is None:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._stream = os.fdopen(descriptor, "w", encoding="utf-8")
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

    @property
    def written(self) -> str | None:
        """The file's path when at least one row was rejected, else None (no empty files)."""
        return str(self.path) if self.count else None

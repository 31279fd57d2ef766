"""The quality file: which values of kept rows were left out, for the agency to fix."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from producers.rejects import RejectsFile


def test_the_quality_file_lists_fields_and_problems_never_values(tmp_path: Path) -> None:
    rejects = RejectsFile(tmp_path, "police.csv")
    rejects.flag(7, "P-7", [])
    assert rejects.quality_written is None  # no empty file
    rejects.flag(17, "P-17", [("date_of_birth", "impossible_date"), ("phone", "not_e164")])
    rejects.close()
    assert rejects.flagged == 2 and rejects.flagged_rows == 1 and rejects.count == 0
    assert rejects.written is None
    path = rejects.quality_written
    assert path is not None and Path(path).name.startswith("quality-")
    assert Path(path).parent == tmp_path
    assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    lines = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"row": 17, "source": "police.csv", "source_record_id": "P-17",
         "field": "date_of_birth", "problem": "impossible_date"},
        {"row": 17, "source": "police.csv", "source_record_id": "P-17",
         "field": "phone", "problem": "not_e164"},
    ]

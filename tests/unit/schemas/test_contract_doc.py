"""docs/CONTRACT.md lists exactly the dead-letter headers and reason codes of the code."""

from __future__ import annotations

from pathlib import Path

from schemas.dead_letters import DEAD_LETTER_HEADERS, REASONS

DOC = (Path(__file__).resolve().parents[3] / "docs" / "CONTRACT.md").read_text(encoding="utf-8")


def _first_column(header: str) -> list[str]:
    """The back-quoted first cells of the table whose header row starts with ``| header |``."""
    lines = DOC.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"| {header} |")]
    assert len(starts) == 1, f"docs/CONTRACT.md needs one table headed '| {header} |'"
    cells = []
    for line in lines[starts[0] + 2:]:  # past the header row and its |---| line
        if not line.startswith("|"):
            break
        first = line.split("|")[1].strip()
        assert first.startswith("`") and first.endswith("`"), f"not a `code` cell: {line}"
        cells.append(first.strip("`"))
    return cells


def test_reason_table_lists_exactly_the_reason_codes() -> None:
    documented = _first_column("code")
    assert len(documented) == len(set(documented)), f"a code listed twice: {documented}"
    assert set(documented) == set(REASONS), (
        f"missing from docs/CONTRACT.md: {sorted(set(REASONS) - set(documented))}; "
        f"not in schemas.dead_letters.REASONS: {sorted(set(documented) - set(REASONS))}"
    )


def test_header_table_lists_exactly_the_headers_in_the_order_written() -> None:
    assert _first_column("header") == list(DEAD_LETTER_HEADERS)

"""The dead letter of an unexpected exception: its type and where, never its text."""

from __future__ import annotations

from schemas.dead_letters import (
    REASONS,
    dead_letter_headers,
    processing_error,
    read_dead_letter_headers,
)


def _raise_with_personal_data() -> None:
    raise ValueError("date_of_birth of Odessa Inventa is 1971-02-03")


def test_processing_error_names_the_type_and_where_but_not_the_message() -> None:
    try:
        _raise_with_personal_data()
    except ValueError as error:
        letter = processing_error("ingest", error, "tip.agency.police-ctu.case")
    assert letter.reason == "processing_error" and letter.reason in REASONS
    assert "ValueError" in letter.detail
    assert "test_ingest_processing_error.py" in letter.detail
    assert "_raise_with_personal_data" in letter.detail
    assert "tip.agency.police-ctu.case" in letter.detail
    assert "Odessa" not in letter.detail and "1971" not in letter.detail


def test_processing_error_fits_in_its_header() -> None:
    try:
        _raise_with_personal_data()
    except ValueError as error:
        letter = processing_error("resolve", error, "tip.internal.resolve")
    headers = read_dead_letter_headers(
        dead_letter_headers(letter, "resolve", "tip.internal.resolve", 0, 7)
    )
    assert headers["tipsync.reason"] == "processing_error"
    assert headers["tipsync.detail"].startswith("resolve raised ValueError at ")


def test_processing_error_of_an_exception_never_raised_still_says_what() -> None:
    letter = processing_error("ingest", KeyError("Inventa"), "tip.agency.police-ctu.person")
    assert "KeyError at an unknown place" in letter.detail and "Inventa" not in letter.detail

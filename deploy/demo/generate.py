"""Write a synthetic task-force data set to disk: every agency's exports, the truth, a manifest.

``generate(out_dir, people, seed)`` streams story after story (see ``deploy.demo.world``)
into one open file per agency and entity, so memory stays flat from a demo of a few hundred
people to a benchmark of a million records. The same seed always gives byte-identical files.
The layout is documented in ``deploy/demo/__init__.py`` and docs/DEMO_DATA.md.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from deploy.demo.shapes import ExportShape, format_precision, load_shape
from deploy.demo.world import (
    AGENCIES,
    PROFILES,
    Record,
    TruePerson,
    World,
    evolve,
    make_person,
    moment,
    person_row,
)

MANIFEST_NAME = "manifest.json"
TRUTH_FOLDER = "truth"
CHANGES_FOLDER = "changes"
MINIMUM_PEOPLE = 1

# The change steps written with ``updates=True``: which exports each step re-exports in full.
# A file not listed in a step did not change in it (its previous version still stands).
STEP_PLANS: dict[int, tuple[tuple[str, str], ...]] = {
    1: (
        ("police-ctu", "person"), ("police-ctu", "case"), ("police-ctu", "link"),
        ("immigration", "person"), ("victim-services", "person"), ("customs", "person"),
        ("hope-line-ngo", "report"), ("labour-ministry", "organisation"),
    ),
    2: (
        ("police-ctu", "person"), ("police-ctu", "report"), ("police-ctu", "link"),
        ("child-protection", "person"), ("safe-haven-shelter", "person"),
        ("prosecutions", "case"), ("migrant-aid-ngo", "person"), ("migrant-aid-ngo", "report"),
    ),
}
# Per record and step in which its file is re-exported: chance of a delete, of an update.
DELETE_CHANCE: dict[str, float] = {"person": 0.015, "report": 0.02, "organisation": 0.01,
                                   "link": 0.01}
UPDATE_CHANCE: dict[str, float] = {"person": 0.06, "case": 0.15, "report": 0.05,
                                   "organisation": 0.08, "location": 0.03, "link": 0.05}
NEWCOMER_CHANCE = 0.01  # per true person and step: turns up at one more agency
NEW_REPORT_CHANCE = 0.02  # per story and step: a new tip
LATE_PERSON_EXCLUDED = frozenset(
    {"child-protection", "passport-office", "police-ctu", "prosecutions"}
)

# The rows planted in every agency's person export, each after this many good rows (or at
# the end of a shorter file). The reason codes are the contract with the demo test.
BAD_ROW_KINDS: tuple[str, ...] = (
    "unparseable_date", "unknown_code", "missing_source_record_id",
    "duplicate_source_record_id", "wrong_column_count", "oversized_field",
)
BAD_ROW_AFTER: tuple[int, ...] = (3, 8, 13, 21, 34, 55)
# Of those, the rows whose only fault is one invalid optional value: the producer keeps the
# record without that value and flags it (a data-quality issue in its quality file, in the
# event and in the store) instead of rejecting it. The others cannot be identified or are not
# a record, and are rejected.
FLAGGED_BAD_ROW_KINDS: frozenset[str] = frozenset(
    {"unparseable_date", "unknown_code", "oversized_field"}
)
OVERSIZED_LENGTH = 5_000  # characters: far above any name, well below one CSV record's limit


class GenerateError(ValueError):
    """The generator cannot run as asked; ``str()`` names the input and the fix."""


@dataclass(frozen=True)
class ExportFile:
    """One file of one agency: where it is, how to read it, how many rows it holds."""

    agency: str
    entity: str
    path: Path
    format: str  # csv | jsonl
    mapping: Path | None  # None: the file uses the canonical columns
    rows: int  # data rows, the planted bad rows included
    bad_rows: int
    step: int  # 0 for the base export, k for changes/step-k


@dataclass(frozen=True)
class Manifest:
    """What ``generate`` wrote; ``Manifest.load(out_dir)`` reads it back from manifest.json."""

    out_dir: Path
    seed: int
    people: int
    steps: int
    files: tuple[ExportFile, ...]
    person_clusters: Path
    case_clusters: Path
    bad_rows: Path
    changes: Path | None
    counts: dict[str, int] = field(default_factory=dict)

    def exports(self, step: int = 0, entity: str | None = None) -> tuple[ExportFile, ...]:
        """The files of the base export (step 0) or of change step ``step``."""
        return tuple(
            file for file in self.files
            if file.step == step and (entity is None or file.entity == entity)
        )

    def to_json(self) -> dict[str, Any]:
        def relative(path: Path | None) -> str | None:
            return path.relative_to(self.out_dir).as_posix() if path else None

        return {
            "generator": "tipsync generate",
            "seed": self.seed,
            "people": self.people,
            "steps": self.steps,
            "files": [
                {
                    "agency": file.agency, "entity": file.entity, "path": relative(file.path),
                    "format": file.format, "mapping": relative(file.mapping),
                    "rows": file.rows, "bad_rows": file.bad_rows, "step": file.step,
                }
                for file in self.files
            ],
            "truth": {
                "person_clusters": relative(self.person_clusters),
                "case_clusters": relative(self.case_clusters),
                "bad_rows": relative(self.bad_rows),
                "changes": relative(self.changes),
            },
            "counts": self.counts,
        }

    @classmethod
    def load(cls, out_dir: Path) -> Manifest:
        path = out_dir / MANIFEST_NAME
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise GenerateError(
                f"{path} cannot be read ({error.strerror}); run tipsync generate --out {out_dir}"
            ) from None

        def absolute(relative: str | None) -> Path | None:
            return out_dir / relative if relative else None

        truth = document["truth"]
        return cls(
            out_dir=out_dir,
            seed=document["seed"],
            people=document["people"],
            steps=document["steps"],
            files=tuple(
                ExportFile(
                    agency=item["agency"], entity=item["entity"], path=out_dir / item["path"],
                    format=item["format"], mapping=absolute(item["mapping"]),
                    rows=item["rows"], bad_rows=item["bad_rows"], step=item["step"],
                )
                for item in document["files"]
            ),
            person_clusters=out_dir / truth["person_clusters"],
            case_clusters=out_dir / truth["case_clusters"],
            bad_rows=out_dir / truth["bad_rows"],
            changes=absolute(truth["changes"]),
            counts=document.get("counts", {}),
        )


class _ExportWriter:
    """One open export file; numbers rows the way the producer reports them (CSV: the
    spreadsheet row, header = 1; JSON Lines: the line)."""

    def __init__(self, path: Path, shape: ExportShape) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.shape = shape
        self.stream: IO[str] = path.open("w", encoding=shape.encoding, newline="")
        self.csv = None
        self.last_row = 0
        if shape.format == "csv":
            self.csv = csv.writer(
                self.stream, delimiter=shape.delimiter, lineterminator=shape.line_terminator
            )
            self.csv.writerow(shape.header)
            self.last_row = 1
        self.rows = 0
        self.bad_rows = 0
        self.good_rows = 0
        self.last_good_id: str | None = None

    def write(self, row: dict[str, Any]) -> int:
        number = self.write_cells(self.shape.render(row))
        self.good_rows += 1
        self.last_good_id = row["source_record_id"]
        return number

    def write_cells(self, cells: list[Any]) -> int:
        if self.csv is not None:
            self.csv.writerow(cells)
        else:
            self.stream.write(self.shape.encode_line(cells))
        return self._count()

    def write_raw_line(self, text: str) -> int:
        self.stream.write(text + self.shape.line_terminator)
        return self._count()

    def _count(self) -> int:
        self.rows += 1
        self.last_row += 1
        return self.last_row

    def close(self) -> None:
        self.stream.close()


class _BadRowPlanter:
    """Plants the deliberately bad rows into one agency's person export, and lists them."""

    def __init__(
        self, world: World, agency: str, writer: _ExportWriter, out_dir: Path, truth: IO[str]
    ) -> None:
        self.world = world
        self.agency = agency
        self.writer = writer
        self.out_dir = out_dir
        self.truth = truth
        self.rng = world.rng("bad-rows", AGENCIES.index(agency))
        self.pending = list(BAD_ROW_KINDS)

    def after_good_row(self) -> None:
        planted = len(BAD_ROW_KINDS) - len(self.pending)
        if self.pending and self.writer.good_rows >= BAD_ROW_AFTER[planted]:
            self._plant(self.pending.pop(0))

    def finish(self) -> None:
        while self.pending:
            self._plant(self.pending.pop(0))

    def _plant(self, kind: str) -> None:
        shape = self.writer.shape
        if kind == "duplicate_source_record_id" and self.writer.last_good_id is None:
            return  # nothing to duplicate in an export without good rows; not planted
        person = make_person(self.rng, "planted", None, date(2024, 1, 1), minor=False)
        when = moment(self.rng, date(2024, 1, 1), date(2025, 6, 1))
        row = person_row(self.rng, person, PROFILES[self.agency], True, when)
        record_id = self.world.ids.new(self.agency, "person")
        row.update(source_record_id=record_id, role=None, case_ref=None, deleted=False)
        if kind == "oversized_field":
            row["family_name"] = (person.family * OVERSIZED_LENGTH)[:OVERSIZED_LENGTH]
        cells = shape.render(row)
        column = shape.header.index
        field_name = "source_record_id"
        detail = ""
        raw_line: str | None = None
        if kind == "unparseable_date":
            field_name = "date_of_birth"
            text = impossible_date(shape.date_formats("date_of_birth"))
            cells[column(_agency_column(shape, field_name))] = text
            detail = f"date_of_birth {text!r} is not a date"
        elif kind == "unknown_code":
            field_name = "sex"
            text = unknown_sex_code(shape)
            cells[column(_agency_column(shape, field_name))] = text
            detail = f"sex {text!r} is not a known code"
        elif kind == "missing_source_record_id":
            cells[column(_agency_column(shape, field_name))] = ""
            record_id = ""
            detail = "source_record_id is empty"
        elif kind == "duplicate_source_record_id":
            record_id = self.writer.last_good_id or ""
            cells[column(_agency_column(shape, field_name))] = record_id
            detail = (
                f"source_record_id {record_id!r} is used by an earlier row of the same export; "
                "this second row is the bad one"
            )
        elif kind == "wrong_column_count":
            if shape.format == "jsonl":
                kind = "malformed_json"
                line = shape.encode_line(cells).rstrip("\n")
                raw_line = line[: len(line) // 2]
                detail = "the line is cut off in the middle and is not valid JSON"
            else:
                cells.append("unexpected extra cell")
                detail = (
                    f"the row has {len(shape.header) + 1} columns but the header has "
                    f"{len(shape.header)}"
                )
        elif kind == "oversized_field":
            field_name = "family_name"
            detail = f"family_name is {OVERSIZED_LENGTH} characters long"
        number = (
            self.writer.write_raw_line(raw_line) if raw_line is not None
            else self.writer.write_cells(cells)
        )
        self.writer.bad_rows += 1
        entry = {
            "agency": self.agency,
            "entity": shape.entity,
            "file": self.writer.path.relative_to(self.out_dir).as_posix(),
            "row": number,
            "source_record_id": record_id,
            "reason": kind,
            "field": field_name,
            "detail": detail,
            "outcome": "flagged" if kind in FLAGGED_BAD_ROW_KINDS else "rejected",
        }
        self.truth.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _agency_column(shape: ExportShape, canonical: str) -> str:
    column = shape.agency_column(canonical)
    if column is None:
        raise GenerateError(
            f"the {shape.agency} {shape.entity} export has no column for {canonical}; "
            "its mapping file must map one so that a bad value can be planted"
        )
    return column


def impossible_date(formats: list[str]) -> str:
    """A date in the agency's own layout that no calendar has (the 31st of February)."""
    day_formats = [f for f in formats if format_precision(f) == "DAY"]
    if not formats:
        return "1990-02-31"
    if day_formats:
        written = date(1990, 2, 28).strftime(day_formats[0])
        return written.replace("28", "31", 1)
    return "circa 1990"


def unknown_sex_code(shape: ExportShape) -> str:
    """A sex code neither the agency's codes nor the canonical spellings know."""
    known = set(shape.codes("sex")) | {"F", "M", "X", "U", "FEMALE", "MALE", "OTHER", "UNKNOWN"}
    return next(code for code in ("7", "Q", "Z", "77") if code not in known)


@dataclass(frozen=True)
class _Pending:
    """A record created in a change step; built at the end so base ids never shift."""

    step: int
    agency: str
    entity: str
    person: TruePerson | None = None


@dataclass
class _Counts:
    values: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, amount: int = 1) -> None:
        self.values[key] = self.values.get(key, 0) + amount


def generate(out_dir: Path, people: int, seed: int, updates: bool = False) -> Manifest:
    """Write ``people`` synthetic true persons' records at every agency into ``out_dir``.

    With ``updates``, also write ``changes/step-1`` and ``changes/step-2``: full re-exports
    of some files with updated rows, deleted rows left out (or flagged, where the agency
    flags deletions) and new rows. Returns the manifest (also written to manifest.json).
    """
    if people < MINIMUM_PEOPLE:
        raise GenerateError(
            f"--people {people} is too small; give at least {MINIMUM_PEOPLE} true person"
        )
    out_dir = Path(out_dir)
    _prepare(out_dir)
    shapes = {
        (agency, entity): load_shape(agency, entity)
        for agency, profile in PROFILES.items()
        for entity in profile.entities
    }
    world = World(seed, shapes)
    counts = _Counts()
    truth_dir = out_dir / TRUTH_FOLDER
    truth_dir.mkdir(parents=True)
    writers: dict[tuple[int, str, str], _ExportWriter] = {}
    mapping_copies: dict[tuple[str, str], Path] = {}
    for (agency, entity), shape in shapes.items():
        writers[(0, agency, entity)] = _ExportWriter(
            out_dir / agency / shape.file_name, shape
        )
        if shape.mapping_path is not None:
            copy = out_dir / agency / f"{entity}.mapping.yaml"
            shutil.copyfile(shape.mapping_path, copy)
            mapping_copies[(agency, entity)] = copy
    steps = tuple(STEP_PLANS) if updates else ()
    steps_of: dict[tuple[str, str], list[int]] = {}
    for step in steps:
        for agency, entity in STEP_PLANS[step]:
            steps_of.setdefault((agency, entity), []).append(step)
            writers[(step, agency, entity)] = _ExportWriter(
                out_dir / CHANGES_FOLDER / f"step-{step}" / agency
                / shapes[(agency, entity)].file_name,
                shapes[(agency, entity)],
            )

    person_truth = (truth_dir / "person_clusters.csv").open("w", encoding="utf-8", newline="")
    case_truth = (truth_dir / "case_clusters.csv").open("w", encoding="utf-8", newline="")
    bad_truth = (truth_dir / "bad_rows.jsonl").open("w", encoding="utf-8", newline="")
    changes_path = truth_dir / "changes.jsonl" if updates else None
    changes_truth = changes_path.open("w", encoding="utf-8", newline="") if changes_path else None
    person_csv = csv.writer(person_truth, lineterminator="\n")
    person_csv.writerow(("agency_id", "source_record_id", "true_person_id", "introduced_in"))
    case_csv = csv.writer(case_truth, lineterminator="\n")
    case_csv.writerow(("agency_id", "entity", "source_record_id", "true_case_id"))
    planters = {
        agency: _BadRowPlanter(world, agency, writers[(0, agency, "person")], out_dir,
                               bad_truth)
        for agency in AGENCIES
    }
    pending: list[_Pending] = []

    def record_change(step: int, record: Record, change: str) -> None:
        assert changes_truth is not None
        changes_truth.write(json.dumps({
            "step": step, "agency": record.agency, "entity": record.entity,
            "source_record_id": record.record_id, "change": change,
        }) + "\n")
        counts.add(f"step-{step} {change}s")

    def write_record(record: Record, change_rng: random.Random | None, introduced: int) -> None:
        key = (record.agency, record.entity)
        record.row.setdefault("deleted", False)
        if introduced == 0:
            writers[(0, *key)].write(record.row)
            counts.add(f"{record.entity} records")
            if record.entity == "person":
                planters[record.agency].after_good_row()
        if record.true_person is not None:
            person_csv.writerow((record.agency, record.record_id, record.true_person,
                                 "base" if introduced == 0 else f"step-{introduced}"))
        if record.true_case is not None:
            case_csv.writerow((record.agency, record.entity, record.record_id,
                               record.true_case))
        state: dict[str, Any] | None = record.row
        for step in steps_of.get(key, ()):
            if step < introduced or state is None:
                continue
            writer = writers[(step, *key)]
            if step == introduced:
                record_change(step, record, "create")
                writer.write(state)
                continue
            assert change_rng is not None
            draw = change_rng.random()
            when = step_moment(change_rng, step)
            if draw < DELETE_CHANCE.get(record.entity, 0.0) and not record.pinned:
                if writer.shape.carries("deleted"):
                    writer.write({**state, "deleted": True, "updated_at": when})
                state = None
                record_change(step, record, "delete")
            elif draw < DELETE_CHANCE.get(record.entity, 0.0) + UPDATE_CHANCE.get(
                record.entity, 0.0
            ):
                state = evolve(change_rng, record.entity, state, when)
                writer.write(state)
                record_change(step, record, "update")
            else:
                writer.write(state)

    employer_changes = world.rng("changes-employers", 0) if steps else None
    for record in world.employer_pool(max(5, people // 40)):
        write_record(record, employer_changes, 0)

    person_number = 0
    story_number = 0
    while person_number < people:
        records, used = world.story(story_number, person_number + 1, people - person_number)
        change_rng = world.rng("changes", story_number) if steps else None
        for record in records:
            write_record(record, change_rng, 0)
        if change_rng is not None:
            _plan_newcomers(change_rng, world.last_people, records, pending)
        person_number += used
        story_number += 1

    for planter in planters.values():
        planter.finish()
    for index, item in enumerate(pending):
        record = _build_pending(world, item, index)
        write_record(record, world.rng("changes-late", index), item.step)

    for closing in (person_truth, case_truth, bad_truth, changes_truth):
        if closing is not None:
            closing.close()
    files: list[ExportFile] = []
    for (step, agency, entity), writer in writers.items():
        writer.close()
        files.append(ExportFile(
            agency=agency, entity=entity, path=writer.path, format=writer.shape.format,
            mapping=mapping_copies.get((agency, entity)), rows=writer.rows,
            bad_rows=writer.bad_rows, step=step,
        ))
    counts.add("true people", people)
    counts.add("stories", story_number)
    counts.add("bad rows", sum(file.bad_rows for file in files))
    manifest = Manifest(
        out_dir=out_dir, seed=seed, people=people, steps=len(steps), files=tuple(files),
        person_clusters=truth_dir / "person_clusters.csv",
        case_clusters=truth_dir / "case_clusters.csv",
        bad_rows=truth_dir / "bad_rows.jsonl",
        changes=changes_path,
        counts=dict(sorted(counts.values.items())),
    )
    (out_dir / MANIFEST_NAME).write_text(
        json.dumps(manifest.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest


def step_moment(rng: random.Random, step: int) -> datetime:
    """A time inside change step ``step``: each step is a later month than the one before."""
    start = date(2025, 7, 1) + timedelta(days=31 * (step - 1))
    return moment(rng, start, start + timedelta(days=27))


def _plan_newcomers(
    rng: random.Random,
    people: list[TruePerson],
    records: list[Record],
    pending: list[_Pending],
) -> None:
    present = {(record.true_person, record.agency) for record in records}
    for step, plan in STEP_PLANS.items():
        # Agencies whose records need a case or a citizenship the newcomer may not have
        # are left out: a late record there would contradict the story.
        person_files = [
            agency for agency, entity in plan
            if entity == "person" and agency not in LATE_PERSON_EXCLUDED
        ]
        for person in people:
            if person_files and rng.random() < NEWCOMER_CHANCE:
                agency = rng.choice(person_files)
                if (person.person_id, agency) not in present:
                    present.add((person.person_id, agency))
                    pending.append(_Pending(step, agency, "person", person))
        report_files = [agency for agency, entity in plan if entity == "report"]
        if report_files and rng.random() < NEW_REPORT_CHANCE:
            pending.append(_Pending(step, rng.choice(report_files), "report"))


def _build_pending(world: World, item: _Pending, index: int) -> Record:
    rng = world.rng("newcomer", index)
    when = step_moment(rng, item.step)
    if item.person is None:
        return world.late_report(rng, item.agency, when)
    return world.late_person(rng, item.person, item.agency, when)


def _prepare(out_dir: Path) -> None:
    """An empty output folder; the files of an earlier run are replaced, nothing else is."""
    if out_dir.exists() and not out_dir.is_dir():
        raise GenerateError(f"--out {out_dir} is a file; give a folder to write the data set to")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MANIFEST_NAME).is_file():
            raise GenerateError(
                f"--out {out_dir} is not empty and holds no {MANIFEST_NAME} of an earlier "
                "tipsync generate run; give an empty or new folder"
            )
        for name in (*AGENCIES, TRUTH_FOLDER, CHANGES_FOLDER):
            shutil.rmtree(out_dir / name, ignore_errors=True)
        (out_dir / MANIFEST_NAME).unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


__all__ = ["ExportFile", "GenerateError", "Manifest", "generate"]

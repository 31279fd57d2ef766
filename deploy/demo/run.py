"""``tipsync demo``: the whole pipeline on synthetic data from a dozen agencies.

What ``make demo`` runs, step by step, each step the command an operator would run:

1. the local stack, the governed schemas, the topics and the store's migrations;
2. a seeded synthetic task force (``tipsync generate``): every agency's own export shape,
   planted bad rows and the generator's truth;
3. the stream processors and the sink (``tipsync run``'s two processes) in the background;
4. every agency's producer on its export, then the generator's later exports (updates and
   deletes, ``--full-export``), until ``tipsync lag --wait-zero`` says the pipeline drained;
5. a summary read from PostgreSQL: records per agency, golden people, people known to several
   agencies, example golden records with lineage, accuracy against the truth, freshness;
6. a minute of live changes (updates, deletes, new reports) from one long-lived producer,
   each shown when PostgreSQL has committed it (``deploy.demo.live``);
7. an agency's alert through ``tipsync subscribe``, and a steward's decision and its
   withdrawal, each shown when it is visible (``deploy.demo.feeds``).

Running it again works: producers publish only what changed, and the live minute makes new
changes each time.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import psycopg

from deploy.console.demo import demo_steward_connection
from deploy.demo.feeds import alert_and_decision
from deploy.demo.generate import Manifest, generate
from deploy.demo.live import LIVE_AGENCY, live_minute, live_people
from deploy.operations.analysts import AnalystError
from deploy.operations.drive import (
    ProduceResult,
    StepError,
    prepare,
    produce_all,
    read_predicted,
    say,
    wait_for_drain,
)
from deploy.operations.supervisor import Pipeline, PipelineError
from deploy.stack.layout import StackError
from schemas import config
from schemas.config import Settings, load_settings

DEMO_SEED = 20261130
DEMO_PEOPLE = 1500


def demo_data(settings: Settings, people: int, seed: int) -> Manifest:
    out_dir = settings.home / "demo" / f"seed-{seed}-people-{people}"
    if (out_dir / "manifest.json").is_file():
        return Manifest.load(out_dir)
    return generate(out_dir, people=people, seed=seed, updates=True)


# --------------------------------------------------------------------------- summary


def pairs(size: int) -> int:
    return size * (size - 1) // 2


def pairwise_accuracy(
    predicted: dict[tuple[str, str], str], truth: dict[tuple[str, str], str]
) -> dict[str, float]:
    """Pairwise precision, recall and F1 of predicted clusters against true clusters,
    over the source records present in both."""
    common = predicted.keys() & truth.keys()
    predicted_sizes = Counter(predicted[key] for key in common)
    true_sizes = Counter(truth[key] for key in common)
    both_sizes = Counter((predicted[key], truth[key]) for key in common)
    true_positive = sum(pairs(size) for size in both_sizes.values())
    predicted_pairs = sum(pairs(size) for size in predicted_sizes.values())
    true_pairs = sum(pairs(size) for size in true_sizes.values())
    precision = true_positive / predicted_pairs if predicted_pairs else 1.0
    recall = true_positive / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"records": len(common), "precision": precision, "recall": recall, "f1": f1}


def read_truth(path: Path) -> dict[tuple[str, str], str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {
            (row["agency_id"], row["source_record_id"]): row["true_person_id"]
            for row in csv.DictReader(handle)
        }


def summarise(settings: Settings, manifest: Manifest, results: Iterable[ProduceResult]) -> None:
    per_agency: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results:
        counts = per_agency[result.file.agency]
        for key in ("read", "published", "unchanged", "rejected", "flagged"):
            counts[key] += int(result.summary.get(key) or 0)
    say("records per agency (read / published / unchanged / rejected to the rejects file / "
        "values flagged in the quality file):")
    for agency in sorted(per_agency):
        counts = per_agency[agency]
        say(f"  {agency:<20} {counts['read']:>6} / {counts['published']:>6} / "
            f"{counts['unchanged']:>6} / {counts['rejected']:>3} / {counts['flagged']:>3}")

    with psycopg.connect(settings.database_url) as connection:
        golden, multi, sources = connection.execute(
            "select count(*), count(*) filter (where cardinality(agencies) > 1), "
            "coalesce(sum(source_count), 0) from reconciled.person"
        ).fetchone() or (0, 0, 0)
        say(f"golden people: {golden} from {sources} live source records; "
            f"{multi} known to several agencies")
        examples = connection.execute(
            "select person_id, given_name, family_name, date_of_birth, agencies, lineage "
            "from reconciled.person where cardinality(agencies) >= 3 "
            "order by cardinality(agencies) desc, person_id limit 3"
        ).fetchall()
        for person_id, given, family, born, agencies, lineage in examples:
            say(f"  example {person_id}: {given} {family}, born {born}, known to "
                f"{', '.join(agencies)} (all synthetic)")
            for entry in sorted(lineage, key=lambda item: item["field"])[:6]:
                say(f"      {entry['field']:<14} from {entry['agency_id']}:"
                    f"{entry['source_record_id']} (version {entry['source_version']})")
        accuracy = pairwise_accuracy(read_predicted(connection),
                                     read_truth(manifest.person_clusters))
    say(f"accuracy against the generator's truth over {accuracy['records']} person records: "
        f"pairwise precision {accuracy['precision']:.4f}, recall {accuracy['recall']:.4f}, "
        f"F1 {accuracy['f1']:.4f}")


# --------------------------------------------------------------------------- command


def show_console(settings: Settings) -> None:
    """The console, running on, with a demo analyst's login (its password in a 0600 file)."""
    from deploy.console.demo import start_demo_console

    try:
        console = start_demo_console(settings)
    except (RuntimeError, AnalystError) as error:
        say(f"the console did not start: {error}")
        return
    say(f"console: {console.url}  sign in as {console.analyst}, password in"
        f" {console.password_file} (mode 0600); stop it with"
        f" kill $(cat {settings.home / 'run' / 'console.pid'})")


def metrics_urls() -> str:
    """Where this demo's workers serve their metrics (the configured ports, not the defaults)."""
    urls = []
    host = config.metrics_address()
    host = f"[{host}]" if ":" in host else host
    for port, who in ((config.stream_metrics_port(), "stream"),
                      (config.sink_metrics_port(), "sink")):
        if port is not None:
            urls.append(f"http://{host}:{port}/metrics ({who})")
    return ", ".join(urls) or f"none (metrics ports set to 0: {config.STREAM_METRICS_PORT})"


def run_demo(args: argparse.Namespace) -> int:
    settings = load_settings()
    began = time.monotonic()
    try:
        prepare(settings)
        manifest = demo_data(settings, args.people, args.seed)
        say(f"synthetic task force: {manifest.counts.get('true people', args.people)} true "
            f"people, {len(manifest.exports(0))} agency exports in {manifest.out_dir}")
        with Pipeline(settings) as pipeline:
            results = produce_all(manifest.exports(0), full_export=False)
            for step in range(1, manifest.steps + 1):
                results += produce_all(manifest.exports(step), full_export=True)
            pipeline.check()
            drained = wait_for_drain()
            pipeline.check()
            say(f"pipeline drained {drained:.1f}s after the last export was published")
            summarise(settings, manifest, results)
            live_minute(settings, manifest, args.live_seconds)
            alert_and_decision(settings.database_url, settings.home, LIVE_AGENCY,
                               live_people(manifest), demo_steward_connection(settings))
            pipeline.check()
    except (StepError, PipelineError, StackError) as error:
        print(f"tipsync demo: {error}", file=sys.stderr)
        return 1
    say(f"demo finished in {time.monotonic() - began:.0f}s.")
    show_console(settings)
    say("Try next:")
    say("  tipsync analyst add ana_demo --clearance OFFICIAL --out ana_demo.uri")
    say('  tipsync search person "<a name from above>" --connection ana_demo.uri')
    say('  psql "$(cat ana_demo.uri)"   then: select * from reconciled.person_overview;')
    say(f"  tipsync review list --connection {settings.home / 'demo' / 'console'}"
        "/demo_steward.uri   the steward's queue, as the steward")
    say("  tipsync lag                                     consumer lag and statuses")
    say("  tipsync run                                     keep the pipeline running")
    say(f"  metrics: {metrics_urls()}")
    return 0

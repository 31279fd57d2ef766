"""``tipsync generate``: write a synthetic multi-agency data set and print what it wrote."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from deploy.demo.generate import GenerateError, generate


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write synthetic agency exports, their mapping files and the ground truth",
        description=(
            "Write a deterministic synthetic data set of the task force's agencies: each "
            "agency's own export shape and mapping file, the ground truth (which records are "
            "one person, the planted bad rows) and a manifest. No real people: names, dates "
            "and identifiers are random combinations. See docs/DEMO_DATA.md."
        ),
    )
    parser.add_argument(
        "--people", type=int, required=True, metavar="N",
        help="true persons to create (each appears at 1-5 agencies: ~2 person records each)",
    )
    parser.add_argument("--seed", type=int, default=1, metavar="S",
                        help="the same seed gives byte-identical files (default 1)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder to write to (empty, or holding an earlier run's data set)")
    parser.add_argument("--updates", action="store_true",
                        help="also write changes/step-1 and step-2: updates, deletes, new rows")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        manifest = generate(args.out, args.people, args.seed, updates=args.updates)
    except GenerateError as error:
        print(f"tipsync generate: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    rows = sum(file.rows for file in manifest.files)
    person_rows = sum(file.rows for file in manifest.exports(0, "person"))
    size = sum(file.path.stat().st_size for file in manifest.files)
    print(f"wrote {manifest.out_dir} (seed {manifest.seed}, {manifest.people} true people)")
    for name, count in manifest.counts.items():
        print(f"  {name:<24} {count:>10}")
    print(
        f"  {len(manifest.files)} files, {rows} rows ({person_rows} person rows in the base "
        f"export), {size / 1e6:.1f} MB in {seconds:.1f} s: "
        f"{rows / seconds:,.0f} rows/s, {person_rows / seconds:,.0f} person rows/s"
    )
    print(f"  manifest: {manifest.out_dir / 'manifest.json'}")
    return 0

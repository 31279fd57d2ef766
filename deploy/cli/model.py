"""``tipsync model fit`` and ``tipsync model show``: the resolver's scoring model as a file.

``fit`` fits m, u and the thresholds to the person records the stream app holds
(``streams.model_fit``) and writes a model file; ``show`` prints one. Rolling a model out is
``tipsync stream --model PATH`` (docs/STREAMS.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.cli.options import add_client_config, add_topic_root
from schemas.config import load_settings
from schemas.topics import TopicNames
from streams.model_fit import MINIMUM_RECORDS, ModelFitError, fit_model_file, read_person_records


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    model = subparsers.add_parser(
        "model",
        help="fit the resolver's scoring model to the records held, or show a model file",
        description="The resolver's scoring model (m and u per field and level, thresholds) "
        "as a file: fit it to the person records the stream app holds, show it, and roll it "
        "out with `tipsync stream --model PATH` (docs/STREAMS.md).",
    )
    commands = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    fit = commands.add_parser(
        "fit", help="fit m, u and thresholds by EM to the records on the resolve topic",
    )
    fit.add_argument("--out", type=Path, required=True, help="the model file to write")
    add_topic_root(fit)
    add_client_config(fit)
    fit.add_argument("--min-records", type=int, default=MINIMUM_RECORDS,
                     help=f"refuse to fit on fewer person records (default {MINIMUM_RECORDS})")
    fit.add_argument("--random-pairs", type=int, default=300_000,
                     help="random pairs that estimate u (default 300000)")
    fit.set_defaults(func=run_fit)
    show = commands.add_parser("show", help="print a model file's thresholds and weights")
    show.add_argument("path", type=Path)
    show.set_defaults(func=run_show)
    model.set_defaults(func=lambda args: (model.print_help(), 2)[1])


def run_fit(args: argparse.Namespace) -> int:
    from streams.resolve.model_file import describe, write_model_file

    settings = load_settings()
    topics = TopicNames(args.topic_root)
    topic = topics.resolve
    try:
        content = read_person_records(settings, topics)
        model_file = fit_model_file(content.records, minimum_records=args.min_records,
                                    source=topic, random_pairs=args.random_pairs)
    except ModelFitError as error:
        print(f"tipsync model fit: {error}", file=sys.stderr)
        return 1
    write_model_file(args.out, model_file)
    print(f"read {content.messages} messages of {topic}: {len(content.records)} person "
          f"records, {content.deleted} deleted, {content.undecodable} undecodable (skipped)")
    for line in describe(model_file):
        print(line)
    print(f"wrote {args.out}; roll it out with `tipsync stream --model {args.out}`")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from streams.resolve.model_file import ModelFileError, describe, read_model_file

    try:
        model_file = read_model_file(args.path)
    except ModelFileError as error:
        print(f"tipsync model show: {error}", file=sys.stderr)
        return 1
    for line in describe(model_file):
        print(line)
    return 0

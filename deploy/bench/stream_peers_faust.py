"""The faust peer of ``bench stream --peers``: tipsync's stream worker, built as ``tipsync
stream`` builds it (``streams.app.create_app``, ``streams.worker.run_worker``), running its
ingest agent only.

Ingest forwards a person event to the resolve topic, where the same worker's resolve agent
would resolve it; resolve costs far more CPU per event than ingest (docs/BENCHMARKS.md) and
would hide the engine's cost. tipsync has no ingest-only worker role yet (issue 18's
``--role``), so this module drops the resolve and stewardship agents from the app before the
worker starts: the worker then never subscribes to their topics. Everything ingest does is
unchanged: decode, checks, the held-version table (RocksDB) and its changelog, the forward
through tipsync's output producer, faust's at-least-once commits. Run by the benchmark as::

    python -m deploy.bench.stream_peers_faust --topic-root R
"""

from __future__ import annotations

import argparse
import sys

INGEST_AGENT = "ingest"


def main(argv: list[str] | None = None) -> int:
    from streams.app import StreamOptions, create_app
    from streams.worker import run_worker

    parser = argparse.ArgumentParser(prog="stream_peers_faust")
    parser.add_argument("--topic-root", required=True)
    parser.add_argument("--store", choices=("rocksdb", "memory"), default="rocksdb")
    args = parser.parse_args(argv)
    options = StreamOptions.from_environment(
        None, topic_root=args.topic_root, store=args.store, worker_index=0,
        metrics_port=None, discovery_interval_seconds=5.0, loglevel="warning",
    )
    stream_app = create_app(options)
    agents = stream_app.app.agents
    ingest_name = stream_app.ingest_agent.name
    for name in [name for name in agents if name != ingest_name]:
        del agents[name]
    if list(agents) != [ingest_name]:
        raise RuntimeError(f"the stream app's agents are {list(agents)}, expected only "
                           f"{ingest_name}; streams.app changed, update this module")
    run_worker(stream_app)
    return 0


if __name__ == "__main__":
    sys.exit(main())

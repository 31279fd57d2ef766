"""``tipsync bench resolve --through-worker``: the resolve stage in a real worker against the
same stage in-process, on the same records, in one run (issue 18: where resolve's time goes).

1. ``--people`` invented people (``tipsync bench stream``'s, a share also known to a second
   agency) are encoded with the registry and put straight onto a bench topic root's
   ``internal.resolve``, keyed as ingest keys them; no offset is committed, so the worker
   resolves every one of them (decode, ``ResolveStage.apply``, outputs encoded and published,
   the agencies' feeds) — ingest is not in the figure.
2. One worker (``tipsync stream``) is started after one warm-up person has been resolved;
   its CPU seconds (``/proc``) from then to the commit of the last offset are the figure:
   records per CPU second of the worker. ``--profile-worker PATH`` samples the worker with
   py-spy meanwhile (``pip install py-spy``; a speedscope or flamegraph file, by extension).
3. In this process, on the same bytes, each step the worker takes, timed apart per CPU
   second: decode and check, ``ResolveStage.apply``, the outputs encoded (the real Avro
   serializers), the feed messages made and encoded. Their sum is what the worker would cost
   without faust, aiokafka and librdkafka; the worker's own figure against it is the engine's
   share.

Figures are printed, and a JSON line of them last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from confluent_kafka import KafkaException

from deploy.bench.stream import _cpu_seconds, person_event
from deploy.bench.stream_harness import StreamHarness
from schemas.agencies import load_agencies
from schemas.config import load_settings
from schemas.entities import FEED_MESSAGE
from schemas.serde import AvroDeserializer, AvroSerializer
from schemas.topics import TopicSettings, TopicSpec, create_topics, resolve_config
from streams.decoding import EventDecoder
from streams.feeds import AgencyFeeds
from streams.metrics import StreamMetrics
from streams.output_producer import OutputProducer
from streams.outputs import ResolvePublisher, Serializers
from streams.resolve import Resolver
from streams.resolve_stage import ResolveStage, trust_ranks

AGENCIES = ("police-ctu", "immigration")


def resolve_messages(harness: StreamHarness, people: int, duplicates: float,
                     seed: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of each person record, as ingest forwards it to the resolve topic."""
    rng = random.Random(seed)
    messages = []
    for index in range(people):
        agencies = AGENCIES if rng.random() < duplicates else AGENCIES[:1]
        for agency_id in agencies:
            event = person_event(index, agency_id, rng)
            key = f"person:{agency_id}:{event['source_record_id']}".encode()
            messages.append((key, harness.encode("person", event)))
    return messages


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of each kind of thread of a process: the main thread (the event
    loop: faust's agents), librdkafka's (``rdk:*``), and the other Python threads (faust's
    consumer thread among them)."""
    kinds: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/task/{task}/comm", encoding="ascii") as comm:
                name = comm.read().strip()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        kind = ("main" if int(task) == pid else
                "librdkafka" if name.startswith("rdk:") else "other threads")
        kinds[kind] = kinds.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return kinds


def _wait_committed(harness: StreamHarness, offset: int, timeout: float) -> None:
    def reached() -> bool:
        try:
            return harness.committed(harness.topics.resolve) >= offset
        except KafkaException:  # the group's coordinator not known yet: look again
            return False

    harness.wait_for(reached, timeout=timeout, what=f"resolve committed up to offset {offset}")


def _worker_command(code: str | None) -> tuple[str, ...]:
    """The interpreter's arguments that run ``tipsync`` from this checkout, or from the
    checkout ``code`` (the baseline of an A/B run: its modules come first on the path)."""
    if code is None:
        return ("-m", "deploy.cli")
    return ("-c", f"import runpy, sys; sys.path.insert(0, {str(code)!r}); "
                  "runpy.run_module('deploy.cli', run_name='__main__')")


def worker_rate(harness: StreamHarness, messages: list[tuple[bytes, bytes]],
                profile: str | None, extra: list[str], code: str | None = None,
                ) -> dict[str, Any]:
    topic = harness.topics.resolve
    create_topics(harness.settings.client, [
        TopicSpec(topic, 1, TopicSettings.from_environment().replication_factor,
                  resolve_config()),
    ])
    warm_key, warm_value = messages[0]
    harness.publish_raw(topic, warm_key, warm_value)
    harness.flush()
    worker = harness.start_worker(store="memory", extra=extra, command=_worker_command(code))
    _wait_committed(harness, 1, timeout=300)
    for key, value in messages[1:]:
        harness.publish_raw(topic, key, value)
    harness.flush()  # published before the clock starts: the worker reads a backlog
    sampler = None
    if profile is not None:
        py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable),
                                                        "py-spy")
        file_format = "speedscope" if profile.endswith(".json") else "flamegraph"
        sampler = subprocess.Popen(
            [py_spy, "record", "--pid", str(worker.pid), "--rate", "200", "--gil", "--format",
             file_format, "--output", profile, "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    load = os.getloadavg()[0]
    cpu_before, started = _cpu_seconds(worker.pid), time.monotonic()
    threads_before = thread_cpu(worker.pid)
    _wait_committed(harness, len(messages), timeout=7200)
    cpu = _cpu_seconds(worker.pid) - cpu_before
    threads = {kind: round(seconds - threads_before.get(kind, 0.0), 2)
               for kind, seconds in thread_cpu(worker.pid).items()}
    seconds = time.monotonic() - started
    if sampler is not None:
        sampler.send_signal(2)  # py-spy writes its file on SIGINT
        sampler.wait(timeout=120)
    harness.stop_worker(worker)
    records = len(messages) - 1
    return {"records": records, "worker_cpu_seconds": round(cpu, 2),
            "worker_cpu_seconds_by_thread": threads,
            "worker_records_per_cpu_second": round(records / cpu, 1),
            "wall_seconds": round(seconds, 2), "load_average_at_start": round(load, 2)}


def _cpu_handing(outputs_of: list[list[Any]], handle: Callable[[Any], Awaitable[None]]) -> float:
    """Process CPU seconds ``handle`` takes over every output, in order."""
    cpu = time.process_time()

    async def handle_all() -> None:
        for each in outputs_of:
            for output in each:
                await handle(output)

    asyncio.run(handle_all())
    return time.process_time() - cpu


def in_process_rates(harness: StreamHarness,
                     messages: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """Each of the worker's steps on the same messages in this process, per CPU second."""
    agencies = load_agencies()
    decoder = EventDecoder(AvroDeserializer(harness.registry), agencies=agencies)

    async def decode_all() -> list[Any]:
        return [await decoder.resolve_event(key, value) for key, value in messages]

    cpu = time.process_time()
    events = asyncio.run(decode_all())
    decode_cpu = time.process_time() - cpu

    stage = ResolveStage(lambda: Resolver(trust_ranks(agencies)))
    outputs_of = []
    cpu = time.process_time()
    for offset, event in enumerate(events):
        outputs_of.append(stage.apply(event, golden_version=offset))
    apply_cpu = time.process_time() - cpu

    dropped: list[int] = []

    async def drop(topic: str, key: bytes | None, value: bytes | None, *_: Any,
                   **__: Any) -> None:
        dropped.append(len(value or b""))

    serializers = Serializers(harness.registry)
    feed_serializer = AvroSerializer(harness.registry, FEED_MESSAGE)
    publish = ResolvePublisher(drop, harness.topics, serializers, StreamMetrics())
    outputs = sum(len(each) for each in outputs_of)
    encode_cpu = _cpu_handing(outputs_of, publish)
    sent_outputs = len(dropped)
    # The feeds read the resolver as it is when an output is published: made here from the
    # final state, which costs about as much (every person's records, every clearance).
    feeds = AgencyFeeds(send=drop, topics=harness.topics, serialize=lambda: feed_serializer,
                        agencies=agencies, resolver=lambda: stage.resolver)
    feed_cpu = _cpu_handing(outputs_of, feeds)
    records = len(events)
    feed_messages = len(dropped) - sent_outputs
    total = decode_cpu + apply_cpu + encode_cpu + feed_cpu
    interleaved_dropped = asyncio.run(_interleaved(harness, messages, drop))
    producer = OutputProducer(harness.settings.client, lambda error: print(error))
    interleaved_sent = asyncio.run(_interleaved(harness, messages, producer.send,
                                                producer.flush))

    def rate(seconds: float) -> float:
        return round(records / seconds, 1) if seconds > 0 else float("inf")

    return {
        "records": records, "outputs": outputs, "outputs_per_record": round(outputs / records, 2),
        "feed_messages_per_record": round(feed_messages / records, 2),
        "cpu_seconds": {"decode": round(decode_cpu, 2), "apply": round(apply_cpu, 2),
                        "encode_outputs": round(encode_cpu, 2), "feeds": round(feed_cpu, 2)},
        "apply_records_per_cpu_second": rate(apply_cpu),
        "all_steps_records_per_cpu_second": rate(total),
        "interleaved_dropped_records_per_cpu_second": rate(interleaved_dropped),
        "interleaved_sent_records_per_cpu_second": rate(interleaved_sent),
    }


async def _interleaved(harness: StreamHarness, messages: list[tuple[bytes, bytes]],
                       send: Any, flush: Any = None) -> float:
    """CPU seconds of the worker's steps taken message after message, as the handler takes
    them (decode, apply, each output encoded, its feeds made, handed to ``send``)."""
    agencies = load_agencies()
    decoder = EventDecoder(AvroDeserializer(harness.registry), agencies=agencies)
    stage = ResolveStage(lambda: Resolver(trust_ranks(agencies)))
    feed_serializer = AvroSerializer(harness.registry, FEED_MESSAGE)
    feeds = AgencyFeeds(send=send, topics=harness.topics, serialize=lambda: feed_serializer,
                        agencies=agencies, resolver=lambda: stage.resolver)
    publish = ResolvePublisher(send, harness.topics, Serializers(harness.registry),
                               StreamMetrics(), feeds=feeds)
    cpu = time.process_time()
    for offset, (key, value) in enumerate(messages):
        event = await decoder.resolve_event(key, value)
        for output in stage.apply(event, golden_version=offset):
            await publish(output)
    if flush is not None:
        await flush()
    return time.process_time() - cpu


def run_through_worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    codes: list[tuple[str, str | None]] = [("this checkout", None)]
    if args.baseline_code is not None:
        codes.insert(0, ("baseline " + str(args.baseline_code), str(args.baseline_code)))
    extra = list(args.worker_argument or [])
    figures: dict[str, Any] = {"benchmark": "resolve-through-worker", "people": args.people,
                               "workers": []}
    messages: list[tuple[bytes, bytes]] = []
    local: dict[str, Any] = {}
    for round_number in range(args.rounds):
        for label, code in codes:
            harness = StreamHarness(settings, agencies=AGENCIES, entities=("person",),
                                    partitions=3).setup()
            try:
                if not messages:
                    messages = resolve_messages(harness, args.people, args.duplicates,
                                                args.seed)
                profile = args.profile_worker if code is None else None
                worker = worker_rate(harness, messages, profile, extra, code)
                if not local:
                    local = in_process_rates(harness, messages)
            finally:
                harness.teardown()
            worker["code"] = label
            worker["round"] = round_number + 1
            figures["workers"].append(worker)
            print(f"resolve in a worker ({label}, round {round_number + 1}): "
                  f"{worker['records']:,} records in {worker['worker_cpu_seconds']:.1f} CPU s "
                  f"= {worker['worker_records_per_cpu_second']:,.0f} records per CPU second "
                  f"(by thread: {worker['worker_cpu_seconds_by_thread']}; "
                  f"{worker['wall_seconds']:.1f} s wall, load average "
                  f"{worker['load_average_at_start']})", flush=True)
    steps = local["cpu_seconds"]
    print(f"in-process on the same {local['records']:,} records "
          f"({local['outputs_per_record']} outputs and "
          f"{local['feed_messages_per_record']} feed messages per record): CPU s decode "
          f"{steps['decode']}, apply {steps['apply']}, encode outputs "
          f"{steps['encode_outputs']}, feeds {steps['feeds']}; apply alone "
          f"{local['apply_records_per_cpu_second']:,.0f} records per CPU second, all steps "
          f"{local['all_steps_records_per_cpu_second']:,.0f}; message after message as the "
          f"worker takes them, outputs dropped "
          f"{local['interleaved_dropped_records_per_cpu_second']:,.0f}, outputs sent to Kafka "
          f"{local['interleaved_sent_records_per_cpu_second']:,.0f}", flush=True)
    figures["in_process"] = local
    for label, _ in codes:
        rates = [worker["worker_records_per_cpu_second"] for worker in figures["workers"]
                 if worker["code"] == label]
        ratio = max(rates) / local["apply_records_per_cpu_second"]
        figures.setdefault("worker_over_apply", {})[label] = round(ratio, 3)
        print(f"worker ({label}) / in-process apply: best {ratio:.2f} "
              f"(rates per CPU second: {', '.join(f'{rate:,.0f}' for rate in rates)})",
              flush=True)
    figures["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    print(json.dumps(figures), flush=True)
    return 0

"""The faust app of tipsync: ingest and resolve, wired to Kafka (the thin I/O shell).

::

    tip.agency.<agency>.<entity>  --ingest-->  tip.reconciled.{case,report,organisation,location}
                                         \\->  tip.internal.resolve (1 partition, compacted)
                                                 --resolve-->  tip.reconciled.{person,link,
                                                               match_decision}
                                                               tip.internal.person-mapping
                                                               tip.outbound.<agency> (feeds)
    tip.stewardship.decisions  --forward-->  tip.internal.resolve (key steward:<pair>)
    (what neither stage can process)     -->  tip.dlq.ingest, tip.dlq.resolve

- **ingest** runs on every agency topic, parallel by partition. Its table ``ingest_held``
  (RocksDB through rocksdict, or memory; always with a changelog topic) holds, per source
  record, the newest accepted version and the last few event ids (``streams.ingest``).
- **resolve** runs on the single partition of ``tip.internal.resolve``; one worker owns it
  (``streams.resolve_stage`` explains versions and the rebuild after a restart).

This module only wires: it builds the faust app, its topics, table, agents and timers, and
hands each agent the collaborator that does the work, each a plain class of its own module:

- ``streams.discovery``: the registered agencies' topics on the broker, now and every
  ``discovery_interval_seconds`` (faust's ``pattern=`` subscription subscribes to nothing);
- ``streams.ingest_handler``: one agency message (decode, judge, publish, hold);
- ``streams.stewardship``: one steward's decision, forwarded to the resolve partition;
- ``streams.resolve_handler``: one resolve message, with ``streams.recovery`` (the rebuild),
  ``streams.snapshot_schedule`` and ``streams.model_rollout``;
- ``streams.feeds``: each resolve output's messages to the agencies it concerns;
- ``streams.outputs``: serializers, resolve's outputs and dead letters, all sent through
  ``streams.output_producer``; and ``streams.worker`` runs the worker process.

Values travel as raw bytes and are decoded with the contract's deserializer
(``streams.decoding``), so bytes that do not decode become dead letters instead of crashing an
agent. Delivery is at-least-once: faust flushes the producer before it commits offsets, and
everything downstream is idempotent (ingest drops replays, resolve re-emits the same
versions, the sink keeps the highest golden_version). faust's exactly_once mode is not used.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import faust

from schemas.agencies import load_agencies
from schemas.config import Settings, load_settings
from schemas.entities import FEED_MESSAGE, RECONCILED_OUTPUTS
from schemas.registry import SchemaRegistry
from schemas.serde import AvroDeserializer, AvroSerializer
from schemas.topics import (
    STEWARDSHIP_PARTITIONS,
    TopicSettings,
    compacted_config,
    erasable_config,
    outbound_config,
    resolve_config,
    stewardship_config,
)
from streams.agent_guard import exit_hard_after_grace, finished_or_stop
from streams.decoding import EventDecoder, once_the_registry_answers
from streams.discovery import (
    AgencyDiscovery,
    RegisteredAgencies,
    SubscribeBetweenRebalances,
    agency_topics_on_broker,
    common_partition_count,
    fitting_topics,
    warn_misfits,
)
from streams.feeds import AgencyFeeds
from streams.fetching import consumer_for
from streams.ingest_handler import IngestHandler
from streams.input_gaps import (
    ContiguousInput,
    FaustAcknowledger,
    FaustTailWatch,
    GroupStart,
    SeekUncommittedToStart,
    read_range,
)
from streams.metrics import StreamMetrics
from streams.model_rollout import ModelRollout
from streams.options import StreamOptions
from streams.output_producer import IdempotentFaustProducer, OutputProducer
from streams.outputs import DeadLetterSender, ResolvePublisher, Serializers
from streams.recovery import ResolveRecovery, committed_offset, resolve_topic_id
from streams.resolve import TrustRanks
from streams.resolve.model_file import ModelFile
from streams.resolve_handler import ResolveHandler
from streams.resolve_stage import MAPPING, load_model, trust_ranks
from streams.snapshot import SnapshotPolicy, snapshot_directory
from streams.snapshot_schedule import SnapshotSchedule
from streams.stewardship import StewardshipForwarder
from streams.topic_creation import ResilientTopicCreation
from streams.worker import run_worker

__all__ = ["StreamApp", "StreamOptions", "create_app", "run_worker"]

log = logging.getLogger("tipsync.streams")

# how often the app looks for input partitions faust holds without handing their last
# messages (streams.input_gaps.TailWatch: taken up after three looks without a change)
TAIL_WATCH_SECONDS = 10.0


class StreamApp:
    """The faust app with its two agents, its table, its topics, and the collaborators the
    agents hand their messages to."""

    def __init__(self, options: StreamOptions, settings: Settings | None = None) -> None:
        self.options = options
        self.settings = settings or load_settings()
        self.topics = topics = options.topics
        bootstrap = self.settings.client  # the servers and how to authenticate
        self.metrics = StreamMetrics()
        registry = SchemaRegistry(bootstrap.registry())
        self.serializers = Serializers(registry)
        self.agencies = agencies = load_agencies()
        decoder = EventDecoder(AvroDeserializer(registry), agencies=agencies)
        self._outputs_ready = asyncio.Event()  # agents wait until their topics exist
        trust = trust_ranks(agencies)
        # Read at start, so a bad model file stops the worker before it consumes anything.
        model_file = load_model(options.model_path)
        log.warning("resolve: scoring model %s (%s)", model_file.fingerprint,
                    options.model_path or "reasoned default weights")
        self.data_dir = (
            self.settings.home / "streams" / options.group_id / f"worker-{options.worker_index}"
        )

        # only the registered agencies' topics: identity comes from the topic (streams.discovery)
        registered = RegisteredAgencies(frozenset(agencies), topics)
        found = registered(agency_topics_on_broker(bootstrap, topics))
        self.partitions = options.partitions or common_partition_count(found)
        warn_misfits(found, self.partitions)

        self.app = faust.App(
            options.group_id,
            **bootstrap.faust(),  # broker and broker_credentials
            store="memory://" if options.store == "memory" else "rocksdb://",
            datadir=str(self.data_dir),
            web_enabled=options.web_port is not None,
            web_port=options.web_port or 6066,
            web_host="127.0.0.1",
            topic_partitions=self.partitions,
            # faust creates no topic: the worker makes them all first, its assignor's too
            # (``internal_topics``), with the replication factor setting or the cluster's default,
            # which faust cannot ask for (-1); 0 makes a creation faust tried anyway fail
            # loudly rather than quietly make a topic of one replica on a cluster.
            topic_replication_factor=max(TopicSettings.from_environment().replication_factor, 0),
            processing_guarantee="at_least_once",
            key_serializer="raw",
            value_serializer="raw",
            consumer_auto_offset_reset="earliest",
            producer_linger_ms=20,
            producer_max_batch_size=1_048_576,
            broker_commit_every=10_000,
            # A worker that dies (kill -9, a lost machine) holds its partitions until its
            # session times out: 10 s instead of faust's 60 s before another takes over.
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
            broker_max_poll_records=2_000,
            # aiokafka rejoins the group when its metadata of the subscribed topics changes.
            # A topic added by discovery whose metadata arrived before the new subscription
            # took effect is otherwise noticed only at the next periodic refresh, 5 minutes
            # by default (seen in tests/integration/test_stream_workers.py: a new agency's
            # events waited past the test's 2 minutes in about one run of three).
            consumer_metadata_max_age_ms=30_000,
            stream_buffer_maxsize=16_384,
            autodiscover=False,
        )
        if options.role != "all":
            # The group's leader hands out standby copies of the table for the changelog
            # partitions it knows; a resolve-only leader knows none, so the standbys it names
            # are missing from the Kafka assignment it sends, and the worker given them fails
            # to read them. Workers of the split roles hand out none (an ingest worker that
            # takes over a partition reads its changelog instead). The setting stays, so that
            # every role joins with faust's assignor (faust 0.15.3 picks round-robin for an
            # app without tables or standbys, and Kafka refuses a group of mixed assignors).
            self.app.assignor.replicas = 0
        # before faust makes its consumer and producer (one transport per app: only ours is
        # changed): topic creation that survives a node away (streams/topic_creation.py)...
        self.app.transport = ResilientTopicCreation(self.app.conf.broker_consumer, self.app)
        # ...and acks=all with idempotence for what faust writes itself
        self.app.transport.Producer = IdempotentFaustProducer  # type: ignore[misc]
        # ...and fetches the broker holds 100 ms, not 1.5 s, answered at the first byte for
        # the resolve worker, at 64 KiB for a worker that ingests (streams/fetching.py)
        self.app.transport.Consumer = consumer_for(options.role)  # type: ignore[misc]
        self._declare_topics(fitting_topics(found, self.partitions))
        self.discovery = AgencyDiscovery(
            lambda: registered(agency_topics_on_broker(bootstrap, topics)), self.partitions,
            # the channel's own list: discovery grows it in place
            subscribed=self.agency_channel.topics,  # type: ignore[arg-type]
            # the conductor resubscribes on its next turn
            on_new=self.app.topics._flag_changes,  # type: ignore[attr-defined]
            # what it handed the consumer at its last subscription (faust 0.15.3)
            consumer_topics=lambda: self.app.topics._topic_name_index,  # type: ignore[attr-defined]
        )

        self._adapt_consumer()
        self._stopping = False  # a stop for a failure is under way (_output_failed)
        self.output = OutputProducer(bootstrap, self._output_failed)
        self._flush_outputs_with_faust()
        send = self.output.send
        dead_letter = DeadLetterSender(send, topics, self.metrics)
        self.feed_serializer = functools.cache(lambda: AvroSerializer(registry, FEED_MESSAGE))
        # where the group starts each partition (streams.input_gaps)
        self.group_start = GroupStart(bootstrap, options.group_id)
        self.contiguous_inputs: list[ContiguousInput] = []
        self.ingest_handler: IngestHandler | None = None
        self.stewardship: StewardshipForwarder | None = None
        self.resolve_handler: ResolveHandler | None = None
        if self.held is not None:  # roles all and ingest
            self.ingest_handler = IngestHandler(
                contiguous=self._contiguous("ingest"),
                topics=topics, held=self.held,
                changelog_topic=self.held.changelog_topic.get_topic_name(), send=send,
                decoder=decoder, serializers=self.serializers, dead_letter=dead_letter,
                metrics=self.metrics, outputs_ready=self._outputs_ready,
            )
            self.stewardship = StewardshipForwarder(
                topics=topics, send=send, decoder=decoder, dead_letter=dead_letter,
                outputs_ready=self._outputs_ready, contiguous=self._contiguous("stewardship"),
            )
        if options.resolves:
            self._build_resolve(decoder, trust, model_file, dead_letter)
        self._declare_agents()
        # faust waits 45 s after a subscription change before it resubscribes (to gather
        # changes made during one rebalance); 5 s is plenty for topics found by discovery.
        self.app.topics._resubscribe_sleep_lock_seconds = 5.0  # type: ignore[attr-defined]

    def _build_resolve(self, decoder: EventDecoder, trust: TrustRanks, model_file: ModelFile,
                       dead_letter: DeadLetterSender) -> None:
        """Resolve's handler, its outputs and feeds, rebuild, snapshots and model roll-out
        (roles all, resolve)."""
        topics, options, bootstrap = self.topics, self.options, self.settings.client
        send = self.output.send
        # the agencies' feeds, made from resolve's outputs and the resolver they came from
        feeds = AgencyFeeds(
            send=send, topics=topics, serialize=self.feed_serializer,
            agencies=self.agencies, resolver=self._resolver_now,
        )
        publish = ResolvePublisher(send, topics, self.serializers, self.metrics, feeds=feeds)
        self.model_rollout = ModelRollout(
            bootstrap=bootstrap, topics=topics, model_file=model_file, send=send,
            publish=publish, dead_letter=dead_letter,
        )
        snapshot_policy = SnapshotPolicy(options.snapshot_every_records,
                                         options.snapshot_every_seconds)
        snapshot_dir = snapshot_directory(self.data_dir)
        recovery = ResolveRecovery(
            bootstrap=bootstrap, topics=topics, trust=trust, snapshot_policy=snapshot_policy,
            snapshot_dir=snapshot_dir, decoder=decoder,
            recorded_model=self.model_rollout.recorded_model,
        )
        self.resolve_handler = ResolveHandler(
            rebuild=recovery.rebuild, change_model=self.model_rollout.change_model,
            snapshots=SnapshotSchedule(
                snapshot_policy, snapshot_dir, topics.resolve,
                functools.partial(resolve_topic_id, bootstrap, topics),
            ),
            decoder=decoder, publish=publish, dead_letter=dead_letter, metrics=self.metrics,
            outputs_ready=self._outputs_ready, read=recovery.read,
            acknowledge=FaustAcknowledger(lambda: self.app.consumer),
            committed=functools.partial(
                asyncio.to_thread, committed_offset, bootstrap, self.app.conf.id, topics
            ),
        )

    def _resolver_now(self) -> Any:
        stage = None if self.resolve_handler is None else self.resolve_handler.stage
        return None if stage is None else stage.resolver

    def _contiguous(self, stage: str) -> ContiguousInput:
        """Every message of the stage's partitions processed, also those faust skips."""
        contiguous = ContiguousInput(
            self.group_start, functools.partial(read_range, self.settings.client), stage,
            acknowledge=FaustAcknowledger(lambda: self.app.consumer),
        )
        self.contiguous_inputs.append(contiguous)
        return contiguous

    def _adapt_consumer(self) -> None:
        """Two fixes to the consumer faust makes (when it makes it): partitions never
        committed are sought back too (streams.input_gaps.SeekUncommittedToStart), and a
        subscription change waits for the rebalance to end
        (streams.discovery.SubscribeBetweenRebalances)."""
        app = self.app

        def adapt(consumer: Any) -> Any:
            SeekUncommittedToStart.install(consumer, lambda: app.tables.changelog_topics)
            SubscribeBetweenRebalances.install(consumer, lambda: app.rebalancing)
            return consumer

        made = app._consumer  # type: ignore[attr-defined]
        if made is not None:
            adapt(made)
            return
        new_consumer = app._new_consumer
        app._new_consumer = lambda: adapt(new_consumer())  # type: ignore[method-assign]

    def _flush_outputs_with_faust(self) -> None:
        # faust flushes its producer before it commits offsets, on a rebalance and when it
        # stops: the outputs given to ours must be acknowledged by then too.
        faust_producer = self.app.producer
        faust_flush = faust_producer.flush

        async def flush_both() -> None:
            await faust_flush()
            await self.output.flush()

        faust_producer.flush = flush_both  # type: ignore[method-assign]

    async def _finished_or_stop(self, stage: str, handle: Any, message: Any) -> None:
        if message.timestamp is not None:  # its outputs are gathered while the worker is behind
            self.output.behind(time.time() - message.timestamp)
        # an input left unfinished is never committed: the worker stops (streams.agent_guard)
        await finished_or_stop(stage, handle, message, self.output, self._output_failed)

    def _output_failed(self, error: str) -> None:
        log.critical("%s; stopping", error)
        if self._stopping:
            return  # one stop is under way
        self._stopping = True
        exit_hard_after_grace(error)  # even if faust's shutdown hangs
        asyncio.ensure_future(self.app.crash(RuntimeError(error)))

    def _declare_topics(self, subscribed: list[str]) -> None:
        app, topics = self.app, self.topics
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        # ``topics`` is one list shared with every clone faust makes for the agent, so
        # topics found later are added to it in place.
        self.agency_channel = app.topic(**raw)
        self.agency_channel.topics = list(subscribed)  # a list, to grow in place
        self.resolve_topic = app.topic(
            topics.resolve, partitions=1, internal=True, compacting=True,
            config=resolve_config(), **raw,
        )
        self.output_topics = {
            output: app.topic(
                topics.reconciled(output), internal=True, compacting=True,
                config=compacted_config(), **raw,
            )
            for output in RECONCILED_OUTPUTS
        }
        self.output_topics[MAPPING] = app.topic(
            topics.person_mapping, internal=True, compacting=True,
            config=compacted_config(), **raw,
        )
        # stewards' decisions (tipsync review decide); forwarded to the resolve partition
        self.stewardship_topic = app.topic(
            topics.stewardship_decisions, partitions=STEWARDSHIP_PARTITIONS, internal=True,
            compacting=True, config=stewardship_config(), **raw,
        )
        # each registered agency's feed (streams.feeds); kept as `tipsync topics create` does
        self.outbound_topics = {
            agency_id: app.topic(
                topics.outbound(agency_id), internal=True, deleting=True,
                config=outbound_config(TopicSettings.from_environment()), **raw,
            )
            for agency_id in sorted(self.agencies)
        }
        self.model_topic = app.topic(
            topics.resolve_model, partitions=1, internal=True, compacting=True,
            config=compacted_config(), **raw,
        )
        self.dlq_topics = {
            stage: app.topic(
                topics.dlq(stage), internal=True,
                # the config `tipsync topics create` gives them (compact,delete, retention
                # config.DLQ_RETENTION_MS): `tipsync erase` tombstones a record's dead letters
                config=erasable_config(TopicSettings.from_environment().dlq_retention_ms),
                **raw,
            )
            for stage in ("ingest", "resolve")
        }
        # only where ingest runs: a table makes faust subscribe to its changelog
        self.held = None if not self.options.ingests else app.Table(
            "ingest_held", partitions=self.partitions,
            schema=faust.Schema(key_serializer="raw", value_serializer="json"),
        )

    def internal_topics(self) -> list[Any]:
        """The topics the worker creates before it starts (``streams.worker``)."""
        held = [] if self.held is None else [self.held.changelog_topic]
        return [*held, self.resolve_topic, self.model_topic,
                self.stewardship_topic, *self.output_topics.values(), *self.dlq_topics.values(),
                *self.outbound_topics.values(), self._assignor_topic()]

    def _assignor_topic(self) -> Any:
        """faust's leader-assignor topic, named as ``faust.assignor.LeaderAssignor`` names it
        (faust 0.15.3); made here so that faust, which cannot ask for the cluster's default
        replication factor, creates no topic."""
        return self.app.topic(f"{self.app.conf.id}-__assignor-__leader", partitions=1,
                              internal=True, acks=False)

    def _declare_agents(self) -> None:
        app, options = self.app, self.options
        @app.task
        async def declare_outputs() -> None:
            for topic in (*self.output_topics.values(), *self.dlq_topics.values(),
                          *self.outbound_topics.values()):
                await topic.maybe_declare()
            # Fail at start, not at the first record, when the schemas are not registered;
            # wait while the registry cannot answer (it is not the schemas' fault).
            makers: list[Callable[[], object]] = [
                functools.partial(self.serializers, output) for output in RECONCILED_OUTPUTS
            ]
            makers.append(self.feed_serializer)  # the feeds' schema too
            for make in makers:
                await once_the_registry_answers(functools.partial(asyncio.to_thread, make))
            self._outputs_ready.set()

        # input partitions whose last messages faust never handed (streams.input_gaps)
        tail_watch = FaustTailWatch(app)

        @app.timer(interval=TAIL_WATCH_SECONDS)
        async def take_up_unhanded_tails() -> None:
            await tail_watch()

        if self.ingest_handler is not None and self.stewardship is not None:
            self._declare_ingest(self.ingest_handler, self.stewardship)
        if self.resolve_handler is not None:
            self._declare_resolve(self.resolve_handler)

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def forget_positions(sender: Any, revoked: set[Any], **_: Any) -> None:
            # Another worker may take the resolve partition and move on: rebuild when it
            # comes back rather than trust a state that may be behind.
            if (self.resolve_handler is not None
                    and any(tp.topic == self.topics.resolve for tp in revoked)):
                self.resolve_handler.forget()
            # ingest's and stewardship's too: where each starts is read again at its next
            # message
            for contiguous in self.contiguous_inputs:
                contiguous.forget([(tp.topic, tp.partition) for tp in revoked])
            self.group_start.forget()

        if options.metrics_port is not None:
            port = options.metrics_port + options.worker_index

            @app.task
            async def serve_metrics() -> None:
                self.metrics.serve(port)

    def _declare_ingest(self, handler: IngestHandler, forwarder: StewardshipForwarder) -> None:
        """The agency topics (found now and by discovery) and the stewards' decisions."""
        app, options = self.app, self.options
        ingest_one, forward_decision = handler.ingest_one, forwarder.forward_one

        @app.timer(interval=options.discovery_interval_seconds)
        async def discover_agency_topics() -> None:
            try:
                await self.discovery.discover()
            except Exception as error:  # noqa: BLE001 - a failed look must not stop the app
                log.error("looking for new agency topics failed (%s); trying again in %.0f s",
                          error, options.discovery_interval_seconds)

        @app.agent(self.agency_channel, name="ingest")
        async def ingest(stream: faust.StreamT) -> None:
            async for event in stream.events():
                await self._finished_or_stop("ingest", ingest_one, event.message)

        @app.agent(self.stewardship_topic, name="stewardship", concurrency=1)
        async def stewardship(stream: faust.StreamT) -> None:
            async for event in stream.events():
                await self._finished_or_stop("stewardship", forward_decision, event.message)

        self.ingest_agent = ingest

    def _declare_resolve(self, handler: ResolveHandler) -> None:
        """The single resolve partition, and the scoring model's roll-out."""
        app = self.app
        resolve_one = handler.resolve_one

        @app.task
        async def roll_out_model() -> None:
            await self._outputs_ready.wait()
            await self.model_rollout.roll_out()

        @app.agent(self.resolve_topic, name="resolve", concurrency=1)
        async def resolve(stream: faust.StreamT) -> None:
            async for event in stream.events():
                await self._finished_or_stop("resolve", resolve_one, event.message)

        self.resolve_agent = resolve


def create_app(options: StreamOptions | None = None,
               settings: Settings | None = None) -> StreamApp:
    """The stream app for one worker process (``tipsync stream`` runs it)."""
    return StreamApp(options or StreamOptions.from_environment(), settings)

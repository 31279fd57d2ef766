"""A thin, typed wrapper over confluent_kafka.Producer for at-least-once delivery.

Idempotent (``enable.idempotence``, ``acks=all``): a retry inside the client never writes a
record twice, and order per key is kept. Callers learn of each acknowledgement through a
callback and only then advance their checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from schemas import config
from schemas.client_config import ClientConfig

# Throughput without losing the guarantees: batches of up to 1 MiB, 20 ms to fill them,
# lz4 (cheap on one core), and a queue deep enough to keep the broker busy.
DEFAULT_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 20,
    "batch.size": 1_048_576,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 262_144,
    # A broker that stays away fails the delivery after two minutes instead of hanging.
    "message.timeout.ms": 120_000,
}

Acknowledged = Callable[[str | None], None]


class DeliveryError(RuntimeError):
    """Kafka cannot be used at all (unreachable, topic missing)."""


class Publisher:
    def __init__(
        self, bootstrap: str | ClientConfig, overrides: dict[str, Any] | None = None
    ) -> None:
        client = ClientConfig.of(bootstrap)  # the servers, or Settings.client
        self.bootstrap = client.bootstrap
        self.producer = Producer(client.librdkafka({**DEFAULT_CONFIG, **(overrides or {})}))

    def check_topics(self, topics: list[str], timeout: float = 15.0) -> None:
        """Fail early, before reading a row, when Kafka or a topic is not there."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                metadata = self.producer.list_topics(
                    timeout=max(deadline - time.monotonic(), 0.1))
                break
            except KafkaException as error:
                # librdkafka asks one broker; one that is down (a lost node of a cluster)
                # fails the request at once with _TRANSPORT while the others would answer
                # (seen in `bench faults --node-kills`): ask again until the deadline.
                failure = error.args[0] if error.args else None
                transport = isinstance(failure, KafkaError) and (
                    failure.code() == KafkaError._TRANSPORT)
                if transport and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                raise DeliveryError(
                    f"Kafka at {self.bootstrap} did not answer within {timeout:g} s ({error});"
                    f" check that it runs (tipsync stack status) or set"
                    f" {config.KAFKA_BOOTSTRAP}"
                ) from None
        missing = [topic for topic in topics if topic not in metadata.topics]
        if missing:
            raise DeliveryError(
                f"topic {', '.join(missing)} does not exist on {self.bootstrap}; create the "
                "agency topics with: tipsync topics create"
            )

    def publish(self, topic: str, key: bytes, value: bytes, acknowledged: Acknowledged) -> None:
        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            acknowledged(None if error is None else str(error))

        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                return
            except BufferError:
                # The local queue is full: serve acknowledgements until there is room.
                self.producer.poll(0.05)

    def poll(self, timeout: float = 0.0) -> int:
        return int(self.producer.poll(timeout))

    def flush(self, timeout: float) -> int:
        """Wait for outstanding acknowledgements; returns how many are still outstanding."""
        return int(self.producer.flush(timeout))

    def close(self, timeout: float = 10.0) -> None:
        """Serve what is left, then free the client now, while the interpreter is whole.

        Left to the interpreter's exit, librdkafka's handle is destroyed during finalization,
        where a delivery callback still queued runs against a half-torn-down interpreter:
        confluent-kafka-python #358, #265 describe segfaults of that kind, and a `tipsync
        produce` once exited with SIGSEGV after it had flushed (a fresh-clone `make test`)."""
        self.producer.flush(timeout)
        del self.producer

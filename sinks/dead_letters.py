"""Publishing what the sink cannot store to ``tip.dlq.sink``.

The dead letter is the original message, byte for byte (same key, same value) so an operator
can replay it once the cause is fixed. Its headers are the one dead-letter format of every
stage (``schemas.dead_letters``): stage, reason code, detail, where it was read, when. The
detail is built from field names and problems, never from values, because headers are logged
and shown in tools where personal data must not appear.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Producer

from schemas.client_config import ClientConfig
from schemas.dead_letters import dead_letter_headers, dead_letter_key
from sinks.batch import Rejection

STAGE = "sink"

class DeadLetterPublisher:
    """Idempotent producer of dead letters; ``publish`` returns once Kafka has them all."""

    def __init__(
        self, bootstrap: str | ClientConfig, topic: str, timeout_seconds: float = 30.0
    ) -> None:
        self.topic = topic
        self.timeout_seconds = timeout_seconds
        self._producer = Producer(ClientConfig.of(bootstrap).librdkafka({
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }))
        self._failures: list[KafkaError] = []

    def publish(self, rejections: Sequence[Rejection]) -> None:
        """Send and wait: the sink commits its offsets only after the dead letters are safe."""
        if not rejections:
            return
        self._failures.clear()
        for rejection in rejections:
            headers: list[tuple[str, str | bytes | None]] = [*dead_letter_headers(
                rejection.letter, STAGE, rejection.message.topic,
                rejection.message.partition, rejection.message.offset,
            )]
            self._producer.produce(
                self.topic,
                key=dead_letter_key(rejection.message.key, rejection.message.topic,
                                    rejection.message.partition, rejection.message.offset),
                value=rejection.message.value,
                headers=headers,
                on_delivery=self._on_delivery,
            )
            self._producer.poll(0)
        remaining = self._producer.flush(self.timeout_seconds)
        if remaining or self._failures:
            problem = self._failures[0].str() if self._failures else "timed out"
            raise KafkaException(KafkaError(
                KafkaError._MSG_TIMED_OUT if remaining else self._failures[0].code(),
                f"{len(self._failures) or remaining} dead letter(s) for {self.topic} were not"
                f" delivered ({problem}); the batch will be retried",
            ))

    def _on_delivery(self, error: KafkaError | None, _message: object) -> None:
        if error is not None:
            self._failures.append(error)

    def close(self) -> None:
        self._producer.flush(self.timeout_seconds)

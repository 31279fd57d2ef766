"""The local stack: Kafka (KRaft), Apicurio Registry and PostgreSQL 15 on loopback, no Docker.

``tipsync stack up|down|status|reset`` drives it; code that needs the Kafka jars (benchmarks
against Kafka's own Java tools) calls :func:`kafka_classpath`.
"""

from __future__ import annotations

from deploy.stack.artifacts import kafka_classpath as _kafka_classpath
from deploy.stack.layout import StackError, StateLayout
from deploy.stack.stack import LocalStack
from schemas.config import Settings, load_settings


def kafka_classpath(settings: Settings | None = None) -> str:
    """Classpath (``<cache>/kafka-<version>/*``) of Kafka's broker and tools jars."""
    return _kafka_classpath(StateLayout.of(settings or load_settings()))


__all__ = ["LocalStack", "StackError", "kafka_classpath"]

"""The local stack: Kafka (KRaft), Apicurio Registry and PostgreSQL 15 on loopback, no Docker.

``tipsync stack up|down|status|reset`` drives it (``deploy.stack.stack.LocalStack``); code
that needs the Kafka jars (benchmarks against Kafka's own Java tools) calls
:func:`kafka_classpath`. The package imports only the stack's light modules: every ``tipsync``
command reads ``deploy.stack.layout``, and only the stack's own commands need its driver.
"""

from __future__ import annotations

from deploy.stack.artifacts import kafka_classpath as _kafka_classpath
from deploy.stack.layout import StateLayout
from schemas.config import Settings, load_settings


def kafka_classpath(settings: Settings | None = None) -> str:
    """Classpath (``<cache>/kafka-<version>/*``) of Kafka's broker and tools jars."""
    return _kafka_classpath(StateLayout.of(settings or load_settings()))


__all__ = ["kafka_classpath"]

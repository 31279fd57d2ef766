"""How the console reaches Kafka: the topic root and one client configuration per principal
it acts as (``steward`` to read and write stewards' decisions, ``monitor`` for lag), each the
local stack's file of that principal unless a file is named (``tipsync console
--steward-config``/``--monitor-config``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from deploy.stack.principals import MONITOR, STEWARD
from schemas import config
from schemas.client_config import load_client_config
from schemas.config import Settings
from schemas.topics import TopicNames


def principal_settings(settings: Settings, principal: str, client_file: Path | None) -> Settings:
    """``settings`` acting as ``principal``: the file given, else the local stack's file of
    that principal (never the client file of whoever started the console)."""
    if client_file is None:
        return replace(settings, client_properties=None,
                       local_client_file=config.local_client_file(settings.home, principal))
    issued = load_client_config(client_file, default_bootstrap=settings.kafka_bootstrap,
                                default_registry_url=settings.registry_url,
                                named_by=f"--{principal}-config")
    return replace(settings, client_properties=issued)


@dataclass(frozen=True)
class Pipeline:
    topics: TopicNames
    steward: Settings
    monitor: Settings

    @classmethod
    def of(cls, settings: Settings, topic_root: str, steward_file: Path | None = None,
           monitor_file: Path | None = None) -> Pipeline:
        return cls(TopicNames(topic_root), principal_settings(settings, STEWARD, steward_file),
                   principal_settings(settings, MONITOR, monitor_file))

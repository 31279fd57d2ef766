"""Turning the bytes of an agency event into a checked ``AgencyEvent``, for ingest, resolve
and resolve's rebuild; and those of a steward's decision into its checked record.

Values travel as raw bytes and are decoded here with the contract's deserializer, so bytes
that do not decode become dead letters (``Rejected``) instead of crashing an agent. A schema
registry that cannot be reached is not the message's fault: decoding waits for it rather than
reject good data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from schemas.agencies import Agency
from schemas.dead_letters import Rejected
from schemas.entities import STEWARD_DECISION
from schemas.errors import RegistryUnavailableError, WireFormatError
from schemas.stewardship import decision_pair_key
from streams.ingest import AgencyEvent, check_event, split_held_key

log = logging.getLogger("tipsync.streams")

REGISTRY_RETRY_SECONDS = 5.0

T = TypeVar("T")


async def once_the_registry_answers(
    attempt: Callable[[], Awaitable[T]], retry_seconds: float = REGISTRY_RETRY_SECONDS
) -> T:
    """``attempt()``'s result, tried again every ``retry_seconds`` while it meets a registry
    that cannot answer (``RegistryUnavailableError``): that is never the message's fault, so
    the stage waits rather than reject good data. Any other error is ``attempt``'s own."""
    while True:
        try:
            return await attempt()
        except RegistryUnavailableError as error:
            log.error("%s; retrying in %.0f s", error, retry_seconds)
            await asyncio.sleep(retry_seconds)


class Deserializer(Protocol):
    """``schemas.serde.AvroDeserializer``: its result has the decoded ``record``."""

    def __call__(self, data: bytes, expected: str | None = None) -> Any: ...


class EventDecoder:
    def __init__(self, deserializer: Deserializer,
                 retry_seconds: float = REGISTRY_RETRY_SECONDS,
                 agencies: Mapping[str, Agency] | None = None) -> None:
        self._deserializer = deserializer
        self._retry_seconds = retry_seconds
        # the registry's agencies: each event is labelled at least its agency's floor
        self._agencies: Mapping[str, Agency] = agencies or {}

    async def agency_event(
        self, value: bytes | None, agency_id: str, entity: str, key: bytes | None
    ) -> AgencyEvent:
        """The event of an agency topic's message (its agency and entity come from the
        topic's name); raises ``Rejected`` for a message that is not a valid event."""
        decoded = await once_the_registry_answers(
            lambda: self._decode(value, entity), self._retry_seconds)
        return check_event(agency_id, entity, key, decoded.record,
                           agency=self._agencies.get(agency_id))

    async def _decode(self, value: bytes | None, expected: str) -> Any:
        try:
            return self._deserializer(value, expected=expected)  # type: ignore[arg-type]
        except WireFormatError as error:
            raise Rejected(error.reason, str(error)) from None

    async def resolve_event(self, key: bytes, value: bytes | None) -> AgencyEvent:
        """The event of a resolve-topic message, keyed by ingest's held key."""
        entity, agency_id, _ = split_held_key(key.decode())
        source_key = key.decode().split(":", 1)[1].encode()
        return await self.agency_event(value, agency_id, entity, source_key)

    async def steward_decision(self, pair: bytes | None, value: bytes | None) -> dict[str, Any]:
        """The record of a steward's decision (``schemas.stewardship``) whose message is keyed
        by ``pair``, its pair key; raises ``Rejected`` for one that is not a valid decision.
        (Details name no record: ids in a header are kept to the message's own key.)"""
        record: dict[str, Any] = (await once_the_registry_answers(
            lambda: self._decode(value, STEWARD_DECISION), self._retry_seconds)).record
        try:
            expected = decision_pair_key(record)
        except ValueError:
            raise Rejected(
                "invalid_envelope",
                "a steward decision must name two different records as "
                "<agency_id>:<source_record_id> (a well-formed agency id); decide again "
                "with tipsync review decide",
            ) from None
        if pair is None or pair.decode(errors="replace") != expected:
            raise Rejected(
                "key_mismatch",
                "a steward decision must be keyed by its pair key '<left key>|<right key>' "
                "(canonical order); publish it with tipsync review decide",
            )
        return record

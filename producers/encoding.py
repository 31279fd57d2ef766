"""Change events become the contract's Avro bytes, each rule of the contract checked once.

Running the contract's pydantic model on every event, and dumping it back to a dict, took
half of the producer's CPU time (docs/BENCHMARKS.md, "Producer") and repeated what
normalisation had just checked, so the checks are split by how often their input can change:

- per value and per row, ``producers.normalise`` and ``producers.records`` apply every rule
  the contract has for agency input (codes, countries, phones, e-mails, dates, identifiers,
  lengths, the rules across fields), with messages written for the agency;
  tests/unit/producers/test_contract_agreement.py fails when they accept a value the
  contract's model refuses, or when an event they build encodes to other bytes than the
  model's own output would;
- per event, the Avro writer refuses a field of the wrong type, an unknown enum symbol or a
  missing required field (``schemas.serde``), so the bytes on the wire always fit the schema;
- per run, the envelope's constants (agency id, classification, legal basis, consent,
  retention) are validated with the contract's model before the first row is read: they are
  the same for every event of the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from producers.canonical import Entity
from producers.events import Governance, change_event
from producers.records import NormalisedRecord
from producers.tracker import Serialize
from schemas.config import Settings


class EncodingSetupError(ValueError):
    """The run cannot encode events at all: its envelope or the registry is not right."""


def check_run_envelope(agency_id: str, governance: Governance, entities: Iterable[Entity]) -> None:
    """Validate what every event of the run shares with the contract's model, once.

    A DELETE of a placeholder record carries the run's envelope and nothing else, so the
    contract's answer is about the agency id and the governance labels only.
    """
    from schemas.models import InvalidEventError, validate_event

    moment = datetime.now(UTC)
    for entity in entities:
        probe = NormalisedRecord(
            entity=entity,
            source_record_id="envelope-check",
            deleted=True,
            updated_at=moment,
            explicit_version=None,
            payload={},
        )
        event = change_event(agency_id, probe, 0, "envelope-check", moment, governance)
        try:
            validate_event(entity.value, event)
        except InvalidEventError as error:
            problems = "; ".join(
                f"{field}: {problem}" if field else problem for field, problem in error.problems
            )
            raise EncodingSetupError(
                f"the run's envelope does not fit the contract ({problems}); fix --agency, "
                "--classification, --legal-basis, --consent-ref or --retention-days, or the "
                "agency's entry in deploy/agencies.yaml"
            ) from None


def make_serializer(
    settings: Settings, entities: list[Entity], agency_id: str, governance: Governance
) -> Serialize:
    """A function writing one event of an entity in Avro (Confluent wire format).

    The run's envelope is checked first, then the registry is asked for every entity's schema
    id, so a wrong label or a missing schema stops the run before the first row.
    """
    from schemas.errors import RegistryError
    from schemas.registry import SchemaRegistry
    from schemas.serde import AvroSerializer

    check_run_envelope(agency_id, governance, entities)
    registry = SchemaRegistry(settings.client.registry())
    try:
        writers = {entity: AvroSerializer(registry, entity.value) for entity in entities}
    except RegistryError as error:
        raise EncodingSetupError(str(error)) from None
    return lambda entity, event: writers[entity](event)

"""Errors of the contract's I/O: the schema registry and the wire format.

Each message names the input (subject, schema id, registry URL, message size), the problem,
and what to do about it.
"""

from __future__ import annotations


class RegistryError(Exception):
    """The schema registry refused or could not answer a request."""


class RegistryUnavailableError(RegistryError):
    """The registry did not answer, even after retries with backoff."""


class SchemaNotRegisteredError(RegistryError):
    """The local schema is not registered under its subject; producers never register."""


class SchemaIncompatibleError(RegistryError):
    """The registry refused a schema version under the subject's compatibility rule."""

    def __init__(self, subject: str, reasons: list[str]) -> None:
        self.subject = subject
        self.reasons = reasons
        super().__init__(
            f"subject {subject}: the registry refused the local schema as incompatible with "
            f"the registered versions ({'; '.join(reasons) or 'no reason given'}); "
            "make the change compatible (add fields with defaults, never remove or retype "
            "a required field) or publish under a new record name"
        )


class WireFormatError(ValueError):
    """Bytes that are not a Confluent wire-format Avro message this registry can decode.

    Consumers tell the cases apart by type, never by the message's text; each subclass names
    its dead-letter reason (``schemas.dead_letters.REASONS``)."""

    reason = "undecodable"


class UnknownSchemaError(WireFormatError):
    """The message's schema id is not in the registry."""

    reason = "unknown_schema"


class WrongSchemaError(WireFormatError):
    """The message's record type is not the one its topic carries."""

    reason = "wrong_schema"


class SerializationError(ValueError):
    """A record that does not fit the schema it is written with."""

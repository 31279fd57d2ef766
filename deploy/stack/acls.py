"""Who may do what on Kafka: the ACL plan of every principal, as data, and applying it.

The broker denies whatever no ACL allows (``allow.everyone.if.no.acl.found=false``) and only
``admin`` is a super user, so this module is the whole of what the other principals may do.
``stack up`` applies the service principals' grants, ``tipsync agency enroll`` an agency's,
``tipsync agency list`` shows them (read back from the broker). Every grant is built from
``schemas.topics.TopicNames``, so a deployment (or a test) under another topic root gets the
same grants under its root.

What each service needs, and why (found by running each against the broker):

- ``stream`` (faust): reads the topics of each registered agency (its prefix
  ``tip.agency.<id>.``, ``stream_agency_grants``: granted by ``stack up`` for every agency of
  the agency registry and by ``tipsync agency enroll``, so a topic of an agency the registry
  does not list is refused to it) and the stewards' decisions; reads, writes and creates its
  own topics under ``tip.internal.`` (the resolve topic, person mapping, model marker, faust's
  changelogs and its assignor topic, all named after the app id ``tip.internal.stream``);
  writes reconciled, dead-letter and outbound topics. faust declares every topic it writes
  (``app.topic(..., internal=True)``) and asks the broker to create it at start-up: Kafka
  answers TOPIC_AUTHORIZATION_FAILED, not "already exists", to a principal without CREATE, so
  the stream also holds CREATE on the names it declares (they exist already: ``tipsync topics
  create`` made them). Its consumer groups are under ``tip.internal.``.
- ``sink``: reads reconciled topics, writes ``tip.dlq.sink``, commits as group ``tip.sink``.
- ``monitor`` (``tipsync lag``, ``monitor``; ``freshness`` reads only PostgreSQL): describes
  the root's topics (end offsets) and groups (members, committed offsets).
- ``steward`` (``tipsync review decide``): reads the stewards' decisions topic (the
  decisions in force, so a decision that contradicts them is refused before it is published;
  assigned, never a group) and writes it, and may create that one topic (``review decide``
  makes it, compacted and kept forever, when a deployment has none yet; the same
  CREATE-or-refused answer as the stream's).
- ``operator`` (``tipsync dlq``): reads the dead-letter topics, and writes each stage's input
  (agency topics, the resolve topic, reconciled topics) to replay a dead letter there; it
  reads with assigned partitions and no consumer group, so it needs no group right.
- an agency: writes and describes its own ``tip.agency.<id>.`` prefix, reads its own feed
  ``tip.outbound.<id>`` with groups under ``tip.outbound.<id>.``; nothing else.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal, cast

from deploy.stack.principals import (
    MONITOR,
    OPERATOR,
    SINK,
    STEWARD,
    STREAM,
    agency_principal,
)
from schemas.client_config import ClientConfig
from schemas.topics import TopicNames

Resource = Literal["TOPIC", "GROUP"]
Pattern = Literal["LITERAL", "PREFIXED"]
Operation = Literal["READ", "WRITE", "CREATE", "DESCRIBE"]


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: ``principal`` may do ``operation`` on the resource ``name`` (a whole
    name, or every name starting with it when ``pattern`` is PREFIXED), from any host."""

    principal: str
    resource: Resource
    pattern: Pattern
    name: str
    operation: Operation

    def __str__(self) -> str:
        shape = f"{self.name}*" if self.pattern == "PREFIXED" else self.name
        return f"{self.operation} {self.resource.lower()} {shape}"


def _grants(principal: str, resource: Resource, pattern: Pattern, names: Iterable[str],
            operations: Iterable[Operation]) -> list[Grant]:
    return [Grant(principal, resource, pattern, name, operation)
            for name in names for operation in operations]


def service_grants(names: TopicNames, agency_ids: Iterable[str]) -> list[Grant]:
    """What ``stream``, ``sink``, ``monitor`` and ``steward`` may do under ``names``' root
    (``admin`` is a super user and needs none), the stream reading the topics of
    ``agency_ids`` (the registered agencies)."""
    agency_prefix = f"{names.root}.agency."
    reconciled_prefix = f"{names.root}.reconciled."
    dlq_prefix = f"{names.root}.dlq."
    outbound_prefix = f"{names.root}.outbound."
    internal = names.internal_prefix
    decisions = names.stewardship_decisions
    grants = [
        *(grant for agency_id in sorted(set(agency_ids))
          for grant in stream_agency_grants(agency_id, names)),
        *_grants(STREAM, "TOPIC", "LITERAL", [decisions], ["READ", "DESCRIBE", "CREATE"]),
        *_grants(STREAM, "TOPIC", "PREFIXED", [internal],
                 ["READ", "WRITE", "DESCRIBE", "CREATE"]),
        *_grants(STREAM, "TOPIC", "PREFIXED", [reconciled_prefix, dlq_prefix, outbound_prefix],
                 ["WRITE", "DESCRIBE", "CREATE"]),
        *_grants(STREAM, "GROUP", "PREFIXED", [internal], ["READ"]),
        *_grants(SINK, "TOPIC", "PREFIXED", [reconciled_prefix], ["READ", "DESCRIBE"]),
        *_grants(SINK, "TOPIC", "LITERAL", [names.dlq("sink")], ["WRITE", "DESCRIBE"]),
        *_grants(SINK, "GROUP", "LITERAL", [names.sink_group], ["READ"]),
        *_grants(MONITOR, "TOPIC", "PREFIXED", [f"{names.root}."], ["DESCRIBE"]),
        *_grants(MONITOR, "GROUP", "PREFIXED", [f"{names.root}."], ["DESCRIBE"]),
        *_grants(STEWARD, "TOPIC", "LITERAL", [decisions],
                 ["READ", "WRITE", "DESCRIBE", "CREATE"]),
        *_grants(OPERATOR, "TOPIC", "PREFIXED", [dlq_prefix], ["READ", "DESCRIBE"]),
        *_grants(OPERATOR, "TOPIC", "PREFIXED", [agency_prefix, reconciled_prefix],
                 ["WRITE", "DESCRIBE"]),
        *_grants(OPERATOR, "TOPIC", "LITERAL", [names.resolve], ["WRITE", "DESCRIBE"]),
    ]
    return grants


def stream_agency_grants(agency_id: str, names: TopicNames) -> list[Grant]:
    """The stream's right to read one agency's topics (ingest's input): its prefix only."""
    return _grants(STREAM, "TOPIC", "PREFIXED", [names.agency_prefix(agency_id)],
                   ["READ", "DESCRIBE"])


def is_stream_agency_grant(grant: Grant, agency_id: str) -> bool:
    """Whether ``grant`` is the stream's read of ``agency_id``'s topics, under any topic root
    (revoking an agency enrolled under several roots removes them all)."""
    return (grant.principal == STREAM and grant.resource == "TOPIC"
            and grant.pattern == "PREFIXED" and grant.name.endswith(f".agency.{agency_id}.")
            and grant.operation in ("READ", "DESCRIBE"))


def legacy_stream_grants(names: TopicNames) -> list[Grant]:
    """The stream's read of every agency prefix (``tip.agency.``) that stacks before
    session 5 granted; ``stack up`` deletes it."""
    return _grants(STREAM, "TOPIC", "PREFIXED", [f"{names.root}.agency."], ["READ", "DESCRIBE"])


def agency_grants(agency_id: str, names: TopicNames) -> list[Grant]:
    """An agency's grants: write and describe its own prefix, read its own feed."""
    principal = agency_principal(agency_id)
    return [
        *_grants(principal, "TOPIC", "PREFIXED", [names.agency_prefix(agency_id)],
                 ["WRITE", "DESCRIBE"]),
        *_grants(principal, "TOPIC", "LITERAL", [names.outbound(agency_id)],
                 ["READ", "DESCRIBE"]),
        *_grants(principal, "GROUP", "PREFIXED", [names.outbound_group_prefix(agency_id)],
                 ["READ"]),
    ]


# ---------------------------------------------------------------------------------------------
# Applying the plan through the admin API (confluent-kafka's AdminClient, as ``admin``).


class AclError(RuntimeError):
    """The broker refused to change credentials or ACLs; the message says which and why."""


def _binding(grant: Grant):  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return AclBinding(
        ResourceType[grant.resource], grant.name, ResourcePatternType[grant.pattern],
        f"User:{grant.principal}", "*", AclOperation[grant.operation], AclPermissionType.ALLOW,
    )


def wait_all(futures: Mapping[Any, Future[Any]], what: str) -> None:
    failures = []
    for key, future in futures.items():
        try:
            future.result()
        except Exception as error:  # noqa: BLE001 - KafkaException carries Kafka's reason
            failures.append(f"{key}: {error}")
    if failures:
        raise AclError(f"Kafka refused to {what}: " + "; ".join(map(str, failures)))


def _filter(grant: Grant):  # type: ignore[no-untyped-def]
    """The filter matching exactly ``grant``'s ACL (delete_acls takes filters)."""
    from confluent_kafka.admin import AclBindingFilter

    binding = _binding(grant)
    return AclBindingFilter(
        binding.restype, binding.name, binding.resource_pattern_type, binding.principal,
        binding.host, binding.operation, binding.permission_type,
    )


class KafkaAccess:
    """SCRAM credentials and ACLs on the broker, changed as ``admin``."""

    def __init__(self, admin_client: ClientConfig, timeout: float = 30.0) -> None:
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient(admin_client.librdkafka())
        self.timeout = timeout

    def set_password(self, principal: str, secret: str) -> None:
        """Create or replace ``principal``'s SCRAM-SHA-512 credential."""
        from confluent_kafka.admin import (
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        upsert = UserScramCredentialUpsertion(
            principal, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
            secret.encode("utf-8"),
        )
        futures = self.admin.alter_user_scram_credentials(
            [upsert], request_timeout=self.timeout
        )
        wait_all(futures, f"set the SCRAM credential of {principal}")

    def has_password(self, principal: str) -> bool:
        from confluent_kafka.admin import ScramMechanism

        try:
            described = self.admin.describe_user_scram_credentials(
                [principal], request_timeout=self.timeout
            )
            description = cast(dict[str, Future[Any]], described)[principal].result()
        except Exception:  # noqa: BLE001 - RESOURCE_NOT_FOUND: no credential yet
            return False
        return any(info.mechanism == ScramMechanism.SCRAM_SHA_512
                   for info in description.scram_credential_infos)

    def disable_password(self, principal: str) -> bool:
        """Replace ``principal``'s SCRAM-SHA-512 credential with one made from a random
        secret that is never kept, so nobody can log in as it; False when it had none.

        Not a deletion: on Kafka 4.1.2 a restarted broker refused **every** SCRAM login once
        the metadata log held the deletion (RemoveUserScramCredentialRecord) of an enrolled
        agency's credential (reproduced on a fresh local stack: enroll, revoke, restart;
        docs/SECURITY.md, Re-authentication and the admin's credential). A replaced
        credential refuses the old secret the same way, at once for new connections and at
        the next re-authentication for open ones."""
        if not self.has_password(principal):
            return False
        self.set_password(principal, secrets.token_urlsafe(32))
        return True

    def delete_password(self, principal: str) -> bool:
        """Remove ``principal``'s SCRAM-SHA-512 credential; False when it had none."""
        from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion

        if not self.has_password(principal):
            return False
        futures = self.admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion(principal, ScramMechanism.SCRAM_SHA_512)],
            request_timeout=self.timeout,
        )
        wait_all(futures, f"delete the SCRAM credential of {principal}")
        return True

    def grants(self, principal: str | None = None) -> list[Grant]:
        """The ALLOW ACLs on the broker (of one principal, or all), as grants."""
        from confluent_kafka.admin import (
            AclBindingFilter,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
            ResourceType,
        )

        query = AclBindingFilter(  # None: any name, principal, host
            ResourceType.ANY, None, ResourcePatternType.ANY,  # type: ignore[arg-type]
            f"User:{principal}" if principal else None, None,  # type: ignore[arg-type]
            AclOperation.ANY, AclPermissionType.ALLOW,
        )
        try:
            bindings = self.admin.describe_acls(query, request_timeout=self.timeout).result()
        except Exception as error:  # noqa: BLE001
            raise AclError(f"Kafka refused to list ACLs: {error}") from None
        found = []
        for binding in bindings:
            resource = binding.restype.name
            if resource not in ("TOPIC", "GROUP") or binding.operation.name not in (
                "READ", "WRITE", "CREATE", "DESCRIBE"
            ):
                continue
            found.append(Grant(
                binding.principal.removeprefix("User:"), resource,  # type: ignore[arg-type]
                binding.resource_pattern_type.name, binding.name,  # type: ignore[arg-type]
                binding.operation.name,  # type: ignore[arg-type]
            ))
        return sorted(found)

    def grant(self, grants: Iterable[Grant]) -> int:
        """Create the grants not on the broker yet; returns how many were created."""
        wanted = sorted(set(grants))
        present = set(self.grants())
        missing = [grant for grant in wanted if grant not in present]
        if missing:
            futures = self.admin.create_acls(
                [_binding(grant) for grant in missing], request_timeout=self.timeout
            )
            wait_all(futures, "create ACLs")
        return len(missing)

    def revoke(self, grants: Iterable[Grant]) -> int:
        """Delete those of ``grants`` that are on the broker; returns how many were."""
        present = set(self.grants())
        found = sorted(grant for grant in set(grants) if grant in present)
        if found:
            futures = self.admin.delete_acls(
                [_filter(grant) for grant in found], request_timeout=self.timeout
            )
            wait_all(futures, "delete ACLs")
        return len(found)

    def revoke_all(self, principal: str) -> int:
        """Delete every ACL of ``principal``; returns how many there were."""
        from confluent_kafka.admin import (
            AclBindingFilter,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
            ResourceType,
        )

        present = self.grants(principal)
        if not present:
            return 0
        query = AclBindingFilter(  # None: any name, any host
            ResourceType.ANY, None, ResourcePatternType.ANY,  # type: ignore[arg-type]
            f"User:{principal}", None, AclOperation.ANY, AclPermissionType.ANY,  # type: ignore[arg-type]
        )
        futures = self.admin.delete_acls([query], request_timeout=self.timeout)
        wait_all(futures, f"delete the ACLs of {principal}")
        return len(present)


def by_principal(grants: Iterable[Grant]) -> Iterator[tuple[str, list[Grant]]]:
    """Grants grouped by principal, principals sorted."""
    table: dict[str, list[Grant]] = {}
    for grant in sorted(grants):
        table.setdefault(grant.principal, []).append(grant)
    yield from sorted(table.items())


"""Enrolling agencies: one principal per agency, its credentials, its ACLs, its file.

``enroll`` gives an agency of ``deploy/agencies.yaml`` a SCRAM credential on the broker, the
ACLs of ``deploy.stack.acls.agency_grants`` (write its own ``tip.agency.<id>.`` prefix, read
its own feed), the registry's reader role, and a client properties file (mode 0600) in the
state folder and, when asked, at a path to hand to the agency's IT officer with the CA beside
it. It also lets the stream read the agency's topics (``stream_agency_grants``: ingest's
input). Enrolling again keeps the secret already issued (so copies in use keep working) and
adds what is missing, e.g. the grants under another topic root. ``rotate`` replaces the
secret: new credential, new registry digest, new file; the old file is refused on its next
connection (SCRAM keeps one credential per user and mechanism: no overlap). ``revoke``
removes all of it; the agency's next connection is refused. The stream keeps reading a
revoked agency's topics while the agency registry still lists it (ingest reads every
registered agency's topics and must drain what was published before the revocation); once
the registry no longer lists it, ``revoke`` removes that too. ``listing`` reads the broker's
ACLs back.

The admin does all of it, with the admin's file (``Settings.client``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy.stack import registry_users
from deploy.stack.acls import (
    Grant,
    KafkaAccess,
    agency_grants,
    agency_principal,
    by_principal,
    is_stream_agency_grant,
    stream_agency_grants,
)
from deploy.stack.clients import hand_over, secret_of, write_client_file
from deploy.stack.layout import StateLayout
from deploy.stack.principals import (
    STREAM,
    agency_secret,
    forget_agency_secret,
    renew_agency_secret,
    service_secrets,
)
from deploy.stack.stack import LocalStack
from deploy.stack.tls import ensure_tls
from schemas import config
from schemas.agencies import UnknownAgencyError, load_agencies, validate_agency_id
from schemas.config import Settings
from schemas.topics import TopicNames


@dataclass(frozen=True)
class Enrolment:
    agency_id: str
    principal: str
    file: Path
    handed_over: Path | None
    new_secret: bool
    grants_added: int


@dataclass(frozen=True)
class Revocation:
    agency_id: str
    principal: str
    credential_removed: bool
    grants_removed: int
    registry_user_removed: bool
    file_removed: bool
    stream_grants_removed: int
    still_registered: bool


@dataclass(frozen=True)
class Rotation:
    agency_id: str
    principal: str
    file: Path
    handed_over: Path | None
    registry_restart_seconds: float | None


class NotEnrolledError(ValueError):
    """Rotation asked for an agency that holds no credential on the broker."""

    def __init__(self, agency_id: str) -> None:
        super().__init__(
            f"agency '{agency_id}' is not enrolled (the broker holds no credential for"
            f" {agency_principal(agency_id)}), so there is no secret to rotate; run"
            f" `tipsync agency enroll {agency_id}` to give it one"
        )


def registered_agency(agency_id: str) -> str:
    """``agency_id`` when the agency registry lists it; UnknownAgencyError otherwise."""
    agencies = load_agencies()
    if validate_agency_id(agency_id) not in agencies:
        raise UnknownAgencyError(agency_id, agencies)
    return agency_id


def enroll(
    settings: Settings, agency_id: str, names: TopicNames, out: Path | None = None
) -> Enrolment:
    registered_agency(agency_id)
    layout = StateLayout.of(settings)
    principal = agency_principal(agency_id)
    local = config.local_agency_file(layout.home, agency_id)
    kept = secret_of(local)
    # the secret `stack up` prepared, which the registry already knows (no restart needed)
    secret = kept or agency_secret(layout, agency_id)
    access = KafkaAccess(settings.client)
    if kept is None or not access.has_password(principal):
        access.set_password(principal, secret)
    added = access.grant([*agency_grants(agency_id, names),
                          *stream_agency_grants(agency_id, names)])
    stored = registry_users.entries(layout).get(principal, {}).get("digest")
    if stored != registry_users.digest(principal, secret):
        # an agency added to the registry after the registry started, or an older file
        registry_users.grant(layout, principal, secret, "reader")
    # the registry reads its users only when it starts: restart it if it started before
    # this agency's grant (a secret prepared after its start, a re-enrolment after revoke)
    LocalStack(settings).registry.reload_if_stale()
    tls = ensure_tls(layout.secrets)
    write_client_file(local, settings, principal, secret, tls)
    handed = None
    if out is not None:
        hand_over(out, settings, principal, secret, tls)
        handed = out.expanduser().resolve()
    return Enrolment(agency_id, principal, local, handed, kept is None, added)


def rotate(settings: Settings, agency_id: str, out: Path | None = None) -> Rotation:
    """Give an enrolled agency a new secret (SCRAM credential and registry password) and a
    new client properties file; from then on the old file is refused."""
    registered_agency(agency_id)
    layout = StateLayout.of(settings)
    principal = agency_principal(agency_id)
    access = KafkaAccess(settings.client)
    # a revoked agency keeps an unusable credential and has no ACLs left
    if not access.has_password(principal) or not access.grants(principal):
        raise NotEnrolledError(agency_id)
    secret = renew_agency_secret(layout, agency_id)
    # replaces the one SCRAM-SHA-512 credential the user has: the old secret stops here
    access.set_password(principal, secret)
    restart = LocalStack(settings).registry.reload_if_stale()
    tls = ensure_tls(layout.secrets)
    local = config.local_agency_file(layout.home, agency_id)
    write_client_file(local, settings, principal, secret, tls)
    handed = None
    if out is not None:
        hand_over(out, settings, principal, secret, tls)
        handed = out.expanduser().resolve()
    return Rotation(agency_id, principal, local, handed, restart)


def revoke(settings: Settings, agency_id: str) -> Revocation:
    """Remove the agency's credential, ACLs, registry user and local file. An id no longer in
    the registry can still be revoked (it may have been removed from it first)."""
    validate_agency_id(agency_id)
    layout = StateLayout.of(settings)
    principal = agency_principal(agency_id)
    access = KafkaAccess(settings.client)
    # replaced by an unknown one, not deleted (KafkaAccess.disable_password says why)
    credential = access.disable_password(principal)
    grants = access.revoke_all(principal)
    still_registered = agency_id in load_agencies()
    stream_removed = 0
    if not still_registered:
        stream_removed = access.revoke(
            grant for grant in access.grants(STREAM) if is_stream_agency_grant(grant, agency_id)
        )
    registry_user = registry_users.revoke(layout, principal)
    forget_agency_secret(layout, agency_id)
    if registry_user:
        # the registry reads its users only when it starts: restart it so they go now
        LocalStack(settings).registry.reload_if_stale()
    local = config.local_agency_file(layout.home, agency_id)
    existed = local.is_file()
    local.unlink(missing_ok=True)
    return Revocation(agency_id, principal, credential, grants, registry_user, existed,
                      stream_removed, still_registered)


def listing(settings: Settings) -> dict[str, dict[str, object]]:
    """Principal -> what it may do: its Kafka grants (from the broker), its registry role,
    and whether it is the super user."""
    layout = StateLayout.of(settings)
    table: dict[str, dict[str, object]] = {}
    roles = registry_users.list_users(layout)
    grants: dict[str, list[Grant]] = dict(by_principal(KafkaAccess(settings.client).grants()))
    for principal in sorted({*grants, *roles, *service_secrets(layout)}):
        table[principal] = {
            "super_user": principal == config.DEFAULT_PRINCIPAL,
            "kafka": [str(grant) for grant in grants.get(principal, [])],
            "registry": roles.get(principal),
        }
    return table

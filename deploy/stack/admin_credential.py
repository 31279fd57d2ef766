"""The admin's SCRAM credential on the local broker, kept equal to ``principals.json``.

Why this exists (``tipsync stack rotate admin`` once left a stack whose Kafka refused the
admin for good). The admin's secret lives in three places: ``secrets/principals.json`` (the
one the stack trusts), Kafka's configuration (the controller listener's PLAIN user and the
inter-broker SCRAM login, written from ``principals.json`` at every start) and the cluster's
metadata log (its SCRAM-SHA-512 credential, which ``kafka-storage format --add-scram`` writes
once, at format, and only the admin API changes afterwards). Rotation writes the new secret
to ``principals.json`` first and then asks the broker, as the admin, to change the
credential. When that second step does not happen (the process stopped in between; the
broker's answer timed out on a loaded machine and a second ``rotate`` then wrote yet another
secret while the admin's file still held the first) ``principals.json`` and the metadata log
disagree for good: every later ``stack up`` writes the admin's client file and Kafka's
configuration from ``principals.json``, the broker refuses that admin, ``up`` cannot set the
services' credentials or ACLs, and ``down``/``up`` changes nothing, because nothing ever
writes the metadata log's admin credential again. Only ``stack reset`` (a new format) did.

The repair: ``principals.renew_service_secret`` keeps the admin's replaced secrets
(``secrets/admin-previous.json``, 0600, the last few) until the broker is known to hold the
new one. When a started Kafka refuses the admin's file, ``repair_admin_credential`` logs in
with each replaced secret in turn and, with the one the broker still holds, sets the admin's
credential to ``principals.json``'s (the admin may change its own), then forgets them.

(Kafka's controller listener, where the admin authenticates with PLAIN against Kafka's
configuration rather than the metadata log, would have been the other way in; Kafka 4.1's
Admin client refuses AlterUserScramCredentials there: "This Admin API is not yet supported
when communicating directly with the controller quorum".)
"""

from __future__ import annotations

import logging
from dataclasses import replace

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from deploy.stack.acls import KafkaAccess
from deploy.stack.layout import StackError, StateLayout
from deploy.stack.principals import (
    ADMIN,
    forget_previous_admin_secrets,
    previous_admin_secrets,
    previous_store_path,
    service_secrets,
)
from schemas.client_config import SASL_PASSWORD_KEY, ClientConfig


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("tipsync.stack.admin_probe")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger


def admin_refused(client: ClientConfig, timeout: float = 5.0) -> bool:
    """Whether the broker answers but refuses ``client``'s SASL authentication (librdkafka
    reports the refusal as an error event, served by ``poll``)."""
    refusals: list[KafkaError] = []
    admin = AdminClient(client.librdkafka({
        "logger": _quiet_logger(),
        "error_cb": lambda error: refusals.append(error)
        if error.code() == KafkaError._AUTHENTICATION else None,
    }))
    try:
        admin.list_topics(timeout=timeout)
        return False
    except Exception:  # noqa: BLE001 - not answering at all is not a refusal
        admin.poll(0.5)
        return bool(refusals)


def repair_admin_credential(layout: StateLayout, client: ClientConfig) -> None:
    """Set the broker's admin credential to ``principals.json``'s secret, logged in as the
    admin with a replaced secret the broker still holds (``client``: the admin's file, whose
    password is tried with each); StackError when none is accepted."""
    secret = service_secrets(layout)[ADMIN]
    for previous in reversed(previous_admin_secrets(layout)):
        older = replace(client, properties=tuple(
            (key, previous if key == SASL_PASSWORD_KEY else value)
            for key, value in client.properties))
        if admin_refused(older):
            continue
        KafkaAccess(older).set_password(ADMIN, secret)
        forget_previous_admin_secrets(layout)
        return
    raise StackError(
        "the local Kafka refuses the admin's file, and none of the admin's replaced secrets"
        f" ({previous_store_path(layout)}) is accepted either: the broker's admin credential"
        " is one this stack no longer knows. Back up the state folder and run `tipsync stack"
        " reset --yes` to start afresh (docs/SECURITY.md, Re-authentication and the admin's"
        " credential)"
    )

"""Rotating a service principal's secret on the local stack (``tipsync stack rotate``).

A service's one secret is its SCRAM password and its registry password. Rotating makes a new
one (``principals.renew_service_secret``), sets the broker's SCRAM-SHA-512 credential to it
(replacing the old: SCRAM keeps one credential per user and mechanism, so there is no
overlap), restarts the local registry so its realm holds the new digest, and rewrites the
service's client file (``secrets/clients/<principal>.properties``).

A running service read its file when it started: its open connections stay authenticated
until the broker asks them to authenticate again (``connections.max.reauth.ms``,
``config.KAFKA_REAUTH_MS``), and any new connection it opens with the old secret is
refused. So restart the service right after rotating (docs/SECURITY.md).

The admin's secret also sits in Kafka's own configuration (the controller listener's PLAIN
user and the inter-broker SCRAM login, ``deploy.stack.kafka``), written at every start: its
rotation sets the credential through the admin API, then restarts the local Kafka (which
writes its configuration anew from ``principals.json``) and the registry. The admin's
replaced secret is kept until the broker holds the new one: a rotation stopped between
``principals.json`` and the broker is repaired by the next start
(``deploy.stack.admin_credential``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy.stack.acls import KafkaAccess
from deploy.stack.clients import write_client_file
from deploy.stack.layout import StackError
from deploy.stack.principals import ADMIN, forget_previous_admin_secrets, renew_service_secret
from deploy.stack.stack import LocalStack
from deploy.stack.tls import ensure_tls
from schemas import config
from schemas.config import Settings


@dataclass(frozen=True)
class ServiceRotation:
    principal: str
    file: Path
    kafka_restarted: bool
    registry_restart_seconds: float | None


def rotate_service(settings: Settings, principal: str) -> ServiceRotation:
    """A new secret for ``principal`` (a service of ``principals.SERVICE_PRINCIPALS``) on the
    local stack's broker and registry, and its file rewritten. ValueError for a name that is
    not a service; StackError when the stack's Kafka is not local or not up."""
    stack = LocalStack(settings)
    if not stack.kafka.local:
        raise StackError(
            f"the broker at {settings.kafka_bootstrap} is not this machine's local stack;"
            " rotate the secret with the deployment's own tooling (docs/SECURITY.md)"
        )
    if not stack.kafka.is_up():
        raise StackError(
            f"the local Kafka at {settings.kafka_bootstrap} does not answer; run `tipsync"
            " stack up` first (the new secret must reach the broker)"
        )
    # connected (as admin, with the secret of today) before the secret changes
    access = KafkaAccess(stack.kafka.admin_client())
    secret = renew_service_secret(stack.layout, principal)
    access.set_password(principal, secret)
    if principal == ADMIN:
        forget_previous_admin_secrets(stack.layout)  # the broker holds the new one
    tls = ensure_tls(stack.layout.secrets)
    path = config.local_client_file(stack.layout.home, principal)
    write_client_file(path, settings, principal, secret, tls)
    restarted = False
    # its connections, made with the old secret, would fail noisily after Kafka's restart
    del access
    if principal == ADMIN:
        # Kafka's configuration holds the admin's secret (controller listener, inter-broker
        # login): written anew from principals.json when Kafka starts
        stack.kafka.stop()
        stack.kafka.start()
        stack.kafka.wait()
        restarted = True
    return ServiceRotation(principal, path, restarted, stack.registry.reload_if_stale())

"""The platform tipsync runs on, on Kubernetes, made from the same facts as the local stack.

``deploy.operations.manifests`` writes these resources and tipsync's own
(``manifests_tipsync``) as files. Nothing here holds a secret:
the KafkaUsers name their passwords in Secrets that ``manifests_secrets`` makes from the state
folder's generated secrets (``deploy.stack.principals``), never written into these files.

- Kafka: Strimzi (``kafka.strimzi.io/v1``, Strimzi 1.0.1, the last release that runs Kafka
  4.1.2, the local stack's version): a KRaft cluster of three controllers and three brokers
  (``KafkaNodePool``), TLS listeners with SCRAM-SHA-512 (in the cluster, and a load
  balancer for the agencies), the simple authorizer with
  ``admin`` its only super user, the broker settings of the local stack
  (``deploy.stack.kafka``) with replication factor 3 and ``min.insync.replicas`` 2. The
  cluster CA is the deployment's own (``deploy.stack.tls``, given to Strimzi as a custom CA),
  so one ``ca.pem`` verifies Kafka, the registry and PostgreSQL, as on the local stack.
- Topics: one ``KafkaTopic`` per entry of ``schemas.topics.topic_plan``.
- Users: one ``KafkaUser`` per service principal and per agency of the registry, with the
  ACLs of ``deploy.stack.acls`` (the one plan ``stack up`` and ``agency enroll`` apply), as
  Strimzi's ``acls`` (prefixed ones as ``patternType: prefix``).
- The registry: Apicurio 3.3.3 with the local stack's settings (``deploy.stack.registry``):
  HTTPS only, basic authentication against a realm Secret, role-based authorization.
- PostgreSQL: a CloudNativePG ``Cluster`` of three instances, TLS with the deployment's
  certificate, SCRAM for every connection, the local stack's roles, pgaudit's settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deploy.stack.acls import Grant, agency_grants, service_grants
from deploy.stack.layout import KAFKA_VERSION, REGISTRY_VERSION
from deploy.stack.postgres import ANALYST_ROLE, APP_ROLE, REGISTRY_ROLE
from deploy.stack.principals import (
    ADMIN,
    SERVICE_PRINCIPALS,
    agency_principal,
)
from deploy.stack.read_audit import SERVER_LOG_SETTINGS
from deploy.stack.registry import security_environment
from schemas.config import (
    TopicSettings,
)
from schemas.topics import TopicNames, TopicSpec, topic_plan
from sinks.roles import SINK_ROLE

Document = dict[str, Any]

STRIMZI_VERSION = "1.0.1"
CNPG_VERSION = "1.27.1"
POSTGRES_IMAGE = "ghcr.io/cloudnative-pg/postgresql:15"
REGISTRY_IMAGE = f"quay.io/apicurio/apicurio-registry:{REGISTRY_VERSION}"
KAFKA_CLUSTER = "tipsync"
DATABASE_CLUSTER = "tipsync-db"
REGISTRY_NAME = "tipsync-registry"
KAFKA_TLS_PORT = 9093
KAFKA_EXTERNAL_PORT = 9094
REGISTRY_PORT = 8443
CONSOLE_PORT = 18090
# Kafka's service names and PostgreSQL's read-write service: what the clients connect to.
KAFKA_BOOTSTRAP_SERVICE = f"{KAFKA_CLUSTER}-kafka-bootstrap"
DATABASE_SERVICE = f"{DATABASE_CLUSTER}-rw"
# Secrets the manifests name; ``manifests_secrets`` makes them (never committed).
SERVER_TLS_SECRET = "tipsync-server-tls"  # kubernetes.io/tls: the deployment's server cert
CA_SECRET = "tipsync-ca"  # ca.crt only: what every client trusts
REALM_SECRET = "tipsync-registry-realm"
CLIENTS_SECRET = "tipsync-clients"  # <principal>.properties, pgpass: the services' files
IMAGE = "tipsync:latest"


@dataclass(frozen=True)
class Deployment:
    """The facts a deployment is made of: the namespace, the topics' root, the agencies."""

    namespace: str = "tipsync"
    names: TopicNames = TopicNames()
    agency_ids: tuple[str, ...] = ()
    topics: TopicSettings = TopicSettings(replication_factor=3)
    image: str = IMAGE

    def service_names(self) -> list[str]:
        """Every DNS name the deployment's server certificate must carry."""
        found = []
        for service in (KAFKA_BOOTSTRAP_SERVICE, REGISTRY_NAME, DATABASE_SERVICE,
                        f"{DATABASE_CLUSTER}-r", f"{DATABASE_CLUSTER}-ro", "tipsync-console"):
            found += [service, f"{service}.{self.namespace}",
                      f"{service}.{self.namespace}.svc",
                      f"{service}.{self.namespace}.svc.cluster.local"]
        # Strimzi signs its brokers' certificates itself, with the cluster CA we give it.
        return found

    @property
    def kafka_bootstrap(self) -> str:
        return f"{KAFKA_BOOTSTRAP_SERVICE}.{self.namespace}.svc:{KAFKA_TLS_PORT}"

    @property
    def registry_url(self) -> str:
        return f"https://{REGISTRY_NAME}.{self.namespace}.svc:{REGISTRY_PORT}/apis/ccompat/v7"

    @property
    def database_host(self) -> str:
        return f"{DATABASE_SERVICE}.{self.namespace}.svc"


def metadata(deployment: Deployment, name: str, **labels: str) -> Document:
    found: Document = {"name": name, "namespace": deployment.namespace}
    if labels:
        found["labels"] = dict(labels)
    return found


# --------------------------------------------------------------------------------- Kafka

# The local stack's broker settings that hold on a cluster too (deploy.stack.kafka); Strimzi
# sets listeners, TLS, SASL, the authorizer and storage itself from the resource's fields.
BROKER_CONFIG: Mapping[str, str | int | bool] = {
    "auto.create.topics.enable": False,
    "num.partitions": 6,
    "default.replication.factor": 3,
    "min.insync.replicas": 2,
    "offsets.topic.replication.factor": 3,
    "transaction.state.log.replication.factor": 3,
    "transaction.state.log.min.isr": 2,
    "share.coordinator.state.topic.replication.factor": 3,
    "share.coordinator.state.topic.min.isr": 2,
    "log.cleaner.enable": True,
    "log.retention.hours": 168,
    "allow.everyone.if.no.acl.found": False,
}


def _node_pool(deployment: Deployment, name: str, role: str, size: str,
               memory: str) -> Document:
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaNodePool",
        "metadata": metadata(deployment, name, **{"strimzi.io/cluster": KAFKA_CLUSTER}),
        "spec": {
            "replicas": 3,
            "roles": [role],
            "storage": {"type": "jbod", "volumes": [
                {"id": 0, "type": "persistent-claim", "size": size, "deleteClaim": False,
                 "kraftMetadata": "shared"},
            ]},
            "resources": {"requests": {"cpu": "500m", "memory": memory},
                          "limits": {"memory": memory}},
        },
    }


def kafka(deployment: Deployment) -> list[Document]:
    """The KRaft cluster: controllers, brokers, and the Kafka resource that ties them."""
    cluster = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "Kafka",
        "metadata": metadata(deployment, KAFKA_CLUSTER),
        "spec": {
            "kafka": {
                "version": KAFKA_VERSION,
                # Inside the cluster (the services) and outside it (the agencies' producers,
                # through a load balancer): both TLS with SCRAM-SHA-512, as on the local stack.
                "listeners": [
                    {"name": "tls", "port": KAFKA_TLS_PORT, "type": "internal", "tls": True,
                     "authentication": {"type": "scram-sha-512"}},
                    {"name": "external", "port": KAFKA_EXTERNAL_PORT, "type": "loadbalancer",
                     "tls": True, "authentication": {"type": "scram-sha-512"}},
                ],
                "authorization": {"type": "simple", "superUsers": [ADMIN]},
                "config": dict(BROKER_CONFIG),
                "rack": {"topologyKey": "topology.kubernetes.io/zone"},
            },
            # The deployment's own CA (``tipsync deploy kubernetes --secrets``): Strimzi
            # signs the brokers' certificates with it instead of making a CA of its own.
            "clusterCa": {"generateCertificateAuthority": False},
            "entityOperator": {"topicOperator": {}, "userOperator": {}},
        },
    }
    return [
        _node_pool(deployment, "controllers", "controller", "20Gi", "2Gi"),
        _node_pool(deployment, "brokers", "broker", "200Gi", "8Gi"),
        cluster,
    ]


def resource_name(topic: str) -> str:
    """A topic's Kubernetes name: lower case, '_' as '-' (a DNS subdomain); ``topicName``
    keeps the real one."""
    return topic.lower().replace("_", "-")


def topic(deployment: Deployment, spec: TopicSpec) -> Document:
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": metadata(deployment, resource_name(spec.name),
                              **{"strimzi.io/cluster": KAFKA_CLUSTER}),
        "spec": {
            "topicName": spec.name,
            "partitions": spec.partitions,
            "replicas": spec.replication_factor,
            "config": dict(spec.config),
        },
    }


def topics(deployment: Deployment) -> list[Document]:
    plan = topic_plan(deployment.agency_ids, deployment.topics, names=deployment.names)
    return [topic(deployment, spec) for spec in plan]


def strimzi_acls(grants: Iterable[Grant]) -> list[Document]:
    """Grants as Strimzi's ``acls``: one entry per resource with its operations (Strimzi
    names them ``Read``, ``Write``... and prefixed patterns ``prefix``)."""
    by_resource: dict[tuple[str, str, str], list[str]] = {}
    for grant in sorted(grants):
        key = (grant.resource, grant.pattern, grant.name)
        by_resource.setdefault(key, []).append(grant.operation.capitalize())
    return [
        {
            "resource": {"type": resource.lower(), "name": name,
                         "patternType": "prefix" if pattern == "PREFIXED" else "literal"},
            "operations": operations,
            "host": "*",
        }
        for (resource, pattern, name), operations in by_resource.items()
    ]


def password_secret(principal: str) -> str:
    """The Secret holding a principal's SCRAM password (key ``password``)."""
    return f"tipsync-kafka-{principal}"


def kafka_user(deployment: Deployment, principal: str, grants: list[Grant]) -> Document:
    spec: Document = {
        "authentication": {
            "type": "scram-sha-512",
            "password": {"valueFrom": {"secretKeyRef": {
                "name": password_secret(principal), "key": "password",
            }}},
        },
    }
    if grants:  # admin is a super user: no ACLs
        spec["authorization"] = {"type": "simple", "acls": strimzi_acls(grants)}
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": metadata(deployment, principal, **{"strimzi.io/cluster": KAFKA_CLUSTER}),
        "spec": spec,
    }


def users(deployment: Deployment) -> list[Document]:
    """One KafkaUser per service principal and per agency, with the ACL plan's grants."""
    services = service_grants(deployment.names, deployment.agency_ids)
    found = [
        kafka_user(deployment, principal,
                   [grant for grant in services if grant.principal == principal])
        for principal in SERVICE_PRINCIPALS
    ]
    found += [
        kafka_user(deployment, agency_principal(agency_id),
                   agency_grants(agency_id, deployment.names))
        for agency_id in sorted(deployment.agency_ids)
    ]
    return found


# ------------------------------------------------------------------------------ registry


def registry(deployment: Deployment) -> list[Document]:
    """Apicurio with the local stack's security settings (deploy.stack.registry): HTTPS only,
    basic authentication against the realm Secret, Apicurio's roles from the identity."""
    labels = {"app.kubernetes.io/name": REGISTRY_NAME}
    env = {
        # the realm's digests and the datasource password, one Quarkus properties file
        **security_environment(REGISTRY_PORT, "/etc/tipsync/tls/tls.crt",
                               "/etc/tipsync/tls/tls.key", "/etc/tipsync/realm/realm.properties"),
        "QUARKUS_OTEL_SDK_DISABLED": "true",
        "APICURIO_STORAGE_KIND": "sql",
        "APICURIO_STORAGE_SQL_KIND": "postgresql",
        "APICURIO_DATASOURCE_URL": (
            f"jdbc:postgresql://{deployment.database_host}:5432/apicurio"
            "?sslmode=verify-full&sslrootcert=/etc/tipsync/tls/ca.crt"
        ),
        "APICURIO_DATASOURCE_USERNAME": REGISTRY_ROLE,
    }
    container = {
        "name": "registry",
        "image": REGISTRY_IMAGE,
        "ports": [{"name": "https", "containerPort": REGISTRY_PORT}],
        "env": [{"name": key, "value": value} for key, value in env.items()],
        "volumeMounts": [
            {"name": "tls", "mountPath": "/etc/tipsync/tls", "readOnly": True},
            {"name": "realm", "mountPath": "/etc/tipsync/realm", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        # Quarkus' health endpoints, on the management port (the registry port + 1).
        "readinessProbe": {
            "httpGet": {"path": "/health/ready", "port": REGISTRY_PORT + 1, "scheme": "HTTPS"},
            "initialDelaySeconds": 20, "periodSeconds": 10,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health/live", "port": REGISTRY_PORT + 1, "scheme": "HTTPS"},
            "initialDelaySeconds": 60, "periodSeconds": 20,
        },
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                      "limits": {"memory": "1Gi"}},
        "securityContext": restricted(),
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(deployment, REGISTRY_NAME, **labels),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"runAsNonRoot": True},
                        "containers": [container],
                        "volumes": [
                            {"name": "tls", "secret": {"secretName": SERVER_TLS_SECRET,
                                                       "defaultMode": 0o400}},
                            {"name": "realm", "secret": {"secretName": REALM_SECRET,
                                                         "defaultMode": 0o400}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
        _service(deployment, REGISTRY_NAME, labels, REGISTRY_PORT),
    ]


def _service(deployment: Deployment, name: str, labels: dict[str, str],
             port: int) -> Document:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(deployment, name, **labels),
        "spec": {"selector": labels, "ports": [{"name": "https", "port": port,
                                                "targetPort": port}]},
    }


def restricted() -> Document:
    """The container security context of the ``restricted`` Pod Security Standard."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# ---------------------------------------------------------------------------- PostgreSQL


def audit_parameters() -> dict[str, str]:
    """The read audit's server settings (deploy.stack.read_audit) that CloudNativePG lets a
    cluster set: pgaudit's, and never an erroring statement's text in the log (it manages
    the log's destination and files itself)."""
    found = {}
    for line in SERVER_LOG_SETTINGS.splitlines():
        name, _, value = line.partition(" = ")
        if name.startswith("pgaudit.") or name == "log_min_error_statement":
            found[name] = value.strip("'")
    return found


def database(deployment: Deployment) -> list[Document]:
    """CloudNativePG: three instances, TLS with the deployment's certificate, SCRAM only, the
    local stack's roles (deploy.stack.postgres) with passwords from Secrets."""
    managed = [
        {"name": APP_ROLE, "ensure": "present", "login": True, "createdb": False,
         "passwordSecret": {"name": f"tipsync-db-{APP_ROLE}"}},
        {"name": SINK_ROLE, "ensure": "present", "login": True,
         "passwordSecret": {"name": f"tipsync-db-{SINK_ROLE}"}},
        {"name": REGISTRY_ROLE, "ensure": "present", "login": True,
         "passwordSecret": {"name": f"tipsync-db-{REGISTRY_ROLE}"}},
        {"name": ANALYST_ROLE, "ensure": "present", "login": False},
        {"name": "tipsync_auditor", "ensure": "present", "login": False},
    ]
    return [{
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": metadata(deployment, DATABASE_CLUSTER),
        "spec": {
            "instances": 3,
            "imageName": POSTGRES_IMAGE,
            "enableSuperuserAccess": False,
            "storage": {"size": "100Gi"},
            "resources": {"requests": {"cpu": "1", "memory": "4Gi"},
                          "limits": {"memory": "4Gi"}},
            "certificates": {"serverTLSSecret": SERVER_TLS_SECRET, "serverCASecret": CA_SECRET},
            "postgresql": {
                "parameters": {"ssl_min_protocol_version": "TLSv1.2",
                               "password_encryption": "scram-sha-256",
                               "track_commit_timestamp": "on",
                               "max_connections": "200",
                               # CloudNativePG loads pgaudit when it sees its settings
                               **audit_parameters()},
                # TLS and a SCRAM password for every connection from the network.
                "pg_hba": ["hostssl all all all scram-sha-256",
                           "host all all all reject"],
            },
            "bootstrap": {"initdb": {
                "database": "tipsync", "owner": APP_ROLE,
                "secret": {"name": f"tipsync-db-{APP_ROLE}"},
                "postInitApplicationSQL": ["CREATE EXTENSION IF NOT EXISTS pg_trgm"],
            }},
            "managed": {"roles": managed},
        },
    }, {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Database",
        "metadata": metadata(deployment, "apicurio"),
        "spec": {"name": "apicurio", "owner": REGISTRY_ROLE,
                 "cluster": {"name": DATABASE_CLUSTER}},
    }]

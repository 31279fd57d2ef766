"""tipsync's own Deployments on Kubernetes: one per role, the image of deploy/image/.

Each role runs one ``tipsync`` command as its principal, with only that principal's client
properties file, the store's password file and the CA mounted from a Secret (no secret in a
variable or an argument), the ``restricted`` security context, resource requests and probes.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploy.operations.manifests_cluster import (
    CLIENTS_SECRET,
    CONSOLE_PORT,
    Deployment,
    Document,
    metadata,
    restricted,
)
from deploy.stack.postgres import APP_ROLE
from deploy.stack.principals import ADMIN, MONITOR, SINK, STREAM
from schemas import config
from schemas.config import (
    DEFAULT_OPERATIONS_METRICS_PORT,
    DEFAULT_SINK_METRICS_PORT,
    DEFAULT_STREAM_METRICS_PORT,
)


@dataclass(frozen=True)
class Role:
    """One tipsync process kind: its command, principal and metrics port (0: none)."""

    name: str
    principal: str
    command: tuple[str, ...]
    metrics_port: int
    replicas: int = 1
    cpu: str = "250m"
    memory: str = "512Mi"


ROLES: tuple[Role, ...] = (
    Role("stream", STREAM, ("stream",), DEFAULT_STREAM_METRICS_PORT, memory="2Gi", cpu="1"),
    Role("sink", SINK, ("sink",), DEFAULT_SINK_METRICS_PORT),
    Role("monitor", MONITOR, ("monitor",), DEFAULT_OPERATIONS_METRICS_PORT),
    Role("console", MONITOR, ("console", "--host", "0.0.0.0", "--port", str(CONSOLE_PORT)),
         0),
)


def _environment(deployment: Deployment, role: Role) -> list[Document]:
    """Where each setting comes from: the principal's file (Secret), the store's URL naming
    the passfile of the same Secret; never a secret in a variable."""
    client = f"/etc/tipsync/clients/{role.principal}.properties"
    database_url = (
        f"postgresql://{APP_ROLE}@{deployment.database_host}:5432/tipsync"
        "?passfile=/etc/tipsync/clients/pgpass&sslmode=verify-full"
        "&sslrootcert=/etc/tipsync/clients/ca.pem"
    )
    env = {
        config.CLIENT_CONFIG: client,
        config.DATABASE_URL: database_url,
        config.HOME: "/var/lib/tipsync",
    }
    if role.metrics_port:  # Prometheus scrapes the pod's address, not its loopback
        env[config.METRICS_ADDRESS] = "0.0.0.0"
    return [{"name": key, "value": value} for key, value in env.items()]


def _probes(role: Role) -> Document:
    """Alive and ready while the process answers on its metrics endpoint (asked from inside
    the container, so it holds whatever address the endpoint is bound to)."""
    if not role.metrics_port:
        check: Document = {"tcpSocket": {"port": CONSOLE_PORT}}
    else:
        check = {"exec": {"command": [
            "python", "-c",
            "import sys, urllib.request; urllib.request.urlopen("
            f"'http://127.0.0.1:{role.metrics_port}/metrics', timeout=5); sys.exit(0)",
        ]}}
    return {
        "readinessProbe": {**check, "initialDelaySeconds": 10, "periodSeconds": 15,
                           "timeoutSeconds": 10},
        "livenessProbe": {**check, "initialDelaySeconds": 60, "periodSeconds": 30,
                          "timeoutSeconds": 10, "failureThreshold": 4},
    }


def tipsync_deployment(deployment: Deployment, role: Role) -> Document:
    labels = {"app.kubernetes.io/name": f"tipsync-{role.name}",
              "app.kubernetes.io/part-of": "tipsync"}
    container: Document = {
        "name": role.name,
        "image": deployment.image,
        "args": [*role.command],
        "env": _environment(deployment, role),
        "volumeMounts": [
            {"name": "clients", "mountPath": "/etc/tipsync/clients", "readOnly": True},
            {"name": "state", "mountPath": "/var/lib/tipsync"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "resources": {"requests": {"cpu": role.cpu, "memory": role.memory},
                      "limits": {"memory": role.memory}},
        "securityContext": restricted(),
        **_probes(role),
    }
    if role.metrics_port:
        container["ports"] = [{"name": "metrics", "containerPort": role.metrics_port}]
    else:
        container["ports"] = [{"name": "https", "containerPort": CONSOLE_PORT}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(deployment, f"tipsync-{role.name}", **labels),
        "spec": {
            "replicas": role.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "fsGroup": 10001},
                    "containers": [container],
                    "volumes": [
                        # Only the principal's own file, the passfile and the CA.
                        {"name": "clients", "secret": {
                            "secretName": CLIENTS_SECRET, "defaultMode": 0o400,
                            "items": [
                                {"key": f"{role.principal}.properties",
                                 "path": f"{role.principal}.properties"},
                                {"key": "pgpass", "path": "pgpass"},
                                {"key": "ca.pem", "path": "ca.pem"},
                            ],
                        }},
                        # faust's tables are rebuilt from their changelogs after a restart.
                        {"name": "state", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def tipsync(deployment: Deployment) -> list[Document]:
    return [setup_job(deployment), *(tipsync_deployment(deployment, role) for role in ROLES)]




def setup_job(deployment: Deployment) -> Document:
    """Once, as admin: the store's migrations and the Avro contract in the registry (the
    topics and users are Strimzi's resources). Re-running it is harmless: both are
    idempotent."""
    role = Role("setup", ADMIN, (), 0)
    pod = tipsync_deployment(deployment, role)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for probe in ("readinessProbe", "livenessProbe", "ports"):
        container.pop(probe)
    container["command"] = ["/bin/sh", "-c"]
    container["args"] = ["tipsync db migrate && tipsync schemas register"]
    pod["restartPolicy"] = "OnFailure"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(deployment, "tipsync-setup"),
        "spec": {"backoffLimit": 10, "template": {"spec": pod}},
    }

"""tipsync's Kubernetes manifests: the files ``tipsync deploy kubernetes`` writes.

deploy/kubernetes/ holds them as made for topic root ``tip`` and deploy/agencies.yaml (a test
keeps it in step). What is in them, and why, is told by ``manifests_cluster`` (Kafka with
Strimzi, the topics, one KafkaUser per service and per agency, the registry, PostgreSQL with
CloudNativePG) and ``manifests_tipsync`` (tipsync's Deployments). None holds a secret: the
Secrets they name come from ``manifests_secrets``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from deploy.operations.manifests_cluster import (
    Deployment,
    Document,
    database,
    kafka,
    registry,
    topics,
    users,
)
from deploy.operations.manifests_tipsync import tipsync


def namespace(deployment: Deployment) -> list[Document]:
    return [{
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": deployment.namespace, "labels": {
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/warn": "restricted",
        }},
    }]


FILES: dict[str, Callable[[Deployment], list[Document]]] = {
    "00-namespace.yaml": namespace,
    "10-kafka.yaml": kafka,
    "20-topics.yaml": topics,
    "30-users.yaml": users,
    "40-database.yaml": database,
    "50-registry.yaml": registry,
    "60-tipsync.yaml": tipsync,
}

HEADER = (
    "# Made by `tipsync deploy kubernetes` from deploy/agencies.yaml, schemas/topics.py and\n"
    "# deploy/stack/acls.py: change those and run it again, never edit this file.\n"
)


def render(documents: Iterable[Document]) -> str:
    return HEADER + "".join(
        "---\n" + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
        for document in documents
    )


def manifests(deployment: Deployment) -> dict[str, str]:
    """File name -> YAML text of every manifest."""
    return {name: render(make(deployment)) for name, make in FILES.items()}


def write_manifests(deployment: Deployment, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in manifests(deployment).items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written

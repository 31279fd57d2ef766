"""kubeconform, strict and offline, accepts the Kubernetes manifests and refuses a broken one.

The first run installs kubeconform from the Go module proxy and CloudNativePG's CRDs from its
Go module into the cache (deploy/operations/manifests_schemas.py); later runs use the cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.operations.manifests import write_manifests
from deploy.operations.manifests_cluster import Deployment
from deploy.operations.manifests_schemas import crd_schemas, validate
from schemas.agencies import load_agencies
from schemas.config import load_settings


@pytest.fixture(scope="module")
def cache() -> Path:
    return load_settings().cache


def test_kubeconform_accepts_every_generated_manifest(tmp_path: Path, cache: Path) -> None:
    write_manifests(Deployment(agency_ids=tuple(load_agencies())), tmp_path)
    result = validate(tmp_path, cache)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in result.stdout
    kinds = ("Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster", "Deployment")
    assert all(f"kind: {kind}\n" in "".join(p.read_text() for p in tmp_path.glob("*.yaml"))
               for kind in kinds)


def test_kubeconform_refuses_an_unknown_field_and_a_bad_acl_operation(
    tmp_path: Path, cache: Path
) -> None:
    write_manifests(Deployment(agency_ids=("customs",)), tmp_path)
    users = tmp_path / "30-users.yaml"
    users.write_text(users.read_text().replace("      - Write\n", "      - Wrte\n", 1))
    tipsync = tmp_path / "60-tipsync.yaml"
    tipsync.write_text(tipsync.read_text().replace("  replicas: 1\n", "  replica: 1\n", 1))
    result = validate(tmp_path, cache)
    assert result.returncode == 1
    assert "value must be one of" in result.stdout
    assert "additional properties 'replica' not allowed" in result.stdout


def test_a_crds_objects_are_closed_unless_it_keeps_unknown_fields() -> None:
    crd = {
        "kind": "CustomResourceDefinition",
        "spec": {"group": "example.org", "names": {"kind": "Thing"}, "versions": [{
            "name": "v1", "served": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                           "properties": {"phase": {"type": "string"}}},
            }}},
        }, {"name": "v0", "served": False, "schema": {"openAPIV3Schema": {}}}]},
    }
    schemas = crd_schemas([crd])
    assert list(schemas) == ["example.org/thing_v1.json"]
    schema = schemas["example.org/thing_v1.json"]
    assert schema["properties"]["spec"]["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["status"]

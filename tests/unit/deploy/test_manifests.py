"""The Kubernetes manifests are made from the topic plan, the ACL plan and the agency
registry, hold no secret, and deploy/kubernetes/ is what the command makes today."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.cli import main
from deploy.operations.manifests import manifests
from deploy.operations.manifests_cluster import Deployment, password_secret
from deploy.operations.manifests_secrets import kubernetes_secrets
from deploy.stack.acls import Grant, agency_grants, service_grants
from deploy.stack.layout import StateLayout
from deploy.stack.principals import SERVICE_PRINCIPALS, agency_principal, service_secrets
from schemas.agencies import load_agencies
from schemas.client_config import parse_properties
from schemas.config import TopicSettings, load_settings
from schemas.topics import TopicNames, topic_plan

COMMITTED = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes"
AGENCIES = tuple(sorted(load_agencies()))


def documents(deployment: Deployment) -> list[dict]:
    return [document for text in manifests(deployment).values()
            for document in yaml.safe_load_all(text) if document]


def of_kind(found: list[dict], kind: str) -> list[dict]:
    return [document for document in found if document["kind"] == kind]


def grants_of(user: dict) -> set[Grant]:
    """A KafkaUser's ACLs read back as the plan's grants."""
    principal = user["metadata"]["name"]
    found = set()
    for acl in user["spec"].get("authorization", {}).get("acls", []):
        resource = acl["resource"]
        pattern = "PREFIXED" if resource["patternType"] == "prefix" else "LITERAL"
        for operation in acl["operations"]:
            found.add(Grant(principal, resource["type"].upper(), pattern, resource["name"],
                            operation.upper()))
    return found


def test_deploy_kubernetes_is_what_the_command_makes_now(tmp_path: Path) -> None:
    assert main(["deploy", "kubernetes", "--out", str(tmp_path)]) == 0
    made = sorted(path.name for path in tmp_path.glob("*.yaml"))
    assert made == sorted(path.name for path in COMMITTED.glob("*.yaml"))
    for name in made:
        assert (COMMITTED / name).read_text() == (tmp_path / name).read_text(), (
            f"deploy/kubernetes/{name} is stale: run `tipsync deploy kubernetes --out"
            " deploy/kubernetes`"
        )


def test_one_kafka_user_per_agency_and_service_with_the_acl_plans_grants() -> None:
    names = TopicNames("t9")
    users = of_kind(documents(Deployment(names=names, agency_ids=AGENCIES)), "KafkaUser")
    by_name = {user["metadata"]["name"]: user for user in users}
    assert set(by_name) == {*SERVICE_PRINCIPALS, *(agency_principal(a) for a in AGENCIES)}
    for agency_id in AGENCIES:
        user = by_name[agency_principal(agency_id)]
        assert grants_of(user) == set(agency_grants(agency_id, names))
        prefixes = [acl for acl in user["spec"]["authorization"]["acls"]
                    if acl["resource"]["patternType"] == "prefix"]
        assert {acl["resource"]["name"] for acl in prefixes} == {
            names.agency_prefix(agency_id), names.outbound_group_prefix(agency_id)
        }
    plan = service_grants(names, AGENCIES)
    for principal in SERVICE_PRINCIPALS:
        assert grants_of(by_name[principal]) == {g for g in plan if g.principal == principal}
    assert "authorization" not in by_name["admin"]["spec"]  # the super user
    for user in users:
        reference = user["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": password_secret(user["metadata"]["name"]),
                             "key": "password"}


def test_topics_are_the_topic_plan_with_its_configuration() -> None:
    sizing = TopicSettings(replication_factor=3)
    found = of_kind(documents(Deployment(agency_ids=AGENCIES, topics=sizing)), "KafkaTopic")
    plan = topic_plan(AGENCIES, sizing)
    assert [topic["spec"]["topicName"] for topic in found] == [spec.name for spec in plan]
    for topic, spec in zip(found, plan, strict=True):
        assert topic["spec"]["config"] == spec.config
        assert topic["spec"]["replicas"] == 3
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "tipsync"


def test_the_cluster_is_kraft_replicated_and_refuses_what_no_acl_allows() -> None:
    found = documents(Deployment())
    pools = of_kind(found, "KafkaNodePool")
    assert sorted(pool["spec"]["roles"][0] for pool in pools) == ["broker", "controller"]
    assert all(pool["spec"]["replicas"] == 3 for pool in pools)
    (kafka,) = of_kind(found, "Kafka")
    spec = kafka["spec"]["kafka"]
    assert {listener["name"] for listener in spec["listeners"]} == {"tls", "external"}
    assert {listener["authentication"]["type"] for listener in spec["listeners"]} == {
        "scram-sha-512"
    }
    assert all(listener["tls"] for listener in spec["listeners"])
    assert spec["authorization"] == {"type": "simple", "superUsers": ["admin"]}
    assert spec["config"]["allow.everyone.if.no.acl.found"] is False
    assert spec["config"]["min.insync.replicas"] == 2


def test_every_workload_has_probes_requests_and_runs_unprivileged() -> None:
    deployments = of_kind(documents(Deployment()), "Deployment")
    assert {d["metadata"]["name"] for d in deployments} >= {
        "tipsync-stream", "tipsync-sink", "tipsync-monitor", "tipsync-console",
        "tipsync-registry",
    }
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            name = f"{deployment['metadata']['name']}/{container['name']}"
            assert container["readinessProbe"] and container["livenessProbe"], name
            assert container["resources"]["requests"]["cpu"], name
            assert container["resources"]["requests"]["memory"], name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_no_manifest_holds_a_secret() -> None:
    found = documents(Deployment(agency_ids=AGENCIES))
    assert not of_kind(found, "Secret")
    text = "\n".join(manifests(Deployment(agency_ids=AGENCIES)).values())
    # "password:" only opens a KafkaUser's secretKeyRef block, never carries a value
    assert all(line.strip() == "password:" for line in text.splitlines()
               if "password:" in line.lower())
    for deployment in of_kind(found, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                assert "valueFrom" not in variable and "PASSWORD" not in variable["name"]
                if variable["value"].startswith("postgresql://"):
                    assert urlsplit(variable["value"]).password is None
                    assert "passfile=" in variable["value"]


def test_the_secrets_come_from_the_state_folder_and_are_written_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TIPSYNC_HOME", str(home))
    settings = load_settings()
    deployment = Deployment(agency_ids=AGENCIES[:2])
    secrets = {secret["metadata"]["name"]: secret for secret in
               kubernetes_secrets(settings, deployment)}
    stored = service_secrets(StateLayout.of(settings))

    def value(name: str, key: str) -> str:
        return base64.b64decode(secrets[name]["data"][key]).decode()

    assert value(password_secret("stream"), "password") == stored["stream"]
    for agency_id in AGENCIES[:2]:
        assert password_secret(agency_principal(agency_id)) in secrets
    clients = parse_properties(value("tipsync-clients", "sink.properties"))
    assert clients["sasl.password"] == stored["sink"]
    assert clients["bootstrap.servers"] == "tipsync-kafka-bootstrap.tipsync.svc:9093"
    realm = value("tipsync-registry-realm", "realm.properties")
    assert stored["admin"] not in realm and "apicurio.datasource.password=" in realm
    assert secrets["tipsync-cluster-ca-cert"]["metadata"]["labels"]["strimzi.io/cluster"] == (
        "tipsync"
    )
    out = tmp_path / "secrets"
    assert main(["deploy", "kubernetes", "--out", str(tmp_path / "m"), "--secrets",
                 str(out)]) == 0
    assert stat.S_IMODE((out / "secrets.yaml").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700

"""``tipsync deploy kubernetes | compose``: the artefacts of a deployment beyond one machine.

    tipsync deploy kubernetes --out deploy/kubernetes [--secrets DIR] [--namespace NS]
    tipsync deploy compose [--advertise HOST:PORT]
    tipsync deploy grant
    tipsync deploy agency-file ID --out FILE

``kubernetes`` writes the manifests (no secret in them) and, with ``--secrets``, the Secrets
they name, from the state folder's generated secrets, into a 0600 file to apply once.
``compose`` writes the files deploy/compose.yaml mounts into the state folder's ``compose/``;
``grant``, once that Kafka runs, gives the service principals their credentials and ACLs.

Exit codes: 0 done; 1 the broker refused (grant); 2 bad input (an agency registry that
cannot be read, an --advertise that is not HOST:PORT).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.cli.options import add_topic_root
from deploy.operations.enrolment import registered_agency
from deploy.operations.manifests import write_manifests
from deploy.operations.manifests_cluster import Deployment
from deploy.operations.manifests_compose import (
    ComposeDeployment,
    compose_folder,
    write_compose_files,
)
from deploy.operations.manifests_secrets import write_kubernetes_secrets
from deploy.stack.acls import AclError
from deploy.stack.clients import hand_over
from deploy.stack.layout import StateLayout
from deploy.stack.principals import agency_principal, agency_secret
from deploy.stack.stack import LocalStack
from deploy.stack.tls import ensure_tls
from schemas import config
from schemas.agencies import (
    AgencyRegistryError,
    InvalidAgencyIdError,
    UnknownAgencyError,
    load_agencies,
)
from schemas.config import DEFAULT_KAFKA_PORT, TopicSettings, load_settings
from schemas.topics import TopicNames


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    deploy = subparsers.add_parser(
        "deploy", help="write a deployment's artefacts: Kubernetes manifests, compose files"
    )
    targets = deploy.add_subparsers(dest="deploy_target", metavar="TARGET", required=True)
    kubernetes = targets.add_parser(
        "kubernetes",
        help="Strimzi, CloudNativePG, Apicurio and tipsync manifests (docs/DEPLOYMENT.md)",
        description="Writes the manifests made from deploy/agencies.yaml (one KafkaUser per"
        " agency), the topic plan and the ACL plan. They hold no secret; --secrets writes the"
        " Secrets they name, from the state folder, into DIR/secrets.yaml (mode 0600).",
    )
    kubernetes.add_argument("--out", type=Path, required=True, metavar="DIR",
                            help="folder for the manifests (deploy/kubernetes in the checkout)")
    kubernetes.add_argument("--namespace", default=Deployment.namespace,
                            help=f"Kubernetes namespace (default {Deployment.namespace})")
    kubernetes.add_argument("--image", default=Deployment.image,
                            help=f"the tipsync image (default {Deployment.image})")
    kubernetes.add_argument("--replication-factor", type=int, default=3,
                            help="replicas of every topic (default 3)")
    kubernetes.add_argument("--secrets", type=Path, default=None, metavar="DIR",
                            help="also write the Secrets here (never into the checkout)")
    kubernetes.add_argument("--agencies", type=Path, default=None, metavar="FILE",
                            help=f"the agency registry (default: {config.AGENCIES} or"
                            " deploy/agencies.yaml)")
    add_topic_root(kubernetes)
    kubernetes.set_defaults(func=_kubernetes)

    compose = targets.add_parser(
        "compose", help="the configuration and secrets deploy/compose.yaml mounts",
        description=f"Writes <{config.HOME}>/compose/: Kafka's, the registry's and PostgreSQL's"
        " configuration with their secrets, and the services' client files (0600).",
    )
    compose.add_argument(
        "--advertise", default=f"127.0.0.1:{DEFAULT_KAFKA_PORT}", metavar="HOST:PORT",
        help="where clients outside the compose network reach Kafka: this machine's name"
        f" and the published port (default 127.0.0.1:{DEFAULT_KAFKA_PORT})",
    )
    compose.set_defaults(func=_compose)

    grant = targets.add_parser(
        "grant", help="give the service principals their SCRAM credentials and ACLs",
        description="As admin (the state folder's admin file): set each"
        " service principal's SCRAM credential to its secret in the state folder and create"
        " the ACLs of the plan (deploy/stack/acls.py), as `stack up` does on the local broker."
        " Run it once the compose Kafka is up.",
    )
    grant.set_defaults(func=_grant)

    agency_file = targets.add_parser(
        "agency-file", help="an agency's client properties file for a Kubernetes deployment",
        description="Writes the agency's file (mode 0600) with the CA beside it, as `agency"
        " enroll --out` does, for the deployment whose KafkaUser and realm carry the same"
        " secret (Strimzi creates the credential and ACLs). The addresses are the ones the"
        f" agencies reach: {config.KAFKA_BOOTSTRAP} (the external listener) and"
        f" {config.REGISTRY_URL}.",
    )
    agency_file.add_argument("agency_id", metavar="ID", help="an id of the agency registry")
    agency_file.add_argument("--out", type=Path, required=True, metavar="FILE")
    agency_file.set_defaults(func=_agency_file)


def _kubernetes(args: argparse.Namespace) -> int:
    try:
        agencies = load_agencies(args.agencies)
    except AgencyRegistryError as error:
        print(f"tipsync deploy kubernetes: {error}", file=sys.stderr)
        return 2
    sizing = TopicSettings.from_environment()
    deployment = Deployment(
        namespace=args.namespace, names=TopicNames(args.topic_root),
        agency_ids=tuple(sorted(agencies)), image=args.image,
        topics=TopicSettings(sizing.partitions, args.replication_factor,
                             sizing.agency_retention_ms, sizing.dlq_retention_ms),
    )
    for path in write_manifests(deployment, args.out):
        print(f"wrote {path}")
    if args.secrets is not None:
        path = write_kubernetes_secrets(load_settings(), deployment, args.secrets)
        print(f"wrote {path} (mode 0600): `kubectl apply -f {path}`, then delete it")
    return 0


def _compose(args: argparse.Namespace) -> int:
    host, _, port = args.advertise.rpartition(":")
    if not host or not port.isdigit():
        print(f"tipsync deploy compose: --advertise {args.advertise} is not HOST:PORT"
              f" (e.g. kafka.example.org:{DEFAULT_KAFKA_PORT})", file=sys.stderr)
        return 2
    settings = load_settings()
    todo = write_compose_files(settings, ComposeDeployment(host, int(port)))
    print(f"wrote {compose_folder(settings)} (files 0600)")
    for step in todo:
        print(f"then give each folder to its container's user: {step}")
    return 0


def _grant(args: argparse.Namespace) -> int:
    try:
        LocalStack(load_settings()).grant_services()
    except AclError as error:
        print(f"tipsync deploy grant: {error}", file=sys.stderr)
        return 1
    print("the service principals have their SCRAM credentials and ACLs")
    return 0


def _agency_file(args: argparse.Namespace) -> int:
    try:
        agency_id = registered_agency(args.agency_id)
    except (AgencyRegistryError, InvalidAgencyIdError, UnknownAgencyError) as error:
        print(f"tipsync deploy agency-file: {error}", file=sys.stderr)
        return 2
    settings = load_settings()
    layout = StateLayout.of(settings)
    ca = hand_over(args.out, settings, agency_principal(agency_id),
                   agency_secret(layout, agency_id), ensure_tls(layout.secrets))
    print(f"wrote {args.out} (mode 0600) and {ca}: hand both to {agency_id}'s IT officer")
    return 0

"""``tipsync stack up [--brokers N] | down | status [--json] | rotate PRINCIPAL | reset --yes``."""

from __future__ import annotations

import argparse
import json
import sys

from deploy.operations.rotation import rotate_service
from deploy.stack.acls import AclError
from deploy.stack.at_rest import check_folder
from deploy.stack.kafka import NODE_COUNTS
from deploy.stack.layout import StackError
from deploy.stack.stack import LocalStack
from schemas.config import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    stack = subparsers.add_parser(
        "stack", help="start, stop and inspect the local Kafka + registry + PostgreSQL stack"
    )
    actions = stack.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start the stack (downloads on first use); no-op when up")
    up.add_argument(
        "--brokers", type=int, choices=NODE_COUNTS, default=None,
        help="Kafka nodes (each a broker and a controller): 1, or 3 for a cluster that survives"
             " losing one (topics with 3 replicas, min.insync.replicas=2). Set on a stack whose"
             " Kafka has no data yet, then remembered (default: the stack's count, 1 when new)",
    )
    up.set_defaults(func=stack_up)
    actions.add_parser("down", help="stop the processes `up` started").set_defaults(
        func=stack_down
    )
    status = actions.add_parser("status", help="which services answer")
    status.add_argument("--json", action="store_true", help="print JSON for machines")
    status.set_defaults(func=stack_status)
    rotate = actions.add_parser(
        "rotate", help="give a service principal a new secret (broker, registry, its file)",
        description="Replaces the service's SCRAM credential and registry password with a new"
        " secret and rewrites secrets/clients/PRINCIPAL.properties. Restart the service"
        " afterwards: it read its old file when it started, and its next connection with it"
        " is refused. Rotating admin restarts the local Kafka and registry.",
    )
    rotate.add_argument("principal", metavar="PRINCIPAL",
                        help="admin, stream, sink, monitor or steward")
    rotate.add_argument(
        "--yes", action="store_true",
        help="confirm rotating admin: Kafka and the registry restart (docs/SECURITY.md)",
    )
    rotate.set_defaults(func=stack_rotate)
    reset = actions.add_parser("reset", help="stop and delete all state (keeps downloads)")
    reset.add_argument("--yes", action="store_true", help="confirm: all local data is deleted")
    reset.set_defaults(func=stack_reset)


def _fail(error: StackError) -> int:
    print(f"tipsync stack: {error}", file=sys.stderr)
    return 1


def stack_up(args: argparse.Namespace) -> int:
    try:
        stack = LocalStack(load_settings(), brokers=args.brokers)
        report = stack.up()
    except StackError as error:
        return _fail(error)
    if report.started:
        print(f"started {', '.join(report.started)} in {report.seconds:.1f}s")
    if report.already_up:
        print(f"already up: {', '.join(report.already_up)}")
    if report.external:
        print(f"external (not managed here): {', '.join(report.external)}")
    print(f"stack up in {report.seconds:.1f}s; state in {stack.layout.home}")
    if stack.kafka.brokers > 1:
        print(f"kafka: {stack.kafka.brokers} nodes, "
              + ", ".join(node.address for node in stack.kafka.nodes))
    for warning in (check_folder(stack.layout.home).warning(), stack.bootstrap_note()):
        if warning:
            print(f"tipsync stack: note: {warning}", file=sys.stderr)
    return 0


def stack_down(args: argparse.Namespace) -> int:
    stack = LocalStack(load_settings())
    try:
        stopped = stack.down()
    except StackError as error:
        return _fail(error)
    print(f"stopped {', '.join(stopped)}" if stopped else "nothing of ours was running")
    return 0


def stack_status(args: argparse.Namespace) -> int:
    status = LocalStack(load_settings()).status()
    if args.json:
        print(json.dumps(status))
    else:
        for name, fields in status.items():
            address = next(iter(fields.values()))
            state = "up" if fields["up"] else fields["state"].upper()
            managed = "" if fields["managed"] else " (external)"
            print(f"{name:<9} {state:<8} {address}{managed}")
            if fields["problem"]:
                print(f"{'':<9} {fields['problem']}")
            for node in fields.get("nodes", []):
                print(_node_line(node))
        at_rest = check_folder(load_settings().home)
        verdict = {True: "encrypted volume", False: "NOT an encrypted volume",
                   None: "encryption unknown"}[at_rest.encrypted]
        print(f"{'state':<9} {verdict}: {at_rest.folder} on {at_rest.where}")
    return 0 if all(fields["up"] for fields in status.values()) else 1


def stack_rotate(args: argparse.Namespace) -> int:
    if args.principal == "admin" and not args.yes:
        print("tipsync stack rotate: rotating admin restarts the local Kafka and registry"
              " (every client reconnects; docs/SECURITY.md); run `tipsync stack rotate admin"
              " --yes` to confirm",
              file=sys.stderr)
        return 2
    try:
        done = rotate_service(load_settings(), args.principal)
    except ValueError as error:
        print(f"tipsync stack rotate: {error}", file=sys.stderr)
        return 2
    except (StackError, AclError) as error:
        print(f"tipsync stack rotate: {error}", file=sys.stderr)
        return 1
    restarted = ["kafka"] * done.kafka_restarted + ["registry"] * (
        done.registry_restart_seconds is not None)
    print(f"rotated the secret of {done.principal}; its new file: {done.file}"
          + (f"; restarted {', '.join(restarted)}" if restarted else ""))
    print(f"restart every running {done.principal} process now: its next connection with the"
          " old secret is refused")
    return 0


def _node_line(node: dict[str, object]) -> str:
    """``  node 2  broker,controller  SASL_SSL://127.0.0.1:19192  up  registered
    active-controller  in sync 40/40`` (replicas of tip.* partitions on the node)."""
    process = "up" if node["process_up"] else "DOWN"
    registered = "registered" if node["registered"] else "unregistered"
    controller = "  active-controller" if node["active_controller"] else ""
    return (f"  node {node['id']:<2} {node['roles']}  {node['listener']}  {process:<4} "
            f"{registered}  in sync {node['in_sync_replicas']}/{node['replicas']}{controller}")


def stack_reset(args: argparse.Namespace) -> int:
    if not args.yes:
        print(
            "tipsync stack reset deletes every topic, schema and table of the local stack; "
            "run `tipsync stack reset --yes` to confirm.",
            file=sys.stderr,
        )
        return 2
    stack = LocalStack(load_settings())
    try:
        stack.reset()
    except StackError as error:
        return _fail(error)
    print(f"reset {stack.layout.home} (downloads kept in {stack.layout.cache})")
    return 0

"""``tipsync agency enroll ID [--out FILE] | rotate ID [--out FILE] | revoke ID | list
[--json]``: who may publish.

    tipsync agency enroll police-ctu --out /media/usb/police-ctu.properties
    tipsync agency rotate police-ctu --out /media/usb/police-ctu.properties
    tipsync agency revoke police-ctu
    tipsync agency list

Exit codes: 0 done; 1 the broker refused (the message says why); 2 bad input (an id not in
the agency registry, an agency not enrolled, a missing client properties file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deploy.cli.options import add_client_config, add_topic_root
from deploy.operations.enrolment import NotEnrolledError, enroll, listing, revoke, rotate
from deploy.stack.acls import AclError
from schemas.agencies import InvalidAgencyIdError, UnknownAgencyError
from schemas.config import load_settings
from schemas.topics import TopicNames


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    agency = subparsers.add_parser(
        "agency", help="enrol and revoke agencies (credentials, ACLs, their properties file)"
    )
    actions = agency.add_subparsers(dest="agency_action", metavar="ACTION", required=True)
    enrol = actions.add_parser(
        "enroll", help="give a registered agency its credentials and ACLs and write its file",
        description="Creates the agency's SCRAM credential and ACLs (write and describe its"
        " own tip.agency.<id>. prefix; read its own tip.outbound.<id> feed; nothing else),"
        " its registry reader role, and its client properties file (mode 0600) in the state"
        " folder. Enrolling again keeps the secret issued before.",
    )
    _add_agency_and_copy(enrol, "an id of deploy/agencies.yaml", "the file")
    add_topic_root(enrol)
    enrol.set_defaults(func=_enroll)
    renew = actions.add_parser(
        "rotate", help="give an enrolled agency a new secret and file; the old file stops working",
        description="Replaces the agency's SCRAM credential and registry password with a new"
        " secret and writes its new client properties file (mode 0600). The old file is"
        " refused from its next connection on: there is no overlap (one SCRAM credential per"
        " user and mechanism), so agree the moment with the agency's IT officer. The local"
        " registry restarts to take the new password.",
    )
    _add_agency_and_copy(renew, "an enrolled agency", "the new file")
    renew.set_defaults(func=_rotate)
    withdraw = actions.add_parser(
        "revoke", help="remove an agency's credentials, ACLs, registry user and file"
    )
    withdraw.add_argument("agency_id", metavar="ID")
    withdraw.set_defaults(func=_revoke)
    show = actions.add_parser("list", help="every principal and what it may do")
    show.add_argument("--json", action="store_true", help="one JSON document")
    show.set_defaults(func=_list)
    for parser in (enrol, renew, withdraw, show):
        add_client_config(parser)


def _add_agency_and_copy(parser: argparse.ArgumentParser, which: str, what: str) -> None:
    parser.add_argument("agency_id", metavar="ID", help=which)
    parser.add_argument(
        "--out", type=Path, default=None, metavar="FILE",
        help=f"also write {what} here (mode 0600), with the CA beside it as tipsync-ca.pem,"
        " for the agency's IT officer",
    )


def _enroll(args: argparse.Namespace) -> int:
    try:
        done = enroll(load_settings(), args.agency_id, TopicNames(args.topic_root), args.out)
    except (UnknownAgencyError, InvalidAgencyIdError) as error:
        print(f"tipsync agency enroll: {error}; enrolment is refused", file=sys.stderr)
        return 2
    except AclError as error:
        print(f"tipsync agency enroll: {error}", file=sys.stderr)
        return 1
    secret = "a new secret" if done.new_secret else "the secret issued before"
    print(f"enrolled {done.agency_id} as principal {done.principal} with {secret};"
          f" {done.grants_added} ACL(s) added; its file: {done.file}")
    if done.handed_over is not None:
        print(f"copy for the agency: {done.handed_over} (with tipsync-ca.pem beside it)")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    try:
        done = rotate(load_settings(), args.agency_id, args.out)
    except (UnknownAgencyError, InvalidAgencyIdError, NotEnrolledError) as error:
        print(f"tipsync agency rotate: {error}", file=sys.stderr)
        return 2
    except AclError as error:
        print(f"tipsync agency rotate: {error}", file=sys.stderr)
        return 1
    print(f"rotated the secret of {done.agency_id} (principal {done.principal}): the old file"
          f" is refused from its next connection; the new file: {done.file}")
    if done.registry_restart_seconds is not None:
        print(f"the registry restarted in {done.registry_restart_seconds:.1f}s to take it")
    if done.handed_over is not None:
        print(f"copy for the agency: {done.handed_over} (with tipsync-ca.pem beside it)")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        done = revoke(load_settings(), args.agency_id)
    except InvalidAgencyIdError as error:
        print(f"tipsync agency revoke: {error}", file=sys.stderr)
        return 2
    except AclError as error:
        print(f"tipsync agency revoke: {error}", file=sys.stderr)
        return 1
    print(f"revoked {done.agency_id} (principal {done.principal}): credential"
          f" {'replaced by an unknown one' if done.credential_removed else 'absent'},"
          f" {done.grants_removed}"
          f" ACL(s) removed, registry user {'removed' if done.registry_user_removed else 'absent'},"
          f" local file {'removed' if done.file_removed else 'absent'}")
    if done.still_registered:
        print(f"the stream still reads {done.agency_id}'s topics: the agency registry lists it"
              " and ingest drains what it published; remove it from the registry, restart"
              " the workers and revoke again to withdraw that too")
    elif done.stream_grants_removed:
        print(f"the stream's read of its topics removed ({done.stream_grants_removed} ACL(s))")
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        table = listing(load_settings())
    except AclError as error:
        print(f"tipsync agency list: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    for principal, rights in table.items():
        registry = rights["registry"] or "none"
        print(f"{principal}  (registry: {registry})")
        if rights["super_user"]:
            print("    super user: everything on the cluster")
        kafka = rights["kafka"]
        assert isinstance(kafka, list)
        for grant in kafka:
            print(f"    {grant}")
        if not kafka and not rights["super_user"]:
            print("    nothing on Kafka")
    return 0

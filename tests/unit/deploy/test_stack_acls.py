"""The ACL plan (deploy/stack/acls.py) and the files the stack issues, without a broker."""

from __future__ import annotations

from pathlib import Path

from deploy.stack.acls import (
    Grant,
    agency_grants,
    agency_principal,
    is_stream_agency_grant,
    legacy_stream_grants,
    service_grants,
    stream_agency_grants,
)
from deploy.stack.clients import java_security_properties, secret_of, write_client_file
from deploy.stack.principals import SERVICE_PRINCIPALS
from deploy.stack.tls import ensure_tls
from schemas.client_config import load_client_config
from schemas.config import load_settings
from schemas.topics import TopicNames


def test_an_agency_may_write_its_prefix_and_read_its_feed_and_nothing_else() -> None:
    grants = {str(grant) for grant in agency_grants("customs", TopicNames())}
    assert grants == {
        "WRITE topic tip.agency.customs.*", "DESCRIBE topic tip.agency.customs.*",
        "READ topic tip.outbound.customs", "DESCRIBE topic tip.outbound.customs",
        "READ group tip.outbound.customs.*",
    }
    assert {grant.principal for grant in agency_grants("customs", TopicNames())} == {
        "agency-customs"
    }


def test_no_agency_principal_can_take_a_services_name() -> None:
    # an agency registered as "stream" would otherwise get the stream's rights
    assert {agency_principal(name) for name in SERVICE_PRINCIPALS}.isdisjoint(
        SERVICE_PRINCIPALS
    )


def test_service_grants_follow_the_topic_root_and_never_reach_the_admin() -> None:
    grants = service_grants(TopicNames("t1"), ["police-ctu", "customs"])
    assert all(grant.name.startswith("t1.") for grant in grants)
    assert "admin" not in {grant.principal for grant in grants}
    by_principal: dict[str, set[str]] = {}
    for grant in grants:
        by_principal.setdefault(grant.principal, set()).add(str(grant))
    assert by_principal["sink"] == {
        "READ topic t1.reconciled.*", "DESCRIBE topic t1.reconciled.*",
        "WRITE topic t1.dlq.sink", "DESCRIBE topic t1.dlq.sink", "READ group t1.sink",
    }
    assert by_principal["steward"] == {
        "READ topic t1.stewardship.decisions", "WRITE topic t1.stewardship.decisions",
        "DESCRIBE topic t1.stewardship.decisions", "CREATE topic t1.stewardship.decisions",
    }
    assert by_principal["monitor"] == {"DESCRIBE topic t1.*", "DESCRIBE group t1.*"}
    stream = by_principal["stream"]
    assert {name for name in stream if ".agency." in name} == {
        "READ topic t1.agency.police-ctu.*", "DESCRIBE topic t1.agency.police-ctu.*",
        "READ topic t1.agency.customs.*", "DESCRIBE topic t1.agency.customs.*",
    }
    assert Grant("stream", "TOPIC", "PREFIXED", "t1.agency.customs.", "READ") in grants


def test_the_stream_reads_registered_agencies_only_never_the_whole_agency_prefix() -> None:
    names = TopicNames("t1")
    grants = service_grants(names, ["police-ctu"])
    assert not set(legacy_stream_grants(names)) & set(grants)
    assert set(stream_agency_grants("police-ctu", names)) <= set(grants)
    assert not any("immigration" in grant.name for grant in grants)
    assert {str(grant) for grant in service_grants(names, [])
            if grant.principal == "stream" and ".agency." in grant.name} == set()


def test_revoking_finds_the_streams_read_of_that_agency_under_every_root() -> None:
    grants = [*stream_agency_grants("customs", TopicNames("t1")),
              *stream_agency_grants("customs", TopicNames()),
              *stream_agency_grants("police-ctu", TopicNames()),
              *agency_grants("customs", TopicNames()),
              *legacy_stream_grants(TopicNames())]
    found = {str(grant) for grant in grants if is_stream_agency_grant(grant, "customs")}
    assert found == {"READ topic t1.agency.customs.*", "DESCRIBE topic t1.agency.customs.*",
                     "READ topic tip.agency.customs.*", "DESCRIBE topic tip.agency.customs.*"}


def test_an_issued_file_is_private_and_reads_back_as_the_principal(tmp_path: Path) -> None:
    settings = load_settings({"TIPSYNC_HOME": str(tmp_path / "home"),
                              "TIPSYNC_KAFKA_BOOTSTRAP": "127.0.0.1:21092"})
    tls = ensure_tls(tmp_path / "home" / "secrets")
    path = tmp_path / "home" / "secrets" / "clients" / "sink.properties"
    write_client_file(path, settings, "sink", "s3cret-value", tls)
    assert path.stat().st_mode & 0o777 == 0o600
    client = load_client_config(path, default_bootstrap="", default_registry_url="",
                                named_by="the test")
    assert (client.bootstrap, client.protocol) == ("127.0.0.1:21092", "SASL_SSL")
    assert dict(client.properties)["sasl.username"] == "sink"
    assert client.registry_user_info == "sink:s3cret-value"
    assert secret_of(path) == "s3cret-value"
    java = java_security_properties(client)
    assert java["sasl.mechanism"] == "SCRAM-SHA-512"
    assert 'username="sink" password="s3cret-value";' in java["sasl.jaas.config"]
    assert java["ssl.truststore.location"] == str(tls.ca)

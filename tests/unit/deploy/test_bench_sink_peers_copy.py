"""The JSON copy the Debezium JDBC sink reads: Kafka Connect's JsonConverter envelope."""

import json
from datetime import UTC, datetime

from deploy.bench.sink_peers import FLAT_FIELDS, flat_copy, flat_key


def test_the_copy_carries_the_scalar_fields_and_the_whole_record() -> None:
    record = {"golden_version": 3, "given_name": "Tamika", "middle_name": None,
              "family_name": "Brown", "date_of_birth": "1990-04-02", "sex": "FEMALE",
              "classification": "SENSITIVE", "sources": [{"agency_id": "police-ctu"}],
              "last_updated": datetime(2026, 1, 1, tzinfo=UTC)}
    copy = json.loads(flat_copy(record))
    assert [field["field"] for field in copy["schema"]["fields"]] == [
        name for name, _kind, _optional in FLAT_FIELDS]
    assert copy["payload"]["golden_version"] == 3
    assert copy["payload"]["given_name"] == "Tamika"
    assert json.loads(copy["payload"]["document"])["sources"] == [{"agency_id": "police-ctu"}]


def test_the_key_is_a_struct_naming_the_golden_id() -> None:
    key = json.loads(flat_key(b"6f1c0f5e-0000-4000-8000-000000000001"))
    assert key["schema"]["type"] == "struct"
    assert key["payload"] == {"person_id": "6f1c0f5e-0000-4000-8000-000000000001"}

"""The KRaft cluster id ``stack up`` formats Kafka's storage with, made the way Kafka's own
``org.apache.kafka.common.Uuid.randomUuid()`` makes one (redraw ids that start with '-' or are
reserved), so StorageTool never reads it as an option."""

from __future__ import annotations

import base64
import random
import re
import uuid
from collections.abc import Iterator

from deploy.stack.kafka import RESERVED_KAFKA_IDS, new_cluster_id

URL_SAFE_22 = re.compile(r"[A-Za-z0-9_-]{22}")


def test_no_id_starts_with_a_dash_over_many_seeded_draws() -> None:
    draws = random.Random(20240517)
    ids = [new_cluster_id(draws.randbytes) for _ in range(20_000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert all(URL_SAFE_22.fullmatch(cluster_id) for cluster_id in ids)
    # The draws would have hit the old bug (about 1 in 64 starts with '-'): the test has teeth.
    naive = random.Random(20240517)
    starts_with_dash = sum(
        base64.urlsafe_b64encode(uuid.UUID(bytes=naive.randbytes(16), version=4).bytes)
        .decode().startswith("-")
        for _ in range(20_000)
    )
    assert starts_with_dash > 100


def test_a_draw_that_encodes_to_a_leading_dash_is_drawn_again() -> None:
    # First byte 0xF8..0xFB: its first six bits are 62, which URL-safe base64 writes as '-'.
    forced = iter([b"\xf8" + bytes(15), b"\xfb" + b"\xff" * 15, b"\x12" * 16])
    calls: list[int] = []

    def draw(size: int) -> bytes:
        calls.append(size)
        return next(forced)

    cluster_id = new_cluster_id(draw)
    assert len(calls) == 3
    assert URL_SAFE_22.fullmatch(cluster_id) and not cluster_id.startswith("-")
    assert base64.urlsafe_b64decode(cluster_id + "==")[:6] == b"\x12" * 6


def test_ids_are_version_4_uuids_never_kafkas_reserved_ones() -> None:
    def zeros() -> Iterator[bytes]:
        while True:
            yield bytes(16)

    source = zeros()
    cluster_id = new_cluster_id(lambda size: next(source))
    raw = base64.urlsafe_b64decode(cluster_id + "==")
    assert raw not in RESERVED_KAFKA_IDS
    assert uuid.UUID(bytes=raw).version == 4
    assert {bytes(16), bytes(15) + b"\x01"} == RESERVED_KAFKA_IDS  # ZERO_UUID, ONE_UUID

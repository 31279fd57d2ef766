"""Synthetic agency exports for benchmarks and tests: invented people, never real ones.

Deterministic for a seed, in the canonical person columns, so the same file can be rebuilt
anywhere. Names are drawn from short lists of common given and family names; TRNs, phones
and passports are random digits.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

import phonenumbers

from producers.canonical import Entity, columns_of
from producers.normalise import PARISHES

GIVEN_NAMES = (
    "Ann", "Marcia", "Kerry-Ann", "Shanice", "Tamara", "Janelle", "Andre", "Devon", "Kemar",
    "Rohan", "Omar", "Damion", "Tashana", "Nadine", "Jermaine", "Sean", "Renee", "Latoya",
)
FAMILY_NAMES = (
    "Brown", "Williams", "Campbell", "Smith", "Johnson", "Thompson", "Clarke", "Reid",
    "Francis", "Gordon", "McKenzie", "Grant", "Stewart", "Morgan", "Henry", "Walker",
)


def _valid_phones(rng: random.Random, count: int) -> list[str]:
    phones: list[str] = []
    while len(phones) < count:
        number = f"876{rng.randint(2_000_000, 9_999_999)}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number, "JM")):
            phones.append(f"{number[:3]}-{number[3:6]}-{number[6:]}")
    return phones


def person_rows(count: int, seed: int = 7) -> Iterator[dict[str, str]]:
    """``count`` canonical person rows with ids P-0000001, P-0000002, ..."""
    rng = random.Random(seed)
    phones = _valid_phones(rng, 5_000)
    for index in range(1, count + 1):
        given = rng.choice(GIVEN_NAMES)
        family = rng.choice(FAMILY_NAMES)
        year = rng.randint(1950, 2012)
        yield {
            "source_record_id": f"P-{index:07d}",
            "given_name": given,
            "middle_name": rng.choice(("", "", "Marie", "Anthony")),
            "family_name": family,
            "aliases": "",
            "date_of_birth": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "sex": rng.choice(("F", "M")),
            "citizenship": "JM",
            "trn": f"{rng.randint(100_000_000, 999_999_999)}",
            "nin": "",
            "passport_number": "",
            "passport_country": "",
            "phone": rng.choice(phones),
            "email": f"{given.lower()}.{family.lower()}{index}@example.org",
            "address": f"{rng.randint(1, 200)} Main Road",
            "parish": rng.choice(PARISHES),
            "role": "",
            "case_ref": "",
            "updated_at": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00Z",
            "deleted": "false",
            "source_version": "",
        }


def write_person_csv(path: Path, count: int, seed: int = 7) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(columns_of(Entity.PERSON)))
        writer.writeheader()
        writer.writerows(person_rows(count, seed))
    return path

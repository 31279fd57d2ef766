"""Blocking: the few keys under which a record looks for candidates, instead of all records.

A pair is scored only when the two records share at least one key. Each key kind covers the
errors the others miss: strong identifiers and contacts survive any name change; sound-alike
names with the date of birth survive typos in names; initials with the date of birth survive
two mangled names; name pairs without the date survive a mistyped date; the address with an
initial survives a mangled name and date together.

A key held by too many records (a very common name, a shared shelter phone) stops being a
useful key: scoring all of its members would cost more than it finds. Such a key is *capped*
(see ``Resolver``): while it has more members than the cap it yields no candidates.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.resolve.normalise import phonetic
from streams.resolve.records import PersonFeatures, SourceKey

DEFAULT_BLOCK_SIZE_CAP = 100
# Kinds that alone say little (one shared date, one street, a name with an initial): in a
# large population their blocks are big and mostly strangers, so they are capped harder.
WEAK_KEY_KINDS = frozenset({"dob", "street", "address-numbers", "family+initial",
                            "given+initial", "names"})
WEAK_KEY_CAP_DIVISOR = 4


def cap_for(block_key: str, block_size_cap: int) -> int:
    """The most members a block may have and still yield candidates."""
    if block_key.split(":", 1)[0] in WEAK_KEY_KINDS:
        return max(1, block_size_cap // WEAK_KEY_CAP_DIVISOR)
    return block_size_cap


def blocking_keys(features: PersonFeatures) -> frozenset[str]:
    """The blocking keys of one record; the kind prefix keeps different kinds apart."""
    keys: set[str] = set()
    for scheme, values in features.identifiers.items():
        keys.update(f"id:{scheme}:{value}" for value in values)
    keys.update(f"phone:{phone}" for phone in features.phones)
    keys.update(f"email:{email}" for email in features.emails)

    names = [features.given_canonical, features.family]
    names.extend(part for alias in features.alias_names for part in alias)
    sounds = sorted({phonetic(name) for name in names if name})
    dob = features.date_of_birth
    if dob:
        # Either name sounding the same plus the date: one name may be badly typed or missing.
        keys.update(f"name+dob:{sound}:{dob}" for sound in sounds)
        initials = "".join(sorted(name[0] for name in (features.given, features.family) if name))
        if initials:
            keys.add(f"initials+dob:{initials}:{dob}")
    given_sound = phonetic(features.given_canonical)
    family_sound = phonetic(features.family)
    if given_sound and family_sound:
        # Sorted, so that a given/family swap lands on the same key.
        keys.add("names:" + ":".join(sorted((given_sound, family_sound))))
    if features.given_canonical and features.family:
        # One name exact and the other's initial: survives a badly typed other name.
        keys.add(f"family+initial:{features.family}:{features.given_canonical[0]}")
        keys.add(f"given+initial:{features.given_canonical}:{features.family[0]}")
    if dob:
        keys.add(f"dob:{dob}")  # capped away in large populations, decisive in small ones
    if features.address_numbers:
        keys.add("address-numbers:" + ":".join(sorted(features.address_numbers)))
    street = features.address_words.split(" ")[:2]
    if len(street) == 2:
        keys.add(f"street:{street[0]}:{street[1]}")
    return frozenset(keys)


# A block's members: the one member's source key itself, or a set once there are more (most
# blocks of strong identifiers and contacts have one member; a set costs ~200 bytes).
Block = SourceKey | set[SourceKey]


class BlockIndex:
    """Which records hold each blocking key. ``add`` and ``remove`` say when a block crosses
    its cap, the moments the pairs of its members stop or start to count (the resolver then
    drops or scores their edges)."""

    def __init__(self, block_size_cap: int = DEFAULT_BLOCK_SIZE_CAP) -> None:
        self.block_size_cap = block_size_cap
        self.blocks: dict[str, Block] = {}

    def add(self, key: SourceKey, block_key: str) -> set[SourceKey]:
        """Put ``key`` in the block; the other members when the block has just passed its
        cap (their pairs may have lost their only justification), else nothing."""
        blocks = self.blocks
        block = blocks.get(block_key)
        if block is None:
            blocks[block_key] = key
            return set()
        if isinstance(block, str):
            block = blocks[block_key] = {block, key}
        else:
            block.add(key)
        if len(block) == cap_for(block_key, self.block_size_cap) + 1:
            return block - {key}
        return set()

    def remove(self, key: SourceKey, block_key: str) -> set[SourceKey]:
        """Take ``key`` out of the block; its members when the block is back within its cap
        (their pairs count again), else nothing."""
        blocks = self.blocks
        block = blocks[block_key]
        if isinstance(block, str):
            del blocks[block_key]
            return set()
        block.discard(key)
        size = len(block)
        members = set(block) if size == cap_for(block_key, self.block_size_cap) else set()
        if size == 1:
            blocks[block_key] = next(iter(block))
        return members

    def candidates(self, key: SourceKey, block_keys: Iterable[str]) -> set[SourceKey]:
        """The records sharing one of ``block_keys`` that is within its cap, but ``key``."""
        found: set[SourceKey] = set()
        for block_key in block_keys:
            block = self.blocks[block_key]
            if isinstance(block, str):
                continue  # the record itself
            if len(block) <= cap_for(block_key, self.block_size_cap):
                found |= block
        found.discard(key)
        return found

"""The ways one person's record differs from agency to agency. Pure functions of an RNG.

Each is a mistake or habit seen in real multi-agency data: a one-letter typo, a nickname,
a married name, day and month swapped, a mistyped identifier, another phone layout, stray
capitals and spaces. Entity resolution has to see through every one of them, so the
generator applies them on purpose and the truth file says which records are one person.
"""

from __future__ import annotations

import random
import string
from datetime import date

from deploy.demo.names import NICKNAMES

_LETTERS = string.ascii_lowercase


def typo(rng: random.Random, word: str) -> str:
    """``word`` with one edit (substitute, delete, insert or swap two neighbours); the first
    letter is kept, as it is in most real typing errors."""
    if len(word) < 3:
        return word
    position = rng.randrange(1, len(word))
    kind = rng.randrange(4)
    if kind == 0:
        replacement = rng.choice(_LETTERS.replace(word[position].lower(), ""))
        return word[:position] + replacement + word[position + 1:]
    if kind == 1 and len(word) > 3:
        return word[:position] + word[position + 1:]
    if kind == 2:
        return word[:position] + rng.choice(_LETTERS) + word[position:]
    if position == len(word) - 1:
        position -= 1
    if word[position] == word[position + 1]:
        return word[:position] + rng.choice(_LETTERS) + word[position + 1:]
    return word[:position] + word[position + 1] + word[position] + word[position + 2:]


def nickname(rng: random.Random, given: str) -> str | None:
    """A common short form of ``given``, or None when the name has none."""
    forms = NICKNAMES.get(given)
    return rng.choice(forms) if forms else None


def case_noise(rng: random.Random, text: str) -> str:
    """``text`` as a hurried clerk types it: all capitals, all lower case or padded."""
    kind = rng.randrange(3)
    if kind == 0:
        return text.upper()
    if kind == 1:
        return text.lower()
    return f" {text}  "


def swap_day_and_month(day: date) -> date:
    """The date with day and month exchanged, when both are 12 or less (else unchanged)."""
    if day.day > 12 or day.day == day.month:
        return day
    return day.replace(month=day.day, day=day.month)


def mistype_digits(rng: random.Random, value: str) -> str:
    """``value`` with one digit changed or two neighbouring digits swapped."""
    positions = [index for index, char in enumerate(value) if char.isdigit()]
    if len(positions) < 2:
        return value
    index = rng.choice(positions[:-1])
    following = index + 1
    if rng.random() < 0.5 and value[following].isdigit() and value[index] != value[following]:
        return value[:index] + value[following] + value[index] + value[following + 1:]
    digit = rng.choice("0123456789".replace(value[index], ""))
    return value[:index] + digit + value[index + 1:]


PHONE_STYLES: tuple[str, ...] = ("dashes", "brackets", "e164", "dots", "plain", "one-dashes")


def format_phone(number: str, style: str) -> str:
    """A 10-digit North American number (``8765551234``) in one of ``PHONE_STYLES``."""
    area, exchange, line = number[:3], number[3:6], number[6:]
    if style == "dashes":
        return f"{area}-{exchange}-{line}"
    if style == "brackets":
        return f"({area}) {exchange} {line}"
    if style == "e164":
        return f"+1{number}"
    if style == "dots":
        return f"{area}.{exchange}.{line}"
    if style == "one-dashes":
        return f"1-{area}-{exchange}-{line}"
    return number

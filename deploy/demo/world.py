"""The synthetic world: people, trafficking cases, and which agency records what about them.

Generation goes story by story. A story is either an incident (a case with its victims,
suspects, witnesses and the person who reported it, the reports, the exploiting employer)
or one background person (a passport applicant, a migrant worker, a patient) whom no case
involves. Each story draws from its own RNG, seeded from the run's seed and the story's
number, so a story's records never depend on how many stories came before it, and records
stream to disk story by story instead of living in memory.

Everything here is pure except ``RecordIds``, the per-agency counters that hand out record
ids in the order records are created.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from deploy.demo import names, variation
from deploy.demo.shapes import JAMAICA_TIME, ExportShape, PartialDate

COUNTRIES: tuple[str, ...] = ("JM", "HT", "VE", "CO", "DO", "CU", "GY", "TT", "US", "GB", "HN")
COUNTRY_WEIGHTS: tuple[float, ...] = (78, 5, 4, 2, 2, 2, 2, 1.5, 1.5, 1, 1)
# Victims of trafficking into Jamaica come disproportionately from abroad.
VICTIM_COUNTRY_WEIGHTS: tuple[float, ...] = (60, 10, 9, 5, 4, 3, 3, 2, 1, 1, 2)
ORIGIN_BY_COUNTRY: dict[str, str] = {
    "HT": "french", "VE": "spanish", "CO": "spanish", "DO": "spanish", "CU": "spanish",
    "HN": "spanish",
}

PARISHES: tuple[str, ...] = (
    "Kingston", "St. Andrew", "St. Thomas", "Portland", "St. Mary", "St. Ann", "Trelawny",
    "St. James", "Hanover", "Westmoreland", "St. Elizabeth", "Manchester", "Clarendon",
    "St. Catherine",
)
PARISH_WEIGHTS: tuple[float, ...] = (3, 21, 3, 3, 4, 6, 3, 7, 3, 5, 6, 7, 9, 19)
# Rough centres, for coordinates that land in the right part of the island.
PARISH_CENTRES: dict[str, tuple[float, float]] = {
    "Kingston": (17.97, -76.79), "St. Andrew": (18.06, -76.75), "St. Thomas": (17.93, -76.40),
    "Portland": (18.12, -76.52), "St. Mary": (18.32, -76.90), "St. Ann": (18.40, -77.20),
    "Trelawny": (18.40, -77.60), "St. James": (18.43, -77.87), "Hanover": (18.40, -78.13),
    "Westmoreland": (18.24, -78.13), "St. Elizabeth": (18.05, -77.75),
    "Manchester": (18.05, -77.50), "Clarendon": (17.95, -77.25),
    "St. Catherine": (18.03, -77.00),
}
PORT_PARISHES: tuple[str, ...] = (
    "Kingston", "St. James", "St. Ann", "Portland", "Trelawny", "St. Catherine",
)
# Jamaican exchanges (the three digits after 876) that the phonenumbers library accepts.
PHONE_EXCHANGES: tuple[str, ...] = (
    "210", "226", "285", "322", "350", "371", "383", "412", "428", "444", "467", "493",
    "505", "515", "532", "552", "578", "590", "617", "620", "631", "656", "700", "715",
    "754", "772", "781", "816", "838", "857", "868", "875", "909", "924", "947", "960",
    "975", "988",
)
EMAIL_DOMAINS: tuple[str, ...] = ("example.org", "example.com", "example.net")

FORMS: tuple[str, ...] = (
    "SEXUAL", "LABOUR", "DOMESTIC_SERVITUDE", "FORCED_CRIMINALITY", "FORCED_MARRIAGE", "OTHER",
)
FORM_WEIGHTS: tuple[float, ...] = (45, 35, 10, 6, 2, 2)
FORM_TITLES: dict[str, str] = {
    "SEXUAL": "Suspected sexual exploitation",
    "LABOUR": "Suspected labour exploitation",
    "DOMESTIC_SERVITUDE": "Suspected domestic servitude",
    "FORCED_CRIMINALITY": "Suspected forced criminality",
    "FORCED_MARRIAGE": "Suspected forced marriage",
    "OTHER": "Suspected trafficking",
}
STATUSES: tuple[str, ...] = ("OPEN", "UNDER_INVESTIGATION", "PROSECUTION", "CLOSED")

NARRATIVES: tuple[str, ...] = (
    "Caller reported {count} {group} working long hours at a {site} in {parish} without pay; "
    "identity documents reportedly held by the {boss}.",
    "A neighbour saw {count} {group} brought to a {site} in {parish} late at night; they do "
    "not appear to be free to leave.",
    "Person recruited with a promise of hotel work says they were made to work at a {site} in "
    "{parish} to repay a travel debt.",
    "Online advertisement offering jobs abroad traced to a {site} in {parish}; applicants say "
    "the {boss} kept their passports.",
    "Referral from a school counsellor: a student may be exploited at a {site} in {parish}.",
    "Port officers noticed {count} travellers whose tickets were bought by the same third "
    "party, all going to a {site} in {parish}.",
)
SUMMARIES: tuple[str, ...] = (
    "Victims were recruited with false job offers and housed at the {site}; wages withheld.",
    "Suspects controlled victims' documents and movement; {site} searched.",
    "Victims moved between parishes; the {boss} arranged transport and lodging.",
    "Debt bondage reported; victims told they owed the {boss} for travel and food.",
)
GROUPS: tuple[str, ...] = (
    "young women", "men", "teenagers", "migrant workers", "domestic workers", "farm hands",
)
BOSSES: tuple[str, ...] = ("employer", "manager", "recruiter", "landlord")
COUNTS: tuple[str, ...] = ("two", "three", "four", "several")

# Channels each reporting agency receives tips through (canonical values).
CHANNELS: dict[str, tuple[str, ...]] = {
    "police-ctu": ("WALK_IN", "REFERRAL", "HOTLINE", "EMAIL"),
    "hope-line-ngo": ("HOTLINE", "HOTLINE", "ONLINE", "EMAIL"),
    "safe-haven-shelter": ("REFERRAL", "WALK_IN", "HOTLINE"),
    "migrant-aid-ngo": ("WALK_IN", "ONLINE", "REFERRAL", "EMAIL"),
    "customs": ("OTHER", "OTHER", "HOTLINE", "REFERRAL"),
}

WORLD_START = date(2019, 1, 1)
WORLD_END = date(2025, 6, 30)  # the base export's "now"; change steps come after it


@dataclass(frozen=True)
class AgencyProfile:
    """How one agency behaves, beyond its export shape (which its mapping files give)."""

    agency: str
    entities: tuple[str, ...]
    id_formats: dict[str, str]  # entity -> record id pattern with {n}
    phone_style: str
    short_sex: bool = False  # F/M/U instead of FEMALE/MALE/UNKNOWN where no codes apply
    upper_names: bool = False
    # Person rows carry role and case_ref (the producer derives the person-case link).
    roles_on_person: bool = False


PROFILES: dict[str, AgencyProfile] = {
    profile.agency: profile
    for profile in (
        AgencyProfile(
            "police-ctu", ("person", "case", "report", "link"),
            {"person": "CTU-P{n:07d}", "case": "CTU-C{n:06d}", "report": "CTU-R{n:07d}",
             "link": "CTU-L{n:07d}"},
            phone_style="dashes", short_sex=True,
        ),
        AgencyProfile(
            "immigration", ("person",), {"person": "IMM{n:08d}"},
            phone_style="e164", upper_names=True,
        ),
        AgencyProfile("passport-office", ("person",), {"person": "PA{n:07d}"}, "plain"),
        AgencyProfile(
            "child-protection", ("person", "case"),
            {"person": "CP-{n:06d}", "case": "CPC-{n:05d}"}, "brackets", roles_on_person=True,
        ),
        AgencyProfile(
            "labour-ministry", ("person", "organisation", "location", "link"),
            {"person": "W{n:06d}", "organisation": "EMP{n:05d}", "location": "SITE{n:05d}",
             "link": "LL{n:07d}"},
            phone_style="brackets",
        ),
        AgencyProfile(
            "victim-services", ("person",), {"person": "VS-{n:06d}"}, "dashes",
            short_sex=True, roles_on_person=True,
        ),
        AgencyProfile(
            "prosecutions", ("person", "case", "link"),
            {"person": "DPP-P{n:06d}", "case": "DPP-{n:06d}", "link": "DPP-L{n:06d}"},
            phone_style="one-dashes", short_sex=True,
        ),
        AgencyProfile(
            "customs", ("person", "report"), {"person": "CX{n:08d}", "report": "CXR{n:06d}"},
            phone_style="e164", short_sex=True,
        ),
        AgencyProfile("health-ministry", ("person",), {"person": "HP{n:07d}"}, "brackets"),
        AgencyProfile(
            "safe-haven-shelter", ("person", "report"),
            {"person": "SH{n:05d}", "report": "SHI{n:05d}"}, "dots", short_sex=True,
            roles_on_person=True,
        ),
        AgencyProfile(
            "hope-line-ngo", ("person", "report"),
            {"person": "HL-C{n:06d}", "report": "HL-T{n:06d}"}, "dashes",
            roles_on_person=True,
        ),
        AgencyProfile(
            "migrant-aid-ngo", ("person", "report"),
            {"person": "ma-{n:06x}", "report": "mar-{n:06x}"}, "e164",
        ),
    )
}
AGENCIES: tuple[str, ...] = tuple(PROFILES)

# How likely a person in each role turns up at each agency (beyond the ones the story forces).
AGENCY_WEIGHTS: dict[str | None, dict[str, float]] = {
    "VICTIM": {
        "victim-services": 5, "safe-haven-shelter": 4, "health-ministry": 3,
        "migrant-aid-ngo": 1, "immigration": 1, "labour-ministry": 1, "hope-line-ngo": 1.5,
        "passport-office": 1, "customs": 0.5, "police-ctu": 2, "prosecutions": 1,
    },
    "SUSPECT": {
        "police-ctu": 3, "prosecutions": 2, "immigration": 2, "customs": 2,
        "passport-office": 2, "labour-ministry": 1, "hope-line-ngo": 1,
    },
    "WITNESS": {
        "police-ctu": 3, "prosecutions": 2, "passport-office": 1, "health-ministry": 1,
        "labour-ministry": 0.5,
    },
    "REPORTER": {"hope-line-ngo": 3, "police-ctu": 1, "passport-office": 1,
                 "health-ministry": 0.5},
    None: {
        "passport-office": 4, "immigration": 1.5, "health-ministry": 2.5, "labour-ministry": 2,
        "customs": 1, "migrant-aid-ngo": 0.3, "hope-line-ngo": 0.3, "victim-services": 0.3,
        "safe-haven-shelter": 0.1,
    },
}
# Agencies where a foreign citizen is far more likely to be on file.
FOREIGNER_AGENCY_FACTOR: dict[str, float] = {
    "immigration": 4, "migrant-aid-ngo": 8, "labour-ministry": 2,
}
# How many agencies know a person, by role: (count, weight).
APPEARANCES: dict[str | None, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "VICTIM": ((1, 2, 3, 4, 5), (15, 30, 30, 15, 10)),
    "SUSPECT": ((1, 2, 3, 4), (30, 35, 25, 10)),
    "WITNESS": ((1, 2, 3), (60, 30, 10)),
    "REPORTER": ((1, 2, 3), (70, 25, 5)),
    None: ((1, 2, 3, 4), (62, 26, 9, 3)),
}
INCIDENT_SHARE = 0.2  # of stories; incidents hold about half of all people


@dataclass(frozen=True)
class TruePerson:
    """One synthetic human being, as no single agency fully knows them."""

    person_id: str
    role: str | None
    sex: str
    given: str
    middle: str
    family: str
    birth_family: str | None  # the family name at birth, for a woman who took her husband's
    birth: date
    citizenship: tuple[str, ...]
    trn: str | None
    passport: str | None
    phones: tuple[str, ...]  # 10 digits, 876XXXXXXX
    email: str | None
    address: str
    parish: str

    def is_minor_on(self, day: date) -> bool:
        return (day.year - self.birth.year) - ((day.month, day.day) < (
            self.birth.month, self.birth.day)) < 18


@dataclass(frozen=True)
class Incident:
    """One trafficking case as it happened; agencies see parts of it."""

    incident_id: str
    case_ref: str  # the task force's reference, which every agency quotes
    forms: tuple[str, ...]
    parish: str
    occurred: date
    opened: date
    status: str
    closed: date | None
    known_to_police: bool
    prosecuted: bool
    site: str
    boss: str
    group: str


@dataclass
class Record:
    """One row an agency exports, with the truth behind it."""

    agency: str
    entity: str
    record_id: str
    row: dict[str, Any]
    true_person: str | None = None
    true_case: str | None = None
    # A link points at this record: it changes over time but is never deleted.
    pinned: bool = False


class RecordIds:
    """Per agency and entity counters; record ids follow each agency's own pattern."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}

    def new(self, agency: str, entity: str) -> str:
        number = self._last.get((agency, entity), 0) + 1
        self._last[(agency, entity)] = number
        return PROFILES[agency].id_formats[entity].format(n=number)


def moment(rng: random.Random, start: date, end: date) -> datetime:
    """A random minute between two days, Jamaica time (no seconds: most exports drop them)."""
    days = max((end - start).days, 0)
    day = start + timedelta(days=rng.randint(0, days))
    return datetime(
        day.year, day.month, day.day, rng.randrange(7, 20), rng.randrange(60),
        tzinfo=JAMAICA_TIME,
    )


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if char.isascii() and char.isalnum()).lower()


def make_person(
    rng: random.Random, person_id: str, role: str | None, reference: date, minor: bool
) -> TruePerson:
    """A synthetic person; ``reference`` is the day their age is counted on."""
    weights = VICTIM_COUNTRY_WEIGHTS if role == "VICTIM" else COUNTRY_WEIGHTS
    country = rng.choices(COUNTRIES, weights)[0]
    citizenship: tuple[str, ...] = (country,)
    if rng.random() < 0.04:
        second = rng.choice(("US", "GB", "JM"))
        if second != country:
            citizenship = (country, second)
    origin = ORIGIN_BY_COUNTRY.get(country, "english")
    female_share = {"VICTIM": 0.7, "SUSPECT": 0.3}.get(role or "", 0.5)
    sex = "FEMALE" if rng.random() < female_share else "MALE"
    pool = (names.FEMALE_GIVEN if sex == "FEMALE" else names.MALE_GIVEN)[origin]
    given = rng.choice(pool)
    middle = ""
    if rng.random() < 0.6:
        middle = rng.choice(pool)
        if middle == given:
            middle = ""
    family = rng.choice(names.FAMILY[origin])
    if minor:
        age = rng.randint(12, 17) if role == "VICTIM" else rng.randint(5, 17)
    else:
        low, high = {"VICTIM": (18, 40), "SUSPECT": (22, 60), "WITNESS": (18, 70)}.get(
            role or "", (18, 80)
        )
        age = rng.randint(low, high)
    birth = reference - timedelta(days=age * 365 + rng.randrange(365))
    birth_family = None
    if sex == "FEMALE" and age >= 22 and rng.random() < 0.35:
        birth_family, family = family, rng.choice(names.FAMILY[origin])
        if birth_family == family:
            birth_family = None
    resident = country == "JM" or "JM" in citizenship
    trn = None
    if rng.random() < (0.9 if age >= 18 else 0.4) * (1.0 if resident else 0.12):
        trn = str(rng.randrange(100_000_000, 1_000_000_000))
    passport = None
    if rng.random() < (0.45 if resident else 0.9):
        passport = rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") + f"{rng.randrange(10_000_000):07d}"
    phone_count = rng.choices((0, 1, 2), (15, 70, 15))[0]
    phones = tuple(
        "876" + rng.choice(PHONE_EXCHANGES) + f"{rng.randrange(10_000):04d}"
        for _ in range(phone_count)
    )
    email = None
    if rng.random() < 0.45:
        email = (
            f"{_ascii(given)}.{_ascii(family)}{rng.randrange(100)}@{rng.choice(EMAIL_DOMAINS)}"
        )
    address = (
        f"{rng.choice(names.ADDRESS_PREFIXES)}{rng.randint(1, 250)} {rng.choice(names.STREETS)}"
    )
    return TruePerson(
        person_id=person_id, role=role, sex=sex, given=given, middle=middle, family=family,
        birth_family=birth_family, birth=birth, citizenship=citizenship, trn=trn,
        passport=passport, phones=phones, email=email, address=address,
        parish=rng.choices(PARISHES, PARISH_WEIGHTS)[0],
    )


def make_incident(rng: random.Random, number: int) -> Incident:
    occurred = WORLD_START + timedelta(days=rng.randrange((WORLD_END - WORLD_START).days - 120))
    forms: tuple[str, ...] = (rng.choices(FORMS, FORM_WEIGHTS)[0],)
    if rng.random() < 0.15:
        second = rng.choices(FORMS, FORM_WEIGHTS)[0]
        if second not in forms:
            forms = (*forms, second)
    opened = occurred + timedelta(days=rng.randrange(1, 45))
    status = rng.choices(STATUSES, (25, 35, 20, 20))[0]
    closed = (
        opened + timedelta(days=rng.randrange(30, 400)) if status == "CLOSED" else None
    )
    if closed and closed > WORLD_END:
        closed = WORLD_END
    known_to_police = rng.random() < 0.9
    return Incident(
        incident_id=f"case-{number:06d}",
        case_ref=f"TF-{occurred.year}-{number:05d}",
        forms=forms,
        parish=rng.choices(PARISHES, PARISH_WEIGHTS)[0],
        occurred=occurred,
        opened=opened,
        status=status,
        closed=closed,
        known_to_police=known_to_police,
        prosecuted=known_to_police and (
            status == "PROSECUTION" or (status == "CLOSED" and rng.random() < 0.5)
        ),
        site=rng.choice(names.SITE_KINDS),
        boss=rng.choice(BOSSES),
        group=rng.choice(GROUPS),
    )


class World:
    """Turns stories into agency records, through each agency's export shape."""

    def __init__(self, seed: int, shapes: Mapping[tuple[str, str], ExportShape]) -> None:
        self.seed = seed
        self.shapes = shapes
        self.ids = RecordIds()
        self.employers: list[str] = []  # record ids of the labour inspectorate's employers
        self.last_people: list[TruePerson] = []  # the true people of the latest story
        self._incidents = 0

    def rng(self, stream: str, number: int) -> random.Random:
        """The RNG of one named stream; string seeds hash the same in every process."""
        return random.Random(f"{self.seed}/{stream}/{number}")

    # -- the employers every background worker may work for ------------------------------

    def employer_pool(self, count: int) -> Iterator[Record]:
        for number in range(count):
            rng = self.rng("employer", number)
            yield from self._employer(rng, rng.choices(PARISHES, PARISH_WEIGHTS)[0],
                                      exploitative=False)

    def _employer(
        self, rng: random.Random, parish: str, exploitative: bool
    ) -> Iterator[Record]:
        noun, industry = rng.choice(names.ORGANISATION_KINDS)
        suffix = rng.choice(names.ORGANISATION_SUFFIXES)
        name = f"{rng.choice(names.ORGANISATION_WORDS)} {noun} {suffix}".strip()
        when = moment(rng, WORLD_START, WORLD_END)
        organisation_id = self.ids.new("labour-ministry", "organisation")
        phone = "876" + rng.choice(PHONE_EXCHANGES) + f"{rng.randrange(10_000):04d}"
        aliases: tuple[str, ...] = ()
        if rng.random() < 0.3:
            aliases = (f"{name.split()[0]} {noun}",)
        organisation = Record(
            "labour-ministry", "organisation", organisation_id,
            {
                "source_record_id": organisation_id,
                "name": name,
                "aliases": aliases,
                "registration_number": f"{rng.randrange(10_000, 99_999)}"
                if rng.random() < 0.8 else None,
                "org_type": "INFORMAL" if exploitative and rng.random() < 0.4 else "COMPANY",
                "industry": industry,
                "address": f"{rng.randint(1, 250)} {rng.choice(names.STREETS)}",
                "parish": parish,
                "phone": (variation.format_phone(phone, "brackets"),),
                "email": (f"info@{_ascii(name)[:20]}.example.com",)
                if rng.random() < 0.5 else (),
                "updated_at": when,
            },
            pinned=True,
        )
        site_id = self.ids.new("labour-ministry", "location")
        latitude, longitude = PARISH_CENTRES[parish]
        site = Record(
            "labour-ministry", "location", site_id,
            {
                "source_record_id": site_id,
                "name": f"{name} {rng.choice(names.SITE_KINDS)}",
                "address": f"{rng.randint(1, 250)} {rng.choice(names.STREETS)}",
                "parish": parish,
                "latitude": round(latitude + rng.uniform(-0.08, 0.08), 5),
                "longitude": round(longitude + rng.uniform(-0.08, 0.08), 5),
                "location_role": "EXPLOITATION" if exploitative else rng.choice(
                    ("OTHER", "OTHER", "RESIDENCE", "RECRUITMENT")),
                "updated_at": when,
            },
            pinned=True,
        )
        yield organisation
        yield site
        yield self._link(
            "labour-ministry", "organisation", organisation_id, "location", site_id,
            "LOCATED_AT", when, when.date(),
        )
        if not exploitative:
            self.employers.append(organisation_id)

    # -- stories ---------------------------------------------------------------------------

    def story(self, number: int, first_person: int, people_left: int) -> tuple[
        list[Record], int
    ]:
        """The records of story ``number`` and how many true people it used."""
        rng = self.rng("story", number)
        if people_left >= 2 and rng.random() < INCIDENT_SHARE:
            return self._incident_story(rng, first_person, people_left)
        return self._background_story(rng, first_person), 1

    def _background_story(self, rng: random.Random, first_person: int) -> list[Record]:
        reference = moment(rng, date(2021, 1, 1), WORLD_END).date()
        person = make_person(
            rng, person_id(first_person), None, reference, minor=rng.random() < 0.05
        )
        self.last_people = [person]
        records: list[Record] = []
        for index, agency in enumerate(self._choose_agencies(rng, person, None)):
            when = moment(rng, date(2021, 1, 1), WORLD_END)
            record = self._person_record(rng, person, agency, index == 0, when, None)
            records.append(record)
            if agency == "labour-ministry" and self.employers:
                record.pinned = True
                records.append(self._link(
                    agency, "person", record.record_id, "organisation",
                    rng.choice(self.employers), "EMPLOYER", when,
                    when.date() - timedelta(days=rng.randrange(30, 900)),
                ))
        if rng.random() < 0.04:  # a tip that never became a case
            records.append(self._report(rng, "hope-line-ngo", None, None))
        return records

    def _incident_story(
        self, rng: random.Random, first_person: int, people_left: int
    ) -> tuple[list[Record], int]:
        self._incidents += 1
        incident = make_incident(rng, self._incidents)
        roles = (
            ["VICTIM"] * rng.choices((1, 2, 3, 4), (50, 25, 15, 10))[0]
            + ["SUSPECT"] * rng.choices((0, 1, 2), (20, 60, 20))[0]
            + ["WITNESS"] * rng.choices((0, 1), (70, 30))[0]
            + ["REPORTER"] * rng.choices((0, 1), (50, 50))[0]
        )[:people_left]
        origin = rng.choices(
            ("hope-line-ngo", "police-ctu", "safe-haven-shelter", "migrant-aid-ngo", "customs"),
            (40, 35, 10, 8, 7),
        )[0]
        people = [
            make_person(
                rng, person_id(first_person + index), role, incident.occurred,
                minor=role == "VICTIM" and rng.random() < 0.3,
            )
            for index, role in enumerate(roles)
        ]
        self.last_people = people
        child_case = any(
            person.role == "VICTIM" and person.is_minor_on(incident.occurred)
            and person.citizenship[0] == "JM" for person in people
        )
        records: list[Record] = []
        cases: dict[str, Record] = {}
        if incident.known_to_police:
            cases["police-ctu"] = self._case(rng, "police-ctu", incident)
        if incident.prosecuted:
            cases["prosecutions"] = self._case(rng, "prosecutions", incident)
        if child_case:
            cases["child-protection"] = self._case(rng, "child-protection", incident)
        records.extend(cases.values())
        employer_id = None
        if "LABOUR" in incident.forms:
            employer_records = list(self._employer(rng, incident.parish, exploitative=True))
            employer_id = employer_records[0].record_id
            records.extend(employer_records)

        for person in people:
            for index, agency in enumerate(
                self._choose_agencies(rng, person, incident, origin, child_case)
            ):
                when = moment(rng, incident.occurred, WORLD_END)
                record = self._person_record(rng, person, agency, index == 0, when, incident)
                records.append(record)
                case = cases.get(agency)
                if case is not None and agency in ("police-ctu", "prosecutions"):
                    record.pinned = case.pinned = True
                    records.append(self._link(
                        agency, "person", record.record_id, "case", case.record_id,
                        person.role or "OTHER", when, incident.opened,
                    ))
                if agency == "labour-ministry" and (employer_id or self.employers):
                    record.pinned = True
                    records.append(self._link(
                        agency, "person", record.record_id, "organisation",
                        employer_id or rng.choice(self.employers), "EMPLOYER", when,
                        incident.occurred - timedelta(days=rng.randrange(10, 200)),
                    ))

        records.append(self._report(rng, origin, incident, "origin"))
        if incident.known_to_police and origin != "police-ctu" and rng.random() < 0.3:
            records.append(self._report(rng, "police-ctu", incident, "follow-up"))
        return records, len(people)

    def _choose_agencies(
        self,
        rng: random.Random,
        person: TruePerson,
        incident: Incident | None,
        origin: str | None = None,
        child_case: bool = False,
    ) -> list[str]:
        role = person.role
        chosen: list[str] = []

        def eligible(agency: str) -> bool:
            if agency in chosen:
                return False
            if agency == "passport-office":
                return person.citizenship[0] == "JM"
            if agency == "child-protection":
                return bool(
                    incident and child_case and role == "VICTIM"
                    and person.citizenship[0] == "JM" and person.is_minor_on(incident.occurred)
                )
            if agency == "police-ctu":
                return bool(incident and incident.known_to_police and role)
            if agency == "prosecutions":
                return bool(incident and incident.prosecuted and role != "REPORTER")
            return True

        def force(agency: str, probability: float) -> None:
            if eligible(agency) and rng.random() < probability:
                chosen.append(agency)

        if incident is not None:
            force("child-protection", 1.0)
            force("police-ctu", {"VICTIM": 0.85, "SUSPECT": 0.9, "WITNESS": 0.6}.get(
                role or "", 0.1))
            force("prosecutions", {"VICTIM": 0.5, "SUSPECT": 0.9, "WITNESS": 0.4}.get(
                role or "", 0.0))
            if role == "REPORTER" and origin in ("hope-line-ngo", "safe-haven-shelter"):
                force(origin, 1.0)
        counts, weights = APPEARANCES[role]
        wanted = max(rng.choices(counts, weights)[0], len(chosen))
        foreign = person.citizenship[0] != "JM"
        candidates = [
            (agency, weight * (FOREIGNER_AGENCY_FACTOR.get(agency, 1.0) if foreign else 1.0))
            for agency, weight in AGENCY_WEIGHTS[role].items()
            if eligible(agency)
        ]
        while len(chosen) < wanted and candidates:
            pick = rng.choices(range(len(candidates)), [w for _, w in candidates])[0]
            chosen.append(candidates.pop(pick)[0])
        return chosen

    # -- records that appear only in a later change step ------------------------------------

    def late_person(
        self, rng: random.Random, person: TruePerson, agency: str, when: datetime
    ) -> Record:
        """``person`` turning up at one more agency after the base export."""
        return self._person_record(rng, person, agency, False, when, None)

    def late_report(self, rng: random.Random, agency: str, when: datetime) -> Record:
        """A new tip received after the base export."""
        record = self._report(rng, agency, None, None)
        record.row["received_at"] = when
        record.row["updated_at"] = when + timedelta(minutes=rng.randrange(5, 600))
        return record

    # -- one record of each kind -----------------------------------------------------------

    def _person_record(
        self,
        rng: random.Random,
        person: TruePerson,
        agency: str,
        first: bool,
        when: datetime,
        incident: Incident | None,
    ) -> Record:
        profile = PROFILES[agency]
        shape = self.shapes[(agency, "person")]
        record_id = self.ids.new(agency, "person")
        role = case_ref = None
        if profile.roles_on_person and incident is not None and person.role:
            expressible = set(shape.codes("role").values()) or {person.role}
            knows_case = incident.known_to_police and rng.random() < (
                0.5 if agency == "hope-line-ngo" else 0.85)
            if person.role in expressible and knows_case:
                role, case_ref = person.role, incident.case_ref
        row = person_row(rng, person, profile, first, when)
        row["source_record_id"] = record_id
        row["role"] = role
        row["case_ref"] = case_ref
        return Record(agency, "person", record_id, row, true_person=person.person_id)

    def _case(self, rng: random.Random, agency: str, incident: Incident) -> Record:
        record_id = self.ids.new(agency, "case")
        opened = incident.opened
        status = incident.status
        closed = incident.closed
        if agency == "prosecutions":
            opened = opened + timedelta(days=rng.randrange(30, 200))
            status = "CLOSED" if closed else "PROSECUTION"
            if closed and closed < opened:
                closed = opened
        if opened > WORLD_END:
            opened = WORLD_END
        title = f"{FORM_TITLES[incident.forms[0]]}, {incident.parish}"
        if agency == "child-protection":
            title = f"Child at risk: {FORM_TITLES[incident.forms[0]].lower()}"
        row = {
            "source_record_id": record_id,
            # Without a task-force reference the agency quotes its own case number.
            "case_ref": incident.case_ref if incident.known_to_police else record_id,
            "title": title,
            "status": status,
            "opened_on": opened,
            "closed_on": closed,
            "forms_of_exploitation": incident.forms,
            "parish": incident.parish,
            "summary": rng.choice(SUMMARIES).format(site=incident.site, boss=incident.boss),
            "updated_at": moment(rng, max(closed or opened, opened), WORLD_END),
        }
        return Record(agency, "case", record_id, row, true_case=incident.incident_id)

    def _report(
        self, rng: random.Random, agency: str, incident: Incident | None, purpose: str | None
    ) -> Record:
        record_id = self.ids.new(agency, "report")
        parish = incident.parish if incident else rng.choices(PARISHES, PARISH_WEIGHTS)[0]
        if agency == "customs":
            parish = rng.choice(PORT_PARISHES)
        start = incident.occurred if incident else date(2021, 1, 1)
        received = moment(rng, start, min(start + timedelta(days=30), WORLD_END))
        narrative = rng.choice(NARRATIVES).format(
            count=rng.choice(COUNTS),
            group=incident.group if incident else rng.choice(GROUPS),
            site=incident.site if incident else rng.choice(names.SITE_KINDS),
            parish=parish,
            boss=incident.boss if incident else rng.choice(BOSSES),
        )
        if purpose == "follow-up":
            narrative = "Follow-up: " + narrative
        case_ref = None
        if incident and incident.known_to_police and (
            agency == "police-ctu" or rng.random() < 0.5
        ):
            case_ref = incident.case_ref
        row = {
            "source_record_id": record_id,
            "channel": rng.choice(CHANNELS[agency]),
            "received_at": received,
            "narrative": narrative,
            "parish": parish,
            "case_ref": case_ref,
            "updated_at": received + timedelta(minutes=rng.randrange(5, 60 * 24 * 20)),
        }
        return Record(agency, "report", record_id, row,
                      true_case=incident.incident_id if incident else None)

    def _link(
        self,
        agency: str,
        from_entity: str,
        from_id: str,
        to_entity: str,
        to_id: str,
        link_role: str,
        when: datetime,
        valid_from: date,
    ) -> Record:
        record_id = self.ids.new(agency, "link")
        row = {
            "source_record_id": record_id,
            "from_entity": from_entity,
            "from_record_id": from_id,
            "to_entity": to_entity,
            "to_record_id": to_id,
            "link_role": link_role,
            "valid_from": valid_from,
            "valid_to": None,
            "updated_at": when,
        }
        return Record(agency, "link", record_id, row)


def person_id(number: int) -> str:
    return f"person-{number:07d}"


def person_row(
    rng: random.Random, person: TruePerson, profile: AgencyProfile, first: bool, when: datetime
) -> dict[str, Any]:
    """What one agency holds about ``person``: the truth, varied the way agencies vary it.

    The first agency to meet a person records them almost cleanly; every further agency
    adds its own typos, short names, missing fields and formats.
    """
    level = 0.3 if first else 1.0
    given, middle, family = person.given, person.middle, person.family
    aliases: list[str] = []
    if person.birth_family:
        if rng.random() < 0.35:
            family = person.birth_family  # an older record, from before the marriage
        if rng.random() < 0.3:
            other = person.family if family == person.birth_family else person.birth_family
            aliases.append(f"{person.given} {other}")
    if rng.random() < 0.15 * level:
        short = variation.nickname(rng, given)
        if short and rng.random() < 0.6:
            given = short
        elif short:
            aliases.append(short)
    if middle and rng.random() < 0.35 * level:
        middle = ""
    chance = rng.random()
    if chance < 0.08 * level:
        family = variation.typo(rng, family)
    elif chance < 0.16 * level:
        given = variation.typo(rng, given)
    if rng.random() < 0.08 * level:
        part = rng.randrange(3)
        if part == 0:
            given = variation.case_noise(rng, given)
        elif part == 1:
            family = variation.case_noise(rng, family)
        elif middle:
            middle = variation.case_noise(rng, middle)
    if profile.upper_names:
        given, middle, family = given.upper(), middle.upper(), family.upper()
        aliases = [alias.upper() for alias in aliases]

    birth = person.birth
    if rng.random() < 0.06 * level:
        birth = variation.swap_day_and_month(birth)
    chance = rng.random()
    date_of_birth: PartialDate | None = PartialDate(birth, "DAY")
    if chance < 0.05 * level:
        date_of_birth = None
    elif chance < 0.11 * level:
        date_of_birth = PartialDate(birth.replace(month=1, day=1), "YEAR")
    elif chance < 0.14 * level:
        date_of_birth = PartialDate(birth.replace(day=1), "MONTH")

    sex = "UNKNOWN" if rng.random() < 0.02 else person.sex
    if profile.short_sex:
        sex = sex[0]

    trn = person.trn
    chance = rng.random()
    if trn and chance < 0.3 * level:
        trn = None
    elif trn and chance < 0.34 * level:
        trn = variation.mistype_digits(rng, trn)
    passport = person.passport
    chance = rng.random()
    if passport and chance < 0.3 * level:
        passport = None
    elif passport and chance < 0.33 * level:
        passport = variation.mistype_digits(rng, passport)

    style = profile.phone_style
    if rng.random() < 0.3 * level:
        style = rng.choice(variation.PHONE_STYLES)
    phones = tuple(
        variation.format_phone(number, style)
        for number in person.phones
        if rng.random() > 0.2 * level
    )
    email = person.email if rng.random() > 0.35 * level else None
    address = person.address if rng.random() > 0.15 * level else None
    return {
        "given_name": given,
        "middle_name": middle or None,
        "family_name": family,
        "aliases": tuple(aliases),
        "date_of_birth": date_of_birth,
        "sex": sex,
        "citizenship": person.citizenship,
        "trn": trn,
        "passport_number": passport,
        "passport_country": person.citizenship[0] if passport else None,
        "phone": phones,
        "email": (email,) if email else (),
        "address": address,
        "parish": person.parish if address else None,
        "updated_at": when,
    }


def evolve(
    rng: random.Random, entity: str, row: Mapping[str, Any], when: datetime
) -> dict[str, Any]:
    """The record after one ordinary change at the agency (a move, a status change, ...)."""
    changed = dict(row)
    changed["updated_at"] = when
    if entity == "person":
        kind = rng.randrange(3)
        if kind == 0:
            number = "876" + rng.choice(PHONE_EXCHANGES) + f"{rng.randrange(10_000):04d}"
            changed["phone"] = (variation.format_phone(number, "dashes"), *row.get("phone", ()))
        elif kind == 1:
            changed["address"] = f"{rng.randint(1, 250)} {rng.choice(names.STREETS)}"
            changed["parish"] = rng.choices(PARISHES, PARISH_WEIGHTS)[0]
        else:
            given = _ascii(str(row.get("given_name") or "client")) or "client"
            changed["email"] = (f"{given}{rng.randrange(1000)}@{rng.choice(EMAIL_DOMAINS)}",)
    elif entity == "case":
        position = STATUSES.index(row["status"]) if row.get("status") in STATUSES else 0
        if position < len(STATUSES) - 1:
            changed["status"] = STATUSES[position + 1]
        if changed["status"] == "CLOSED" and not row.get("closed_on"):
            changed["closed_on"] = when.date()
    elif entity == "report":
        changed["narrative"] = f"{row.get('narrative') or ''} Update: caller gave more details."
    elif entity == "organisation":
        number = "876" + rng.choice(PHONE_EXCHANGES) + f"{rng.randrange(10_000):04d}"
        changed["phone"] = (variation.format_phone(number, "brackets"),)
    elif entity == "location":
        changed["location_role"] = "EXPLOITATION"
    elif entity == "link":
        changed["valid_to"] = when.date()
    return changed


"""The console in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium, against ``tipsync console`` on the real store.

A throwaway database holds three people of different classifications who share a family name,
their source records, a case linking them and match decisions, written as the sink writes
them. Analysts are made with ``tipsync analyst add``; the browser signs in with the password
from the passfile it wrote, as an analyst types it. Screenshots go to docs/console/ and are
shown in docs/CONSOLE.md.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from deploy.bench.scratch import scratch_database
from deploy.cli import main
from deploy.console.browser import chromium_options, ensure_chromium
from deploy.operations.analysts import admin_conninfo, list_analysts, remove_analyst
from deploy.stack.layout import StateLayout
from deploy.stack.tls import tls_files
from schemas import config
from schemas.config import Settings
from schemas.examples import example_reconciled
from schemas.stewardship import pair_id
from sinks import store
from sinks.migrate import migrate
from sinks.records import golden_rows
from sinks.tables import CASE, LINK, PERSON, match_decision_row
from tests.integration.test_need_to_know import _other

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
FAMILY = f"Quandt{RUN}"
POLICE, IMMIGRATION, SHELTER = "police-ctu", "immigration", "safe-haven-shelter"
CONSOLE_PORT = 20090
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class World:
    url: str
    admin: str
    people: dict[str, str]  # classification -> person id
    sources: dict[str, list[tuple[str, str]]]  # person id -> (agency, record id)
    case_ref: str
    review_pair: tuple[str, str]  # two source keys the resolver was unsure about


def _person(given: str, classification: str, sources: list[tuple[str, str]],
            **fields: Any) -> dict[str, Any]:
    record = example_reconciled("person")
    record.update({"golden_version": 3, "given_name": given, "middle_name": None,
                   "family_name": FAMILY, "aliases": [], "classification": classification,
                   **fields})
    record["sources"] = [
        {"agency_id": agency, "source_record_id": record_id, "source_version": 3,
         "event_time": record["last_updated"], "deleted": False, "quality_issues": []}
        for agency, record_id in sources
    ]
    (first_agency, first_record), (last_agency, last_record) = sources[0], sources[-1]
    record["lineage"] = [
        {"field": "given_name", "agency_id": first_agency, "source_record_id": first_record,
         "source_version": 3, "event_time": record["last_updated"]},
        {"field": "date_of_birth", "agency_id": last_agency, "source_record_id": last_record,
         "source_version": 3, "event_time": record["last_updated"]},
    ]
    return record


@pytest.fixture(scope="module")
def world(stack: Settings) -> Iterator[World]:
    with scratch_database(stack.database_url, "test_console") as url:
        migrate(url)
        people = {"OFFICIAL": new_id(), "SENSITIVE": new_id(), "VICTIM_PROTECTED": new_id()}
        sources = {
            people["OFFICIAL"]: [(POLICE, f"OFF-1-{RUN}"), (IMMIGRATION, f"OFF-2-{RUN}")],
            people["SENSITIVE"]: [(POLICE, f"SEN-1-{RUN}"), (IMMIGRATION, f"SEN-2-{RUN}")],
            people["VICTIM_PROTECTED"]: [(POLICE, f"VP-1-{RUN}"), (SHELTER, f"VP-2-{RUN}")],
        }
        given = {"OFFICIAL": "Olive", "SENSITIVE": "Sasha", "VICTIM_PROTECTED": "Violet"}
        # Two OFFICIAL people the resolver could not decide about: a pair to review.
        rita, rita_too = new_id(), new_id()
        sources[rita] = [(POLICE, f"RITA-1-{RUN}")]
        sources[rita_too] = [(IMMIGRATION, f"RITA-2-{RUN}")]
        case_id, case_ref = new_id(), f"CTU-{RUN}"
        with psycopg.connect(url, autocommit=True) as owner:
            store.prepare_session(owner, [PERSON, CASE, LINK])
            with owner.transaction():
                store.write_entity(owner, PERSON, [
                    golden_rows(PERSON, person_id, _person(given[label], label,
                                                           sources[person_id]))
                    for label, person_id in people.items()
                ] + [
                    golden_rows(PERSON, person_id, _person("Rita", "OFFICIAL", sources[person_id],
                                                           family_name=f"Zorilla{uuid.uuid4().hex[:6]}"))
                    for person_id in (rita, rita_too)
                ])
                store.write_entity(owner, CASE, [golden_rows(
                    CASE, case_id, _other("case", "OFFICIAL", POLICE, case_ref=case_ref))])
                store.write_entity(owner, LINK, [
                    golden_rows(LINK, link_id, _other(
                        "link", "OFFICIAL", POLICE, link_id=link_id, from_entity="PERSON",
                        from_id=person_id, to_entity="CASE", to_id=case_id,
                        link_role="VICTIM"))
                    for link_id, person_id in ((new_id(), p) for p in people.values())
                ])
                decisions = []
                for person_id in people.values():
                    (left_agency, left), (right_agency, right) = sources[person_id]
                    decision = example_reconciled("match_decision")
                    decision.update(left={"agency_id": left_agency, "source_record_id": left},
                                    right={"agency_id": right_agency, "source_record_id": right})
                    decisions.append(match_decision_row(decision))
                review = example_reconciled("match_decision")
                review.update(left={"agency_id": POLICE, "source_record_id": f"RITA-1-{RUN}"},
                              right={"agency_id": IMMIGRATION,
                                     "source_record_id": f"RITA-2-{RUN}"},
                              decision="REVIEW", score=9.5,
                              features={"family_name": 5.5, "date_of_birth": 2.0,
                                        "phone": -1.0})
                decisions.append(match_decision_row(review))
                store.write_match_decisions(owner, decisions)
        yield World(url, admin_conninfo(url, stack.pgpass_file), people, sources, case_ref,
                    (f"{IMMIGRATION}:RITA-2-{RUN}", f"{POLICE}:RITA-1-{RUN}"))


@dataclass(frozen=True)
class Login:
    name: str
    password: str


@pytest.fixture(scope="module")
def analysts(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Login]]:
    folder = tmp_path_factory.mktemp("console-analysts")
    made: dict[str, Login] = {}
    try:
        for key, clearance, role in (("OFFICIAL", "OFFICIAL", []),
                                     ("VICTIM_PROTECTED", "VICTIM_PROTECTED", []),
                                     ("STEWARD", "OFFICIAL", ["--steward"])):
            name = f"console_{RUN}_{key.lower()}"
            out = folder / f"{name}.uri"
            assert main(["analyst", "add", name, "--clearance", clearance, "--out", str(out),
                         "--database-url", world.url, *role]) == 0
            passfile = out.with_name(out.name + ".pgpass").read_text().strip()
            made[key] = Login(name, passfile.rsplit(":", 1)[1])
        yield made
    finally:
        for login in made.values():
            remove_analyst(world.admin, login.name)


# Starting takes a second on an idle machine, but its imports alone took 17 s at a load
# average of 40 on the shared 2 cores; a process that exits is reported at once.
def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tipsync console exited {process.returncode}:"
                                 f" {process.stderr.read() if process.stderr else ''}")
        with socket.socket() as probe:
            if probe.connect_ex((config.LOOPBACK, port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"tipsync console did not listen on port {port} in {timeout:g} s")


@contextlib.contextmanager
def running_console(stack: Settings, port: int, database_url: str, topic_root: str,
                    environment: dict[str, str] | None = None) -> Iterator[str]:
    """``tipsync console`` as a process of its own; yields its URL. Stewards' decisions go
    to a topic root of the test's own; the steward and monitor principals' ACLs cover the
    `tip` root only, so the console uses the admin's client file for both."""
    admin_file = str(config.local_client_file(stack.home, config.DEFAULT_PRINCIPAL))
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "console", "--port", str(port),
         "--database-url", database_url, "--topic-root", topic_root,
         "--steward-config", admin_file, "--monitor-config", admin_file],
        env={**os.environ, config.CLIENT_CONFIG: "", **(environment or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_port(port, process)
        yield f"https://localhost:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def console(world: World, stack: Settings) -> Iterator[str]:
    with running_console(stack, CONSOLE_PORT, world.url, f"test-console-{RUN}") as url:
        yield url


def server_key_pin(certificate: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the console's certificate: Chromium trusts
    exactly this key (``--ignore-certificate-errors-spki-list``), nothing else."""
    leaf = x509.load_pem_x509_certificates(certificate.read_bytes())[0]
    spki = leaf.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextlib.contextmanager
def chromium(stack: Settings, profile: Path) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium that trusts the console's server key."""
    binary, driver = ensure_chromium()
    certificate = tls_files(StateLayout(stack.home, stack.cache).secrets).server_certificate
    options = chromium_options(binary, profile, server_key_pin(certificate))
    session = webdriver.Chrome(options=options, service=Service(str(driver)))
    session.set_window_size(1280, 900)
    try:
        yield session
    finally:
        session.quit()


@pytest.fixture
def browser(stack: Settings, tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(stack, tmp_path / "profile") as session:
        yield session


def sign_in(browser: webdriver.Chrome, base: str, login: Login) -> None:
    browser.get(f"{base}/login")
    browser.find_element(By.ID, "username").send_keys(login.name)
    browser.find_element(By.ID, "password").send_keys(login.password)
    submit_and_wait(browser, "form.stacked button[type=submit]")
    assert browser.current_url.startswith(f"{base}/search"), browser.page_source[:2000]


def left(page: WebElement) -> Callable[[webdriver.Chrome], bool]:
    """Selenium's ``staleness_of``, also when ChromeDriver says so in its other words: asked
    about an element of a page it is leaving, it may answer "unknown error: unhandled
    inspector error: Node with given id does not belong to the document" instead of "stale
    element reference" (SeleniumHQ/selenium#15401; it failed CI once in session 6)."""

    def gone(_: webdriver.Chrome) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in (error.msg or ""):
                return True
            raise
        return False

    return gone


def submit_and_wait(browser: webdriver.Chrome, button: str) -> None:
    """Click a form's button and wait until the browser has left the page (a click returns
    before the navigation it starts)."""
    old_page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.CSS_SELECTOR, button).click()
    WebDriverWait(browser, 15).until(left(old_page))


def screenshot(browser: webdriver.Chrome, name: str) -> None:
    """The whole page, as tall as it is (up to 3000 pixels), into docs/console/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1280, min(max(height, 600), 3000) + 100)
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    browser.set_window_size(1280, 900)


def search_results(browser: webdriver.Chrome, base: str, name: str) -> str:
    browser.get(f"{base}/search?q={name}")
    return browser.find_element(By.ID, "results").text


def test_two_clearances_see_different_results_for_the_same_search(
    console: str, world: World, analysts: dict[str, Login], browser: webdriver.Chrome,
) -> None:
    sign_in(browser, console, analysts["OFFICIAL"])
    official = search_results(browser, console, FAMILY)
    screenshot(browser, "search-official")
    browser.delete_all_cookies()
    sign_in(browser, console, analysts["VICTIM_PROTECTED"])
    protected = search_results(browser, console, FAMILY)
    screenshot(browser, "search-victim-protected")
    assert "Olive" in official and "Sasha" not in official and "Violet" not in official
    assert all(name in protected for name in ("Olive", "Sasha", "Violet"))
    links = {element.get_attribute("href")
             for element in browser.find_elements(By.CSS_SELECTOR, "#results a")}
    assert {f"{console}/person/{person_id}" for person_id in world.people.values()} == links


def test_a_person_page_shows_lineage_agencies_links_and_why_linked_and_is_audited(
    console: str, world: World, analysts: dict[str, Login], browser: webdriver.Chrome,
) -> None:
    login = analysts["VICTIM_PROTECTED"]
    person_id = world.people["VICTIM_PROTECTED"]
    sign_in(browser, console, login)
    browser.get(f"{console}/person/{person_id}")
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Violet {FAMILY}"
    lineage = browser.find_element(By.ID, "lineage-table").text
    sources = browser.find_element(By.ID, "sources-table").text
    (first_agency, first_record), (last_agency, last_record) = world.sources[person_id]
    assert f"given_name {first_agency} {first_record} 3" in lineage
    assert f"date_of_birth {last_agency} {last_record} 3" in lineage
    for agency, record_id in world.sources[person_id]:
        assert agency in sources and record_id in sources
    assert world.case_ref in browser.find_element(By.ID, "links-table").text
    why = browser.find_element(By.ID, "why-table").text
    assert all(record_id in why for _, record_id in world.sources[person_id])
    screenshot(browser, "person")
    with psycopg.connect(world.admin) as admin:
        paths = {row[0] for row in admin.execute(
            "SELECT path FROM reconciled.read_audit WHERE analyst = %s AND person_id = %s",
            (login.name, person_id)).fetchall()}
    assert {"person_overview", "person_lineage"} <= paths


def test_an_official_analyst_cannot_open_a_protected_person(
    console: str, world: World, analysts: dict[str, Login], browser: webdriver.Chrome,
) -> None:
    sign_in(browser, console, analysts["OFFICIAL"])
    browser.get(f"{console}/person/{world.people['VICTIM_PROTECTED']}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"
    assert "Violet" not in browser.page_source and SHELTER not in browser.page_source


def _client(stack: Settings) -> httpx.Client:
    context = ssl.create_default_context(
        cafile=str(tls_files(StateLayout(stack.home, stack.cache).secrets).ca))
    return httpx.Client(verify=context, follow_redirects=False, timeout=10)


def test_unauthenticated_requests_are_sent_to_the_login(
    console: str, world: World, stack: Settings, browser: webdriver.Chrome,
) -> None:
    person = world.people["OFFICIAL"]
    with _client(stack) as client:
        for path in ("/", "/search?q=x", f"/person/{person}", "/nowhere"):
            response = client.get(console + path)
            assert response.status_code == 303 and response.headers["location"] == "/login"
            assert "default-src 'none'" in response.headers["content-security-policy"]
        assert client.post(console + "/logout").status_code == 303
    browser.get(f"{console}/person/{person}")
    assert browser.current_url == f"{console}/login"
    screenshot(browser, "login")


def test_cookies_are_secure_httponly_and_strict(
    console: str, analysts: dict[str, Login], browser: webdriver.Chrome,
) -> None:
    sign_in(browser, console, analysts["OFFICIAL"])
    cookies = browser.get_cookies()
    assert [cookie["name"] for cookie in cookies] == ["tipsync_session"]
    assert cookies[0]["secure"] and cookies[0]["httpOnly"]
    assert cookies[0]["sameSite"] == "Strict"


def test_a_forged_csrf_post_is_refused_and_does_nothing(
    console: str, analysts: dict[str, Login], browser: webdriver.Chrome,
) -> None:
    sign_in(browser, console, analysts["OFFICIAL"])
    # A form the console did not make: same target, a token of the attacker's choosing.
    browser.get(f"{console}/search")
    token = browser.find_element(By.CSS_SELECTOR, "form.logout input[name=csrf_token]")
    browser.execute_script("arguments[0].value = 'forged'", token)
    submit_and_wait(browser, "form.logout button")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Refused"
    screenshot(browser, "refused")
    browser.get(f"{console}/search")  # still signed in: the forged sign-out did nothing
    assert browser.current_url == f"{console}/search"


def test_a_wrong_password_is_refused_without_saying_which_part(
    console: str, analysts: dict[str, Login], browser: webdriver.Chrome,
) -> None:
    for name, password in ((analysts["OFFICIAL"].name, "wrong"), ("nobody_at_all", "x")):
        browser.get(f"{console}/login")
        browser.find_element(By.ID, "username").send_keys(name)
        browser.find_element(By.ID, "password").send_keys(password)
        submit_and_wait(browser, "form.stacked button[type=submit]")
        assert browser.current_url == f"{console}/login"
        assert "was not accepted" in browser.find_element(By.CSS_SELECTOR, ".problem").text


def test_a_steward_decides_a_review_pair_side_by_side_and_it_leaves_the_queue(
    console: str, world: World, analysts: dict[str, Login], browser: webdriver.Chrome,
) -> None:
    sign_in(browser, console, analysts["STEWARD"])
    browser.get(f"{console}/review")
    first, second = world.review_pair
    pair = pair_id(first, second)
    assert first in browser.find_element(By.ID, "queue").text
    screenshot(browser, "review")
    browser.find_element(By.LINK_TEXT, pair).click()
    table = browser.find_element(By.ID, "pair-table").text
    assert first in table and second in table and "family_name" in table
    assert "family_name: +5.5" in browser.find_element(By.ID, "evidence").text
    browser.find_element(By.ID, "kind-different").click()
    browser.find_element(By.ID, "reason").send_keys("different dates of birth on the passports")
    screenshot(browser, "pair")
    submit_and_wait(browser, "#decide button[type=submit]")
    assert browser.current_url == f"{console}/review?decided={pair}"
    assert pair in browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert "No open pair" in browser.find_element(By.ID, "queue").text
    browser.get(f"{console}/review/{pair}")
    decided = browser.find_element(By.CSS_SELECTOR, "p.meta").text
    assert f"CANNOT_LINK by {analysts['STEWARD'].name}" in decided
    assert "different dates of birth on the passports" in decided


def test_an_analyst_without_the_steward_right_cannot_review(
    console: str, world: World, analysts: dict[str, Login], browser: webdriver.Chrome,
) -> None:
    listed = {analyst.name: analyst.steward for analyst in list_analysts(world.admin)}
    assert listed[analysts["STEWARD"].name] and not listed[analysts["VICTIM_PROTECTED"].name]
    sign_in(browser, console, analysts["VICTIM_PROTECTED"])
    assert browser.find_elements(By.LINK_TEXT, "Review queue") == []
    browser.get(f"{console}/review")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Refused"


def test_the_quality_page_shows_each_agency_within_the_clearance(
    console: str, world: World, analysts: dict[str, Login], browser: webdriver.Chrome,
) -> None:
    sign_in(browser, console, analysts["VICTIM_PROTECTED"])
    browser.get(f"{console}/quality")
    records = browser.find_element(By.ID, "records-table").text
    assert all(agency in records for agency in (POLICE, IMMIGRATION, SHELTER))
    screenshot(browser, "quality")
    browser.delete_all_cookies()
    sign_in(browser, console, analysts["OFFICIAL"])
    browser.get(f"{console}/quality")
    assert SHELTER not in browser.find_element(By.TAG_NAME, "main").text


def test_signing_in_and_searching_work_from_the_keyboard_alone(
    console: str, world: World, analysts: dict[str, Login], browser: webdriver.Chrome,
) -> None:
    login = analysts["OFFICIAL"]
    browser.get(f"{console}/login")
    page = browser.find_element(By.TAG_NAME, "html")
    # The username field has the focus; Tab moves to the password; Enter submits.
    browser.switch_to.active_element.send_keys(login.name, Keys.TAB, login.password,
                                                Keys.ENTER)
    WebDriverWait(browser, 15).until(left(page))
    assert browser.current_url == f"{console}/search"
    # Tab from the top: the skip link first, then on through the page to the search field.
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    for _ in range(12):
        if browser.switch_to.active_element.get_attribute("id") == "q":
            break
        browser.switch_to.active_element.send_keys(Keys.TAB)
    search_field = browser.switch_to.active_element
    assert search_field.get_attribute("id") == "q"
    page = browser.find_element(By.TAG_NAME, "html")
    search_field.send_keys(FAMILY, Keys.ENTER)
    WebDriverWait(browser, 15).until(left(page))
    assert "Olive" in browser.find_element(By.ID, "results").text

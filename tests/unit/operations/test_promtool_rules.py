"""deploy/prometheus/: Prometheus's own checker accepts the rules and the scrape configuration,
and the rules' unit tests (alerts_test.yaml: targets down or absent, agency silence) pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy.operations.promtool import RULE_TESTS, RULES, promtool
from schemas.config import load_settings


@pytest.fixture(scope="module")
def program() -> Path:
    return promtool(load_settings().cache)


def run(program: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(program), *arguments], cwd=RULES.parent, capture_output=True,
                          text=True, timeout=300)


def test_promtool_accepts_the_alerting_rules(program: Path) -> None:
    checked = run(program, "check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_rules_unit_tests_pass(program: Path) -> None:
    tested = run(program, "test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_rules_unit_tests_fail_when_a_rule_is_broken(program: Path, tmp_path: Path) -> None:
    # the unit tests are not vacuous: the silence rule made 100 times more patient fails them
    broken = RULES.read_text(encoding="utf-8").replace("3 * 604800", "300 * 604800")
    assert broken != RULES.read_text(encoding="utf-8")
    (tmp_path / RULES.name).write_text(broken, encoding="utf-8")
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text(encoding="utf-8"),
                                            encoding="utf-8")
    tested = subprocess.run([str(program), "test", "rules", RULE_TESTS.name], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert tested.returncode != 0
    assert "TipsyncAgencySilent" in tested.stdout + tested.stderr


def test_promtool_accepts_the_scrape_configuration(program: Path) -> None:
    checked = run(program, "check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr

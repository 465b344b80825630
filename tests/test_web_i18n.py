"""Every word the page's templates ask for is in both catalogues (Indonesian and
English), and the families of keys built from values cover every value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sipantau_adapters.web.i18n import MESSAGES, number, percent, translator
from sipantau_core.access import Role
from sipantau_core.domain import SecurityStatus, Stage
from sipantau_core.domain.stations import RiskLevel
from sipantau_core.ports import ReportStatus

TEMPLATES = Path(__file__).resolve().parents[1] / "src/sipantau_adapters/web/templates"
LITERAL = re.compile(r"""\bt\(\s*["']([a-z0-9_.]+)["']\s*[,)]""")

FAMILIES = {
    "stage_": [s.value for s in Stage],
    "role_": [r.value for r in Role],
    "risk_": [r.value for r in RiskLevel],
    "security_": [s.value for s in SecurityStatus],
    "status_": [s.value for s in ReportStatus],
    "state_": ["in", "late", "missing", "pending"],
    "refused_": ["access.not_released", "access.role", "access.out_of_scope"],
}


def _literal_keys() -> set[str]:
    keys: set[str] = set()
    for page in TEMPLATES.glob("*.html"):
        keys |= set(LITERAL.findall(page.read_text(encoding="utf-8")))
    return keys


def test_the_templates_are_read() -> None:
    assert {"overview", "sign_in", "quick_count"} <= _literal_keys()


@pytest.mark.parametrize("lang", sorted(MESSAGES))
def test_every_literal_key_is_in_the_catalogue(lang: str) -> None:
    missing = sorted(k for k in _literal_keys() if k not in MESSAGES[lang])
    assert not missing, missing


@pytest.mark.parametrize("lang", sorted(MESSAGES))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_value_of_a_family_has_its_word(lang: str, family: str) -> None:
    missing = [v for v in FAMILIES[family] if f"{family}{v}" not in MESSAGES[lang]]
    assert not missing, (family, missing)


def test_both_catalogues_have_the_same_keys() -> None:
    assert set(MESSAGES["id"]) == set(MESSAGES["en"])


def test_numbers_in_each_language() -> None:
    assert (number(134934, "id"), number(134934, "en")) == ("134.934", "134,934")
    assert (percent(0.4147, "id"), percent(0.4147, "en")) == ("41,47%", "41.47%")
    assert percent(float("nan"), "id") == "–"
    t, has = translator("xx")  # an unknown language falls back to Indonesian
    assert t("overview") == "Ringkasan" and has("overview") and not has("nope")

"""The hook implementations of Kabupaten Musi Rawas (region 16.05).

The ``sipantau`` entry point of this package names this module, so every desk on a
machine where the package is installed loads it. It changes only the desks that are
its own: a deployment whose region lies within Musi Rawas, or one that opts in with

.. code-block:: toml

    [settings.musirawas]
    enabled = true          # or false, to switch it off inside Musi Rawas too
    invalid_share = 0.05    # the soft limit on invalid votes (share of the total)

Other desks (Kota Lubuklinggau next door, say) see none of its categories or rules.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs

from sipantau_core import hookimpl
from sipantau_core.deployment import Deployment
from sipantau_core.domain import IncidentCategory, RegionCode, TallyReport
from sipantau_core.rules import HARD, SOFT, FunctionRule, Rule, RuleContext, Violation

if TYPE_CHECKING:
    from sipantau_core.desk import Desk, ReportEvent

__all__ = [
    "CATEGORIES",
    "DEFAULT_INVALID_SHARE",
    "FLAGGED",
    "REGION",
    "RULE_CODES",
    "SETTINGS_KEY",
    "FlagNote",
    "invalid_share",
    "is_active",
    "rules",
]

log = logging.getLogger("sipantau_musirawas")

REGION = RegionCode("16.05")
SETTINGS_KEY = "musirawas"
DEFAULT_INVALID_SHARE = 0.05

CATEGORIES: tuple[IncidentCategory, ...] = (
    IncidentCategory("konflik_lahan", "Konflik lahan", "Land conflict", 3),
    IncidentCategory("banjir", "Banjir sungai", "River flood", 3),
)

RULE_CODES = ("invalid.too_many", "invalid.exceeds_valid")


# ---------------------------------------------------------------------------------------
# Which desks are ours
# ---------------------------------------------------------------------------------------


def _settings(deployment: Deployment) -> Mapping[str, Any]:
    raw = deployment.settings.get(SETTINGS_KEY, {})
    return raw if isinstance(raw, Mapping) else {}


def is_active(deployment: Deployment) -> bool:
    """True for a desk within Musi Rawas, or one whose ``[settings.musirawas]`` says
    ``enabled = true``; ``enabled = false`` switches the plugin off anywhere."""
    settings = _settings(deployment)
    if "enabled" in settings:
        return settings["enabled"] is True
    return REGION.contains(deployment.region)


def invalid_share(deployment: Deployment) -> Fraction:
    """The soft limit on invalid votes as an exact fraction of the total."""
    value = _settings(deployment).get("invalid_share", DEFAULT_INVALID_SHARE)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"settings.musirawas.invalid_share: {value!r} is not a share in (0, 1)")
    return Fraction(str(value))


# ---------------------------------------------------------------------------------------
# The rule pack
# ---------------------------------------------------------------------------------------


def _pct(value: Fraction | float) -> str:
    return f"{float(value) * 100:.1f}"


def _too_many_invalid(limit: Fraction) -> FunctionRule:
    def check(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
        if report.total == 0 or report.invalid <= report.total * limit:
            return
        share = Fraction(report.invalid, report.total)
        yield Violation(
            "invalid.too_many",
            SOFT,
            ("invalid", "total"),
            f"Suara tidak sah {report.invalid} ({_pct(share).replace('.', ',')}%) lebih dari "
            f"{_pct(limit).replace('.', ',')}% jumlah suara {report.total}",
            f"{report.invalid} invalid votes ({_pct(share)} %) are more than "
            f"{_pct(limit)} % of the total {report.total}",
        )

    return FunctionRule(("invalid.too_many",), (), check)


def _invalid_exceeds_valid(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    if report.invalid > report.valid:
        yield Violation(
            "invalid.exceeds_valid",
            HARD,
            ("invalid", "valid"),
            f"Suara tidak sah {report.invalid} lebih banyak dari suara sah {report.valid}: "
            "periksa apakah kedua angka tertukar",
            f"invalid votes {report.invalid} exceed valid votes {report.valid}: "
            "were the two swapped?",
        )


def rules(deployment: Deployment) -> tuple[Rule, ...]:
    """The rule pack for ``deployment``: ``invalid.too_many`` (soft, invalid votes above
    the deployment's share of the total) and ``invalid.exceeds_valid`` (hard)."""
    return (
        _too_many_invalid(invalid_share(deployment)),
        FunctionRule(("invalid.exceeds_valid",), (), _invalid_exceeds_valid),
    )


# ---------------------------------------------------------------------------------------
# The flagged-tally log
# ---------------------------------------------------------------------------------------


@attrs.frozen
class FlagNote:
    """A tally of one of our desks that was kept out of the count, and why (the codes
    only: never figures or personal data)."""

    desk: str
    station: str
    report_id: UUID
    version: int
    codes: tuple[str, ...]
    at: datetime


#: The most recent flagged tallies of this process (a real plugin would page the
#: regency's desk officer; tests read this).
FLAGGED: deque[FlagNote] = deque(maxlen=1000)


def _note(desk: Desk, event: ReportEvent) -> None:
    note = FlagNote(
        desk=desk.deployment.id,
        station=event.report.station.compact,
        report_id=event.receipt.report_id,
        version=event.receipt.version,
        codes=tuple(v.code for v in event.receipt.violations if v.is_hard),
        at=event.at,
    )
    FLAGGED.append(note)
    log.warning(
        "musirawas: tally %s v%d of TPS %s flagged: %s",
        note.report_id,
        note.version,
        event.report.station.label,
        ", ".join(note.codes),
    )


# ---------------------------------------------------------------------------------------
# The hooks
# ---------------------------------------------------------------------------------------


@hookimpl
def sipantau_incident_categories(deployment: Deployment) -> Iterable[IncidentCategory]:
    return CATEGORIES if is_active(deployment) else ()


@hookimpl
def sipantau_rule_packs(deployment: Deployment) -> Iterable[Rule]:
    return rules(deployment) if is_active(deployment) else ()


@hookimpl
def sipantau_report_flagged(desk: Desk, event: ReportEvent) -> None:
    if is_active(desk.deployment):
        _note(desk, event)


@hookimpl
def sipantau_report_corrected(desk: Desk, event: ReportEvent) -> None:
    # A correction fires "corrected", never "flagged": its own status is in the receipt.
    if is_active(desk.deployment) and event.receipt.status == "flagged":
        _note(desk, event)

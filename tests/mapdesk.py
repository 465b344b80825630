"""Reports for the map's tests: a desk of the Lubuklinggau reference deployment on
``memory://`` and situation and tally reports for any of its TPS, sent by the system
(importer) in the name of the TPS's monitor.

``day_desk()`` is that desk after a small election day: the situation reports, counted,
flagged and rejected tallies and incidents listed in ``DAY``, chosen to cover every
status and every risk level.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from sipantau_core import (
    Desk,
    Incident,
    Principal,
    Role,
    SecurityStatus,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
    TimeZone,
    VoterCounts,
)

__all__ = [
    "COORDINATOR",
    "DAY",
    "EXAMPLE",
    "EXPECTED_STATUS",
    "SECRET_TEXT",
    "SYSTEM",
    "T0",
    "day_desk",
    "example_desk",
    "monitor_of",
    "situation",
    "tally",
]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lubuklinggau"
T0 = datetime(2024, 11, 27, 6, 0, tzinfo=TimeZone.WIB.tzinfo)
SYSTEM = Principal(id="import", role=Role.SYSTEM)
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")

#: Words of an incident report that must never reach the map.
SECRET_TEXT = "Teks rahasia kejadian: amplop dibagikan oleh tim sukses"

#: TPS (13 digits) -> what happens there in ``day_desk()`` (risk levels from stations.csv).
DAY: dict[str, str] = {
    "1673011001001": "incidents",  # high: a situation report with two incidents
    "1673011001002": "counted",  # high: a situation report, then an accepted tally
    "1673011001003": "flagged",  # low: a tally that breaks a hard rule
    "1673011001004": "reported",  # low: a situation report only
    "1673011001005": "rejected",  # high: a tally a desk officer rejected
    "1673021001001": "counted",  # high
    "1673021001002": "incidents",  # medium
    "1673021001003": "overridden",  # a flagged tally a desk officer counted anyway
}

#: The map status each kind of day gives.
EXPECTED_STATUS = {
    "incidents": "reported",
    "counted": "counted",
    "flagged": "flagged",
    "reported": "reported",
    "rejected": "reported",
    "overridden": "counted",
}


def example_desk() -> Desk:
    return Desk.open(EXAMPLE, storage="memory://", clock=lambda: T0 + timedelta(hours=12))


def monitor_of(desk: Desk, station: str) -> str:
    code = StationCode.parse(station)
    return next(m.id for m in desk.deployment.monitors.values() if m.station == code)


def situation(
    desk: Desk,
    station: str,
    incidents: Iterable[Incident] = (),
    *,
    stage: Stage = Stage.OPENING,
    status: SecurityStatus = SecurityStatus.SAFE,
) -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=monitor_of(desk, station),
        station=station,
        observed_at=T0 + timedelta(hours=1),
        stage=stage,
        status=status,
        incidents=list(incidents),
    )


def tally(desk: Desk, station: str, *, broken: bool = False) -> TallyReport:
    """A tally for ``station``; ``broken`` makes the total disagree with valid + invalid
    (``total.sum_mismatch``, a hard rule: the desk flags it)."""
    votes = (100, 150)
    valid, invalid = sum(votes), 6
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=monitor_of(desk, station),
        station=station,
        contest="walikota",
        observed_at=T0 + timedelta(hours=8),
        votes={1: votes[0], 2: votes[1]},
        valid=valid,
        invalid=invalid,
        total=valid + invalid + (7 if broken else 0),
        voted=None if broken else VoterCounts(valid + invalid, 0, 0),
    )


def day_desk() -> Desk:
    """The example desk after the reports of ``DAY``."""
    desk = example_desk()
    officer = Principal(id="officer-1", role=Role.OFFICER, scope="16.73")
    for station, what in DAY.items():
        if what == "incidents":
            report = situation(
                desk,
                station,
                [Incident("politik_uang", 3, SECRET_TEXT), Incident("logistik", 1)],
                status=SecurityStatus.ALERT,
            )
            desk.submit(report, principal=SYSTEM)
        elif what == "reported":
            desk.submit(situation(desk, station), principal=SYSTEM)
        elif what == "counted":
            desk.submit(situation(desk, station), principal=SYSTEM)
            assert desk.submit(tally(desk, station), principal=SYSTEM).status == "accepted"
        elif what == "flagged":
            receipt = desk.submit(tally(desk, station, broken=True), principal=SYSTEM)
            assert receipt.status == "flagged"
        elif what == "rejected":
            receipt = desk.submit(tally(desk, station, broken=True), principal=SYSTEM)
            desk.reject(receipt.report_id, principal=officer, reason="foto C.Hasil tidak jelas")
        elif what == "overridden":
            receipt = desk.submit(tally(desk, station, broken=True), principal=SYSTEM)
            desk.override(receipt.report_id, principal=officer, reason="dicek ke PPS")
    return desk

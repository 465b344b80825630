"""A desk with its web page on loopback, staff tokens and reports, for the web tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from sipantau_adapters.http.server import create_app, running
from sipantau_core.access import Principal, Role
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk
from sipantau_core.domain import (
    Incident,
    SecurityStatus,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
)

ROOT = Path(__file__).resolve().parent.parent
LUBUKLINGGAU = ROOT / "examples" / "lubuklinggau"
SYSTEM = Principal(id="system", role=Role.SYSTEM)
#: 14:00 in Lubuklinggau (UTC+7) on election day: voting has closed, counting is on.
NOW = datetime(2024, 11, 27, 7, 0, tzinfo=UTC)


@dataclass
class Site:
    desk: Desk
    url: str
    tokens: dict[str, str] = field(default_factory=dict)

    @contextmanager
    def client(self, who: str | None = None) -> Iterator[httpx.Client]:
        """A browser-like client, signed in as ``who`` (a name of :func:`staff`)."""
        with httpx.Client(base_url=self.url, follow_redirects=False, timeout=30) as client:
            if who is not None:
                sign_in(client, self.tokens[who])
            yield client


def staff(desk: Desk) -> dict[str, str]:
    """Tokens of a coordinator of the city, an officer of one kecamatan (16.73.01), a
    viewer of the city, an auditor."""
    holders = {
        "coordinator": Principal(id="koord", role=Role.COORDINATOR, scope="16.73"),
        "officer": Principal(id="petugas-1", role=Role.OFFICER, scope="16.73.01"),
        "viewer": Principal(id="walikota", role=Role.VIEWER, scope="16.73"),
        "auditor": Principal(id="auditor", role=Role.AUDITOR, scope="16.73"),
    }
    return {name: desk.issue_token(p, principal=SYSTEM) for name, p in holders.items()}


def sign_in(client: httpx.Client, token: str) -> httpx.Response:
    form = client.get("/sign-in")
    pre = _hidden(form.text, "csrf")
    answer = client.post("/sign-in", data={"csrf": pre, "token": token, "next": "/"})
    assert answer.status_code == 303, answer.text
    return answer


def _hidden(html: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def csrf_of(html: str) -> str:
    return _hidden(html, "csrf")


@contextmanager
def site(storage: str = "memory://", *, deployment: Deployment | None = None) -> Iterator[Site]:
    dep = deployment or Deployment.load(LUBUKLINGGAU)
    desk = Desk.open(dep, storage=storage, clock=lambda: NOW)
    try:
        with running(create_app(desk)) as url:
            yield Site(desk, url, staff(desk))
    finally:
        desk.close()


def monitor_of(desk: Desk, station: str) -> Principal:
    code = StationCode.parse(station)
    monitor = next(m for m in desk.deployment.monitors.values() if m.station == code)
    return Principal(id=monitor.id, role=Role.MONITOR, scope=code)


def tally(
    desk: Desk, station: str, votes: tuple[int, int], invalid: int = 4, *, total: int | None = None
) -> TallyReport:
    valid = sum(votes)
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=monitor_of(desk, station).id,
        station=station,
        contest="walikota",
        observed_at=NOW - timedelta(minutes=5),
        votes={1: votes[0], 2: votes[1]},
        valid=valid,
        invalid=invalid,
        total=valid + invalid if total is None else total,
    )


def situation(desk: Desk, station: str, text: str, severity: int = 3) -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=monitor_of(desk, station).id,
        station=station,
        observed_at=NOW - timedelta(minutes=20),
        stage=Stage.VOTING,
        status=SecurityStatus.DISTURBED,
        incidents=[Incident("intimidasi", severity, text)],
    )


def send(desk: Desk, report: TallyReport | SituationReport) -> str:
    receipt = desk.submit(report, principal=monitor_of(desk, str(report.station.compact)))
    return receipt.status

"""The desk's queries for screens: ``stage_progress`` (what ``station_status`` says,
summed per region), ``flagged`` (the tallies waiting for a decision) and ``acknowledge``
(an incident seen and acted on), on memory and SQLite."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sipantau_core.access import Principal, Role
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk
from sipantau_core.domain import SecurityStatus, SituationReport, Stage
from sipantau_core.errors import PermissionDenied, SipantauError, UnknownEntityError
from web_helpers import LUBUKLINGGAU, NOW, SYSTEM, monitor_of, send, situation, tally

OFFICER = Principal(id="petugas-1", role=Role.OFFICER, scope="16.73.01")
VIEWER = Principal(id="walikota", role=Role.VIEWER, scope="16.73")


@pytest.fixture(params=["memory", "sqlite"])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'd.db'}"
    opened = Desk.open(Deployment.load(LUBUKLINGGAU), storage=url, clock=lambda: NOW)
    yield opened
    opened.close()


def _stage_report(desk: Desk, station: str, stage: Stage, minutes_before: int) -> None:
    report = SituationReport(
        report_id=uuid.uuid4(),
        monitor=monitor_of(desk, station).id,
        station=station,
        observed_at=NOW - timedelta(minutes=minutes_before),
        stage=stage,
        status=SecurityStatus.SAFE,
    )
    desk.submit(report, principal=monitor_of(desk, station))


@pytest.mark.parametrize("region", ["16.73", "16.73.01", "16.73.01.1001"])
def test_stage_progress_sums_station_status(desk: Desk, region: str) -> None:
    stations = sorted(s.code.compact for s in desk.deployment.stations_in("16.73.01"))[:12]
    for i, code in enumerate(stations):
        _stage_report(desk, code, Stage.OPENING, 10 * i)
        if i % 3 == 0:
            send(desk, tally(desk, code, (100 + i, 90)))
    # a rejected report does not count as in
    rejected = desk.reports(stations[1], principal=SYSTEM, kind="situation")[0][0]
    desk.reject(rejected.report_id, principal=SYSTEM, reason="salah TPS")
    # the same TPS's later report counts
    _stage_report(desk, stations[1], Stage.OPENING, 1)

    rows = desk.stage_progress(region, principal=SYSTEM, now=NOW)
    expected: dict[str, Counter[tuple[str, str]]] = {}
    sizes: Counter[str] = Counter()
    for status in desk.station_status(region, principal=SYSTEM, now=NOW):
        code = status.station
        child = _child(code, region)
        sizes[child] += 1
        counts = expected.setdefault(child, Counter())
        for st in status.stages:
            counts[(st.stage.value, st.state)] += 1
    assert [r.region for r in rows] == sorted(sizes)
    for row in rows:
        assert row.stations == sizes[row.region]
        for stage, on_time, late, missing in row.stages:
            counts = expected[row.region]
            assert (on_time, late, missing) == (
                counts[(stage.value, "in")],
                counts[(stage.value, "late")],
                counts[(stage.value, "missing")],
            ), (row.region, stage)
    assert sum(r.stations for r in rows) == sum(sizes.values())


def _child(code: str, region: str) -> str:
    """The region one level below ``region`` that holds the TPS ``code``."""
    parts = [code[0:2], code[2:4], code[4:6], code[6:10]]
    below = {"16.73": 3, "16.73.01": 4}.get(region)
    return code if below is None else ".".join(parts[:below])


def test_stage_progress_is_scoped(desk: Desk) -> None:
    assert desk.stage_progress("16.73.01", principal=OFFICER)
    with pytest.raises(PermissionDenied) as caught:
        desk.stage_progress("16.73.02", principal=OFFICER)
    assert caught.value.code == "access.out_of_scope"
    with pytest.raises(PermissionDenied) as caught:
        desk.stage_progress("16.73", principal=VIEWER)
    assert caught.value.code == "access.role"
    refusals = [e for e in desk.audit.entries() if e.outcome.startswith("denied:")]
    assert len(refusals) == 2  # refusals are on record, as for every query


def test_flagged_lists_the_tallies_waiting_for_a_decision(desk: Desk) -> None:
    codes = sorted(s.code.compact for s in desk.deployment.stations_in("16.73.01"))[:4]
    send(desk, tally(desk, codes[0], (100, 90)))
    send(desk, tally(desk, codes[1], (100, 90), total=3))
    send(desk, tally(desk, codes[2], (100, 90), total=4))
    found = desk.flagged("16.73.01", principal=OFFICER)
    assert [s.station for s in found] == [codes[1], codes[2]]
    desk.override(found[0].report_id, principal=OFFICER, reason="sesuai C1")
    assert [s.station for s in desk.flagged("16.73", principal=SYSTEM)] == [codes[2]]
    with pytest.raises(PermissionDenied):
        desk.flagged("16.73.02", principal=OFFICER)


def test_acknowledge_an_incident(desk: Desk) -> None:
    code = sorted(s.code.compact for s in desk.deployment.stations_in("16.73.01"))[0]
    send(desk, situation(desk, code, "massa berkumpul"))
    stored = desk.reports(code, principal=SYSTEM, kind="situation")[0][0]
    decision = desk.acknowledge(stored.report_id, 0, principal=OFFICER, note=" polisi datang ")
    assert (decision.action, decision.principal, decision.reason) == (
        "acknowledge:0",
        "petugas-1",
        "polisi datang",
    )
    assert desk.decisions(stored.report_id, principal=OFFICER) == [decision]
    entry = next(e for e in desk.audit.entries() if e.action == "acknowledge")
    assert (entry.action, entry.object, entry.region) == (
        "acknowledge",
        f"incident:{stored.report_id}:0",
        code,
    )
    with pytest.raises(UnknownEntityError) as caught:
        desk.acknowledge(stored.report_id, 1, principal=OFFICER)
    assert caught.value.code == "incident.not_found"
    other = sorted(s.code.compact for s in desk.deployment.stations_in("16.73.02"))[0]
    send(desk, situation(desk, other, "x"))
    elsewhere = desk.reports(other, principal=SYSTEM, kind="situation")[0][0]
    with pytest.raises(PermissionDenied) as denied:
        desk.acknowledge(elsewhere.report_id, 0, principal=OFFICER)
    assert denied.value.code == "access.out_of_scope"
    assert desk.audit.verify().ok


def test_stage_progress_by_level_sums_to_the_level_above(desk: Desk) -> None:
    for i, code in enumerate(sorted(s.code.compact for s in desk.deployment.stations.values())):
        if i % 7 == 0:
            _stage_report(desk, code, Stage.OPENING, i % 50)
    by_district = {r.region: r for r in desk.stage_progress("16.73", principal=SYSTEM)}
    villages = desk.stage_progress("16.73", principal=SYSTEM, level="village")
    assert all(len(v.region) == 13 for v in villages)  # 16.73.01.1001
    for district, row in by_district.items():
        inside = [v for v in villages if v.region.startswith(district + ".")]
        assert row.stations == sum(v.stations for v in inside)
        for i, (stage, on_time, late, missing) in enumerate(row.stages):
            assert (on_time, late, missing) == tuple(
                sum(v.stages[i][k] for v in inside) for k in (1, 2, 3)
            ), stage
    tps = desk.stage_progress("16.73.01", principal=SYSTEM, level="tps")
    assert sum(r.stations for r in tps) == by_district["16.73.01"].stations
    with pytest.raises(SipantauError) as caught:
        desk.stage_progress("16.73.01", principal=SYSTEM, level="city")
    assert caught.value.code == "desk.bad_call"


def test_region_codes_from_digits() -> None:
    from sipantau_core.domain.regions import CHILD_DIGITS, dotted

    assert [dotted(d) for d in ("16", "1673", "167301", "1673011001")] == [
        "16",
        "16.73",
        "16.73.01",
        "16.73.01.1001",
    ]
    assert dotted("1673011001001") == "1673011001001"  # a TPS keeps its 13 digits
    assert dotted("") == "ID"  # no digits: the nation
    assert CHILD_DIGITS == {0: 2, 2: 4, 4: 6, 6: 10, 10: 13}

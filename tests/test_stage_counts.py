"""The stage counts kept by region (``sipantau_core.desk.stages``): after any sequence of
stage reports, tallies, corrections and rejections, at times in time and late,
``desk.stage_progress`` at every level says what counting the reports TPS by TPS says; a
storage without the counts (from before them), or with counts made for another schedule,
is counted again when a desk opens it, once, also when two desks open it at once. On
memory, SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import attrs
import pytest

from pg import pg_url_factory  # noqa: F401 - fixture
from sipantau_core.access import Principal, Role
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk
from sipantau_core.desk.stages import STAGES_KEY
from sipantau_core.domain import (
    SecurityStatus,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
)
from sipantau_core.domain.reports import Amends
from sipantau_core.ports import ReportFilter, WriteBatch
from sipantau_core.results import StageProgress
from web_helpers import LUBUKLINGGAU, NOW, SYSTEM, monitor_of

#: 06:30 in Lubuklinggau (UTC+7): before the first deadline (persiapan, 07:00).
MORNING = NOW - timedelta(hours=7, minutes=30)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def any_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pg_url_factory: Callable[[], str],  # noqa: F811
) -> Callable[[], str]:
    if request.param == "memory":
        return lambda: "memory://"
    return _kept(request.param, tmp_path, pg_url_factory)


@pytest.fixture(params=["sqlite", "postgresql"])
def url_of(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pg_url_factory: Callable[[], str],  # noqa: F811
) -> Callable[[], str]:
    """A storage kept across desks (what a restart or an upgrade opens again)."""
    return _kept(request.param, tmp_path, pg_url_factory)


def _kept(kind: str, tmp_path: Path, pg_url_factory: Callable[[], str]) -> Callable[[], str]:  # noqa: F811
    if kind == "sqlite":
        path = tmp_path / "d.db"
        return lambda: f"sqlite:///{path}"
    made: list[str] = []

    def pg() -> str:
        if not made:
            made.append(pg_url_factory())
        return made[0]

    return pg


def _situation(desk: Desk, station: str, stage: Stage) -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=monitor_of(desk, station).id,
        station=station,
        observed_at=desk.clock() - timedelta(minutes=1),
        stage=stage,
        status=SecurityStatus.SAFE,
    )


def _tally(desk: Desk, station: str) -> TallyReport:
    votes = (random.randint(50, 150), random.randint(50, 150))
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=monitor_of(desk, station).id,
        station=station,
        contest="walikota",
        observed_at=desk.clock() - timedelta(minutes=1),
        votes={1: votes[0], 2: votes[1]},
        valid=sum(votes),
        invalid=3,
        total=sum(votes) + 3,
    )


def _by_tps(desk: Desk, region: str, depth: int, now: datetime) -> list[StageProgress]:
    """``stage_progress`` computed from the reports TPS by TPS, summed per region."""
    rows = desk.stage_progress(region, principal=SYSTEM, now=now, level="tps")
    sums: dict[str, list[list[int]]] = {}
    sizes: dict[str, int] = {}
    for row in rows:
        child = row.region[:depth]
        sizes[child] = sizes.get(child, 0) + 1
        acc = sums.setdefault(child, [[0, 0, 0] for _ in Stage])
        for i, (_, in_time, late, missing) in enumerate(row.stages):
            acc[i][0] += in_time
            acc[i][1] += late
            acc[i][2] += missing
    from sipantau_core.domain.regions import dotted

    return [
        StageProgress(
            region=dotted(child),
            stations=sizes[child],
            stages=tuple(
                (stage, a[0], a[1], a[2]) for stage, a in zip(Stage, sums[child], strict=True)
            ),
        )
        for child in sorted(sizes)
    ]


def _check_all_levels(desk: Desk, now: datetime) -> None:
    for region, level, depth in (
        ("16", "city", 4),
        ("16.73", "district", 6),
        ("16.73", "village", 10),
        ("16.73.01", "village", 10),
    ):
        got = desk.stage_progress(region, principal=SYSTEM, now=now, level=level)
        assert got == _by_tps(desk, region, depth, now), (region, level)


def _day(desk: Desk, clock: Clock, rng: random.Random, stations: list[str]) -> None:
    """A day of stage reports, tallies, corrections and rejections, at times that fall
    before and after the deadlines."""
    tallies: dict[str, TallyReport] = {}
    for minutes in range(0, 14 * 60, 35):
        clock.at = MORNING + timedelta(minutes=minutes)
        batch: list[SituationReport | TallyReport] = []
        for station in rng.sample(stations, 6):
            stage = rng.choice(list(Stage))
            if stage is Stage.COUNTING and rng.random() < 0.6:
                first = tallies.get(station)
                if first is None:
                    tallies[station] = report = _tally(desk, station)
                    batch.append(report)
                elif rng.random() < 0.5:
                    heads = desk.reports(station, principal=SYSTEM, kind="tally")
                    head = heads[-1][0] if heads else None
                    if head is not None and head.status.value not in ("rejected",):
                        amend = _tally(desk, station)
                        batch.append(
                            attrs.evolve(amend, amends=Amends(head.report_id, head.version))
                        )
            else:
                batch.append(_situation(desk, station, stage))
        if rng.random() < 0.5:
            desk.submit_many(batch, principal=[monitor_of(desk, str(r.station)) for r in batch])
        else:
            for report in batch:
                desk.submit(report, principal=monitor_of(desk, str(report.station)))
        # now and then an officer rejects a report (the first of its stage, often)
        if rng.random() < 0.4:
            station = rng.choice(stations)
            found = [
                stored
                for stored, _ in desk.reports(station, principal=SYSTEM)
                if stored.status.value != "rejected"
            ]
            if found:
                desk.reject(found[0].report_id, principal=SYSTEM, reason="salah kirim")


@pytest.mark.parametrize("seed", [1, 2])
def test_the_counts_agree_with_the_reports(any_url: Callable[[], str], seed: int) -> None:
    rng = random.Random(seed)
    random.seed(seed)
    clock = Clock(MORNING)
    desk = Desk.open(Deployment.load(LUBUKLINGGAU), storage=any_url(), clock=clock)
    try:
        stations = sorted(s.code.compact for s in desk.deployment.stations_in("16.73"))
        chosen = rng.sample(stations, 40)
        _day(desk, clock, rng, chosen)
        for hours in (0, 3, 8, 14):
            _check_all_levels(desk, MORNING + timedelta(hours=hours))
        _check_all_levels(desk, clock.at)
    finally:
        desk.close()


def _drop_counts(desk: Desk) -> None:
    """Make the storage look as one from before the stage counts: no marks, no counters."""
    with desk.storage.transaction() as tx:
        batch = WriteBatch()
        regions = {
            r
            for code in desk.deployment.stations
            for r in (code.compact[:2], code.compact[:4], code.compact[:6], code.compact[:10])
        }
        from sipantau_core.domain.regions import dotted

        for region, counters in tx.aggregates_many(
            STAGES_KEY, [dotted(r) for r in regions] + [""]
        ).items():
            for name, value in counters.items():
                batch.add((STAGES_KEY, region, name), -value)
        from sipantau_core.desk.stages import mark_key
        from sipantau_core.ports import StationState

        for stored in tx.reports(ReportFilter(heads_only=False, payload=False)):
            if stored.stage is not None:
                batch.stations[mark_key(stored.stage, stored.station)] = StationState()
        tx.write(batch)


def test_a_storage_without_counts_is_counted_when_a_desk_opens_it(
    url_of: Callable[[], str],
) -> None:
    clock = Clock(MORNING)
    rng = random.Random(7)
    random.seed(7)
    dep = Deployment.load(LUBUKLINGGAU)
    desk = Desk.open(dep, storage=url_of(), clock=clock)
    stations = sorted(s.code.compact for s in dep.stations_in("16.73"))
    _day(desk, clock, rng, rng.sample(stations, 30))
    before = desk.stage_progress("16.73", principal=SYSTEM, now=clock.at)
    _drop_counts(desk)
    assert desk.stage_progress("16.73", principal=SYSTEM, now=clock.at) != before
    desk.close()

    again = Desk.open(dep, storage=url_of(), clock=clock)
    try:
        assert again.stage_progress("16.73", principal=SYSTEM, now=clock.at) == before
        _check_all_levels(again, clock.at)
    finally:
        again.close()


def test_another_schedule_counts_again(url_of: Callable[[], str]) -> None:
    clock = Clock(MORNING)
    rng = random.Random(3)
    random.seed(3)
    dep = Deployment.load(LUBUKLINGGAU)
    desk = Desk.open(dep, storage=url_of(), clock=clock)
    _day(desk, clock, rng, rng.sample(sorted(s.code.compact for s in dep.stations_in("16.73")), 30))
    desk.close()
    # the same storage under a schedule two hours later: fewer reports are late
    later = attrs.evolve(dep, schedule=dep.schedule.shifted(timedelta(hours=2)))
    moved = Desk.open(later, storage=url_of(), clock=clock)
    try:
        _check_all_levels(moved, clock.at)
        late_now = sum(
            late
            for row in moved.stage_progress("16.73", principal=SYSTEM, now=clock.at)
            for _, _, late, _ in row.stages
        )
    finally:
        moved.close()
    back = Desk.open(dep, storage=url_of(), clock=clock)
    try:
        _check_all_levels(back, clock.at)
        late_before = sum(
            late
            for row in back.stage_progress("16.73", principal=SYSTEM, now=clock.at)
            for _, _, late, _ in row.stages
        )
    finally:
        back.close()
    assert late_now < late_before


def test_desks_opening_at_once_count_once(pg_url_factory: Callable[[], str]) -> None:  # noqa: F811
    url = pg_url_factory()
    clock = Clock(MORNING)
    rng = random.Random(11)
    random.seed(11)
    dep = Deployment.load(LUBUKLINGGAU)
    desk = Desk.open(dep, storage=url, clock=clock)
    _day(desk, clock, rng, rng.sample(sorted(s.code.compact for s in dep.stations_in("16.73")), 30))
    expected = desk.stage_progress("16.73", principal=SYSTEM, now=clock.at)
    _drop_counts(desk)
    desk.close()
    opened: list[Desk] = []
    errors: list[Exception] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        try:
            start.wait()
            opened.append(Desk.open(dep, storage=url, clock=clock))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        for one in opened:
            assert one.stage_progress("16.73", principal=SYSTEM, now=clock.at) == expected
    finally:
        for one in opened:
            one.close()


def test_the_overview_reads_counters_not_reports() -> None:
    """A province's stage progress reads a counter per region: no report is read."""
    desk = Desk.open(Deployment.load(LUBUKLINGGAU), storage="memory://", clock=lambda: NOW)
    try:
        code = sorted(s.code.compact for s in desk.deployment.stations_in("16.73"))[0]
        desk.submit(_situation(desk, code, Stage.OPENING), principal=monitor_of(desk, code))
        read: list[ReportFilter] = []
        real = desk.storage.transaction

        def spying() -> Iterator[object]:
            with real() as tx:
                original = tx.reports

                def reports(query: ReportFilter) -> object:
                    read.append(query)
                    return original(query)

                tx.reports = reports  # type: ignore[method-assign]
                yield tx

        from contextlib import contextmanager

        desk.storage.transaction = contextmanager(spying)  # type: ignore[method-assign]
        rows = desk.stage_progress("16.73", principal=SYSTEM, now=NOW)
        assert not read
        opening = [
            (in_time, late)
            for row in rows
            for stage, in_time, late, _ in row.stages
            if stage is Stage.OPENING
        ]
        assert [sum(x) for x in zip(*opening, strict=True)] == [0, 1]  # 14:00: late
        assert StationCode.parse(code)  # the TPS is a real one
    finally:
        desk.close()


def test_counts_never_reach_the_vote_counts() -> None:
    """The stage counters live under their own key: a contest's counts are untouched."""
    desk = Desk.open(Deployment.load(LUBUKLINGGAU), storage="memory://", clock=lambda: NOW)
    try:
        code = sorted(s.code.compact for s in desk.deployment.stations_in("16.73"))[0]
        desk.submit(_situation(desk, code, Stage.OPENING), principal=monitor_of(desk, code))
        with desk.storage.transaction() as tx:
            assert tx.aggregates("walikota", "16.73") == {}
            assert tx.aggregates(STAGES_KEY, "16.73") == {"pembukaan.late": 1}
    finally:
        desk.close()


def test_principal_roles_are_unchanged() -> None:
    """A principal that may not read a region's status is refused as before."""
    desk = Desk.open(Deployment.load(LUBUKLINGGAU), storage="memory://", clock=lambda: NOW)
    try:
        officer = Principal(id="petugas-1", role=Role.OFFICER, scope="16.73.01")
        from sipantau_core.errors import PermissionDenied

        with pytest.raises(PermissionDenied):
            desk.stage_progress("16.73", principal=officer, now=NOW)
        assert desk.stage_progress("16.73.01", principal=officer, now=NOW)
    finally:
        desk.close()

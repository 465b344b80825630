"""The parallel bulk path (``submit_many(..., workers=N)``): the serial path's results.

A mixed load over the Lubuklinggau deployment (tallies, flagged tallies, situation
reports, resends, corrections, a stale correction, a conflicting resend, unknown TPS,
a monitor reporting for another TPS) goes in once serially and once through forked
workers, each into its own database; the receipts, the counts, the audit log (as a set:
the shares interleave) and the events announced must be the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import sipantau_core.desk as desk_module
import sipantau_core.desk.parallel as desk_parallel
from pg import fresh_schema
from sipantau_adapters.storage.sql import SQLStorage
from sipantau_core import (
    Amends,
    Deployment,
    Desk,
    Principal,
    Receipt,
    Role,
    SecurityStatus,
    SipantauError,
    SituationReport,
    Stage,
    StorageError,
    TallyReport,
    VoterCounts,
    hookimpl,
)
from sipantau_core.desk import BulkResult, ReportEvent
from sipantau_core.domain import Monitor, Report

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = Principal(id="import", role=Role.SYSTEM)
NOW = datetime(2024, 11, 27, 17, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return Deployment.load(ROOT / "examples" / "lubuklinggau")


@pytest.fixture
def new_url() -> Iterator[Callable[[], str]]:
    """Fresh PostgreSQL schemas, as many as a test asks for (dropped at its end)."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(fresh_schema())


@pytest.fixture(autouse=True)
def small_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    # a few dozen reports make several shares (500 each at least otherwise), each
    # stored in several rounds (2,000 reports each at most otherwise)
    monkeypatch.setattr(desk_parallel, "_MIN_SHARE", 5)
    monkeypatch.setattr(desk_parallel, "_ROUND", 9)


def tally(
    m: Monitor, valid: int, ago: timedelta, votes: tuple[int, int], invalid: int = 3, **kw: Any
) -> TallyReport:
    """A tally of ``m``'s TPS observed ``ago`` before NOW; ``kw`` replaces fields."""
    fields: dict[str, Any] = {
        "report_id": uuid.uuid4(),
        "monitor": m.id,
        "station": m.station,
        "contest": "walikota",
        "observed_at": NOW - ago,
        "votes": {1: votes[0], 2: votes[1]},
        "valid": valid,
        "invalid": invalid,
        "total": valid + invalid,
    }
    return TallyReport(**(fields | kw))


def load(dep: Deployment, stations: int = 60) -> list[tuple[Report, Principal]]:
    """The mixed load, in submission order, each report with who sends it."""
    monitors = sorted(dep.monitors.values(), key=lambda m: m.id)[:stations]
    out: list[tuple[Report, Principal]] = []
    corrections: list[tuple[Report, Principal]] = []
    for i, m in enumerate(monitors):
        station = dep.stations[m.station]
        who = Principal(id=m.id, role=Role.MONITOR, scope=m.station.compact)
        out.append(
            (
                SituationReport(
                    report_id=uuid.uuid4(),
                    monitor=m.id,
                    station=m.station,
                    observed_at=NOW - timedelta(hours=9),
                    stage=Stage.OPENING,
                    status=SecurityStatus.SAFE,
                ),
                who,
            )
        )
        valid = min(station.registered_voters // 2, 300)
        a, b = valid // 3, valid - valid // 3

        report = tally(
            m,
            valid,
            timedelta(hours=1),
            (a, b),
            total=valid + 3 + (1 if i % 7 == 0 else 0),  # every 7th: flagged
            voted=VoterCounts(valid + 3, 0, 0) if i % 7 else None,
        )
        out.append((report, who))
        if i % 5 == 0:
            out.append((report, who))  # a resend: duplicate
        if i % 6 == 0:
            amends = Amends(report.report_id, 1)
            fixed = tally(m, valid, timedelta(minutes=30), (a + 1, b - 1), amends=amends)
            corrections.append((fixed, who))
            # the same version amended again: it is no longer the newest
            corrections.append((tally(m, valid, timedelta(minutes=20), (a, b), amends=amends), who))
        if i % 11 == 0:
            # the same id with other content
            other = tally(m, valid, timedelta(0), (a, b), invalid=4, report_id=report.report_id)
            corrections.append((other, who))
    first = monitors[0]
    second = monitors[1]
    corrections.append(
        (
            SituationReport(
                report_id=uuid.uuid4(),
                monitor=first.id,
                station=second.station,  # another monitor's TPS
                observed_at=NOW,
                stage=Stage.VOTING,
                status=SecurityStatus.SAFE,
            ),
            Principal(id=first.id, role=Role.MONITOR, scope=first.station.compact),
        )
    )
    corrections.append(
        (
            SituationReport(
                report_id=uuid.uuid4(),
                monitor=first.id,
                station="1673011001999",  # no such TPS
                observed_at=NOW,
                stage=Stage.VOTING,
                status=SecurityStatus.SAFE,
            ),
            SYSTEM,
        )
    )
    return out + corrections


def outcome(item: Receipt | SipantauError) -> tuple[Any, ...]:
    if isinstance(item, SipantauError):
        return ("error", type(item).__name__, item.code, item.message_id)
    return (
        item.report_id,
        item.status,
        item.version,
        item.chain_id,
        item.station,
        tuple(v.code for v in item.violations),
        item.first_status,
    )


def run(
    dep: Deployment, url: str, work: list[tuple[Report, Principal]], workers: int
) -> tuple[BulkResult, list[tuple[str, uuid.UUID]], Desk]:
    events: list[tuple[str, uuid.UUID]] = []

    class Listener:
        @hookimpl
        def sipantau_report_accepted(self, desk: Desk, event: ReportEvent) -> None:
            events.append((event.kind, event.report.report_id))

        @hookimpl
        def sipantau_report_flagged(self, desk: Desk, event: ReportEvent) -> None:
            events.append((event.kind, event.report.report_id))

        @hookimpl
        def sipantau_report_corrected(self, desk: Desk, event: ReportEvent) -> None:
            events.append((event.kind, event.report.report_id))

    desk = Desk.open(dep, storage=SQLStorage(url), plugins=[Listener()], clock=lambda: NOW)
    result = desk.submit_many([r for r, _ in work], principal=[p for _, p in work], workers=workers)
    return result, events, desk


@pytest.mark.postgres
def test_workers_give_the_serial_results(
    deployment: Deployment, new_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = load(deployment)
    real = desk_module.Desk._run_shares
    shares: list[int] = []

    def counted(self: Desk, submissions: Any, principals: Any, parts: list[list[int]]) -> Any:
        shares.append(len(parts))
        return real(self, submissions, principals, parts)

    monkeypatch.setattr(desk_module.Desk, "_run_shares", counted)
    serial, serial_events, one = run(deployment, new_url(), work, workers=1)
    parallel, parallel_events, many = run(deployment, new_url(), work, workers=3)
    try:
        assert shares == [3]  # the serial run did not fork, the other in three shares
        assert [outcome(x) for x in parallel.items] == [outcome(x) for x in serial.items]
        statuses = {x.status for x in serial.receipts}
        assert {"accepted", "flagged", "duplicate"} <= statuses
        codes = {outcome(x)[2] for x in serial.items if outcome(x)[0] == "error"}
        assert {"report.stale_version", "report.conflict", "report.unknown_station"} <= codes
        assert parallel_events == serial_events
        for region in ("16.73", "16.73.01", "16.73.02"):
            a = one.tally(region, principal=SYSTEM)
            b = many.tally(region, principal=SYSTEM)
            assert (a.votes, a.valid, a.invalid, a.total, a.stations_counted) == (
                b.votes,
                b.valid,
                b.invalid,
                b.total,
                b.stations_counted,
            )
        assert many.audit.verify().ok
        # the same records; the shares are batches of their own (a tree entry each)
        plain = sorted(
            (e.principal, e.action, e.object, e.outcome)
            for e in one.audit.records()
            if e.action != "submit_batch"
        )
        assert plain == sorted(
            (e.principal, e.action, e.object, e.outcome)
            for e in many.audit.records()
            if e.action != "submit_batch"
        )
        leaves = sorted(x.leaf_index for x in parallel.receipts if x.status != "duplicate")
        assert leaves == list(range(len(leaves)))  # each new report a leaf, none twice
        # the same call again: everything stored comes back as a duplicate
        again = many.submit_many([r for r, _ in work], principal=[p for _, p in work], workers=3)
        assert all(isinstance(x, SipantauError) or x.status == "duplicate" for x in again.items)
    finally:
        one.close()
        many.close()


@pytest.mark.postgres
def test_a_report_id_two_shares_need_falls_back_to_one_process(
    deployment: Deployment, new_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = load(deployment, stations=20)
    # the first tally's id reused at another TPS: serially, the second is a conflict
    first = next(r for r, _ in work if isinstance(r, TallyReport))
    elsewhere = next(
        (r, p) for r, p in work if isinstance(r, TallyReport) and r.station != first.station
    )
    clash = TallyReport(
        report_id=first.report_id,
        monitor=elsewhere[0].monitor,
        station=elsewhere[0].station,
        contest="walikota",
        observed_at=NOW,
        votes={1: 1, 2: 1},
        valid=2,
        invalid=0,
        total=2,
    )
    work.append((clash, elsewhere[1]))
    forks: list[int] = []
    monkeypatch.setattr(
        desk_module.Desk, "_run_shares", lambda *a, **k: forks.append(1) or (_ for _ in ())
    )
    serial, _, one = run(deployment, new_url(), work, workers=1)
    parallel, _, many = run(deployment, new_url(), work, workers=4)
    try:
        assert forks == []
        assert [outcome(x) for x in parallel.items] == [outcome(x) for x in serial.items]
        assert outcome(parallel.items[-1])[2] == "report.conflict"
    finally:
        one.close()
        many.close()


def test_memory_storage_runs_in_one_process(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("forked for a storage held in memory")

    monkeypatch.setattr(desk_module.Desk, "_run_shares", no_fork)
    work = load(deployment, stations=20)
    desk = Desk.open(deployment, storage="memory://", clock=lambda: NOW)
    result = desk.submit_many([r for r, _ in work], principal=[p for _, p in work], workers=4)
    assert len(result) == len(work)
    assert result.count("accepted") > 0


def first_tallies(dep: Deployment, stations: int) -> list[tuple[Report, Principal]]:
    """The load's tallies of ``stations`` TPS: first versions only, each once."""
    work = [(r, p) for r, p in load(dep, stations=stations) if isinstance(r, TallyReport)]
    work = [(r, p) for r, p in work if r.amends is None]
    return list({r.report_id: (r, p) for r, p in work}.values())  # no resends


@pytest.mark.postgres
def test_a_failed_share_raises_after_the_others_and_a_rerun_completes(
    deployment: Deployment, new_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = first_tallies(deployment, 40)
    doomed = work[0][0].station.compact
    real = desk_module.Desk._run_batch

    def failing(self: Desk, submissions: Any, principals: Any) -> Any:
        if any(getattr(s, "station", None) == work[0][0].station for s in submissions):
            raise StorageError("the database went away", code="storage.unavailable")
        return real(self, submissions, principals)

    url = new_url()
    events: list[str] = []

    class Listener:
        @hookimpl
        def sipantau_report_accepted(self, desk: Desk, event: ReportEvent) -> None:
            events.append(event.report.station.compact)

        @hookimpl
        def sipantau_report_flagged(self, desk: Desk, event: ReportEvent) -> None:
            events.append(event.report.station.compact)

    desk = Desk.open(deployment, storage=SQLStorage(url), plugins=[Listener()], clock=lambda: NOW)
    try:
        monkeypatch.setattr(desk_module.Desk, "_run_batch", failing)
        with pytest.raises(StorageError) as caught:
            desk.submit_many([r for r, _ in work], principal=[p for _, p in work], workers=2)
        assert caught.value.code == "storage.unavailable"
        assert events and doomed not in events  # the other share committed and announced
        stored = {x.report_id for x, _ in desk.reports("16.73", principal=SYSTEM)}
        assert 0 < len(stored) < len(work)
        monkeypatch.setattr(desk_module.Desk, "_run_batch", real)
        again = desk.submit_many([r for r, _ in work], principal=[p for _, p in work], workers=2)
        statuses = [x.status for x in again.receipts]
        assert len(statuses) == len(work)
        assert statuses.count("duplicate") == len(stored)
        counted = [x for x in again.receipts if (x.first_status or x.status) == "accepted"]
        assert desk.tally("16.73", principal=SYSTEM).stations_counted == len(counted) > 0
        assert desk.audit.verify().ok
    finally:
        desk.close()


@pytest.mark.postgres
def test_a_share_that_fails_in_a_later_round_announces_its_earlier_rounds(
    deployment: Deployment, new_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import zlib

    work = first_tallies(deployment, 60)
    doomed = work[-1][0].station  # the last report: in its share's last round

    def share_of(r: Report) -> int:
        return zlib.crc32(r.station.compact.encode()) % 2

    same_share = [r for r, _ in work if share_of(r) == share_of(work[-1][0])]
    assert len(same_share) > 9  # more than one round
    real = desk_module.Desk._run_batch

    def failing(self: Desk, submissions: Any, principals: Any) -> Any:
        if any(getattr(s, "station", None) == doomed for s in submissions):
            raise StorageError("the database went away", code="storage.unavailable")
        return real(self, submissions, principals)

    announced: list[uuid.UUID] = []

    class Listener:
        @hookimpl
        def sipantau_report_accepted(self, desk: Desk, event: ReportEvent) -> None:
            announced.append(event.report.report_id)

        @hookimpl
        def sipantau_report_flagged(self, desk: Desk, event: ReportEvent) -> None:
            announced.append(event.report.report_id)

    url = new_url()
    desk = Desk.open(deployment, storage=SQLStorage(url), plugins=[Listener()], clock=lambda: NOW)
    try:
        monkeypatch.setattr(desk_module.Desk, "_run_batch", failing)
        with pytest.raises(StorageError):
            desk.submit_many([r for r, _ in work], principal=[p for _, p in work], workers=2)
        stored = {x.report_id for x, _ in desk.reports("16.73", principal=SYSTEM)}
        # the doomed share's earlier rounds were committed, and announced once each
        early = [r.report_id for r in same_share[:9]]
        assert set(early) <= stored
        assert set(announced) == stored and len(announced) == len(stored)
        assert work[-1][0].report_id not in stored
        assert desk.audit.verify().ok
    finally:
        desk.close()


def test_errors_cross_a_process_boundary_whole() -> None:
    import pickle

    from sipantau_core import ConflictError, PayloadError
    from sipantau_core.errors import Problem

    for error in (
        ConflictError("stale", code="report.stale_version", message_id="usang"),
        PayloadError([Problem("$.votes", "value.invalid", "bad")]),
    ):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error)
        assert (back.code, back.message, back.message_id, str(back)) == (
            error.code,
            error.message,
            error.message_id,
            str(error),
        )
    problems = pickle.loads(pickle.dumps(PayloadError([Problem("$", "json.invalid", "x")])))
    assert problems.codes == ["json.invalid"]

"""Fault injection on the SQL storage: an error raised at any step of the submit path (and
of the decisions) leaves the store consistent, on SQLite and PostgreSQL.

A :class:`FaultyStorage` is an :class:`SQLStorage` whose transactions count their steps
(starting the transaction, every call of a ``StorageTx`` method, every SQL statement
that ``write`` executes, the commit, and the moment after it) and raise at the k-th one.
For every k, from 0 until the use case runs without meeting the fault, the desk runs the
use case on fresh polling stations; then a clean storage on the same database reads
everything back and checks that

- a report is stored if and only if the log holds its ``submit`` entry (exactly one);
- a decision is stored if and only if the log holds its entry, and the reports' statuses
  follow the decisions;
- each TPS's state follows its newest tally, and the aggregates are exactly the sum of
  the counted station states (and those are the counts in the reports' payloads);
- the audit log's hash chain verifies and ``audit_head`` is its last entry;
- and the use case happened entirely or not at all: unless the fault came after the
  commit, nothing changed.

The fault is an unexpected exception (:class:`Injected`), or a lost race
(``ConflictError("storage.race")``), which the desk answers by running the transaction
again: the use case then succeeds, or fails with nothing (or everything) written.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import attrs
import pytest
from sqlalchemy import event

from pg import pg_url  # noqa: F401 - a fixture
from sipantau_adapters.storage.sql import SQLStorage
from sipantau_core.access import Principal, Role
from sipantau_core.audit import GENESIS, chain, verify_chain, verify_log
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk, Receipt
from sipantau_core.domain import (
    Amends,
    Candidate,
    Contest,
    PollingStation,
    RegionCode,
    RegionLevel,
    SecurityStatus,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
    VoterCounts,
)
from sipantau_core.errors import ConflictError, SipantauError, StorageError
from sipantau_core.ports import (
    COUNTED_STATUSES,
    AuditRecord,
    Decision,
    DeviceKeyRecord,
    LogTree,
    MonitorRecord,
    ReleaseRecord,
    ReportFilter,
    ReportStatus,
    StationKey,
    StationState,
    StorageTx,
    StoredReport,
    TokenRecord,
    WriteBatch,
)
from sipantau_core.testing.contracts import _stored, build_deployment

CONTEST = "walikota"
SYSTEM = Principal(id="import", role=Role.SYSTEM)
OFFICER = Principal(id="officer-1", role=Role.OFFICER, scope="16.73")
T0 = datetime(2024, 11, 27, 14, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------
# The faulty storage
# ---------------------------------------------------------------------------------------


class Injected(Exception):
    """The fault: an error no layer expects."""


def injected(where: str) -> BaseException:
    return Injected(f"injected at {where}")


def lost_race(where: str) -> BaseException:
    return ConflictError(f"injected at {where}", code="storage.race")


class Faults:
    """Counts the steps; raises ``make(step)`` at step ``at`` (once)."""

    def __init__(self) -> None:
        self.at: int | None = None
        self.make: Callable[[str], BaseException] = injected
        self.steps: list[str] = []
        self.hit: str | None = None

    def arm(self, at: int, make: Callable[[str], BaseException]) -> None:
        self.at, self.make, self.steps, self.hit = at, make, [], None

    def disarm(self) -> str | None:
        self.at = None
        return self.hit

    def step(self, where: str) -> None:
        if self.at is None:
            return
        k = len(self.steps)
        self.steps.append(where)
        if k == self.at:
            self.hit = where
            raise self.make(where)


class FaultyStorage(SQLStorage):
    """An :class:`SQLStorage` whose transactions fail at a chosen step."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.faults = Faults()
        self.in_write = False
        event.listen(self._engine, "before_cursor_execute", self._statement)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.in_write:  # between (before each of) the statements of a write
            self.faults.step("write: " + " ".join(statement.split()[:3]))

    @contextmanager
    def transaction(self) -> Iterator[StorageTx]:
        self.faults.step("begin")
        with super().transaction() as tx:
            yield _FaultyTx(tx, self)
            self.faults.step("commit")  # raised here: the transaction rolls back
        self.faults.step("after commit")  # committed, but the caller sees an error


class _FaultyTx(StorageTx):
    def __init__(self, tx: StorageTx, storage: FaultyStorage) -> None:
        self._tx = tx
        self._storage = storage
        self._step = storage.faults.step

    def get_reports(self, report_ids: Iterable[UUID]) -> dict[UUID, StoredReport]:
        self._step("get_reports")
        return self._tx.get_reports(report_ids)

    def chain_heads(self, chain_ids: Iterable[UUID]) -> dict[UUID, StoredReport]:
        self._step("chain_heads")
        return self._tx.chain_heads(chain_ids)

    def station_states(
        self, keys: Iterable[StationKey], *, lock: bool = False
    ) -> dict[StationKey, StationState]:
        self._step("station_states")
        return self._tx.station_states(keys, lock=lock)

    def aggregates(self, contest: str, region: str) -> dict[str, int]:
        self._step("aggregates")
        return self._tx.aggregates(contest, region)

    def reports(self, query: ReportFilter) -> list[StoredReport]:
        self._step("reports")
        return self._tx.reports(query)

    def decisions(self, report_id: UUID | None = None) -> list[Decision]:
        self._step("decisions")
        return self._tx.decisions(report_id)

    def releases(self) -> list[ReleaseRecord]:
        self._step("releases")
        return self._tx.releases()

    def audit(self, *, after: int = 0, limit: int | None = None) -> list[AuditRecord]:
        self._step("audit")
        return self._tx.audit(after=after, limit=limit)

    def audit_head(self, *, lock: bool = False) -> tuple[int, str]:
        self._step("audit_head")
        return self._tx.audit_head(lock=lock)

    def log_tree(self) -> LogTree:
        self._step("log_tree")
        return self._tx.log_tree()

    def device_keys(
        self, *, key_ids: Iterable[str] | None = None, monitor: str | None = None
    ) -> list[DeviceKeyRecord]:
        self._step("device_keys")
        return self._tx.device_keys(key_ids=key_ids, monitor=monitor)

    def token(self, token_hash: str) -> TokenRecord | None:
        self._step("token")
        return self._tx.token(token_hash)

    def monitors(self, ids: Iterable[str] | None = None) -> dict[str, MonitorRecord]:
        self._step("monitors")
        return self._tx.monitors(ids)

    def notifications(self, **kwargs: Any) -> Any:
        self._step("notifications")
        return self._tx.notifications(**kwargs)

    def media(self, sha256s: Any, *, data: bool = True) -> Any:
        self._step("media")
        return self._tx.media(sha256s, data=data)

    def write(self, batch: WriteBatch) -> None:
        self._step("write")
        self._storage.in_write = True
        try:
            self._tx.write(batch)
        finally:
            self._storage.in_write = False


# ---------------------------------------------------------------------------------------
# A deployment with enough TPS for a fresh one per run
# ---------------------------------------------------------------------------------------


def fault_deployment(n: int = 320) -> Deployment:
    """``n`` TPS in 2 districts × 4 villages of Kota Lubuklinggau, a two-pair race."""
    stations = []
    per_village = n // 8
    for i in range(n):
        district, rest = divmod(i, n // 2)
        village, tps = divmod(rest, per_village)
        code = StationCode(RegionCode(f"16.73.{district + 1:02d}.{1001 + village}"), tps + 1)
        stations.append(PollingStation(code=code, registered_voters=300 + i))
    contest = Contest(
        id=CONTEST, region="16.73", candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2")]
    )
    return build_deployment(
        stations,
        contest=contest,
        monitor_id=lambda _, s: f"M{s.code.compact}",
        id="faults",
        name="faults",
    )


def _tally(
    station: PollingStation,
    votes: tuple[int, int],
    *,
    flagged: bool = False,
    amends: TallyReport | None = None,
    version: int = 1,
) -> TallyReport:
    valid = sum(votes)
    invalid = 4
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=f"M{station.code.compact}",
        station=station.code,
        contest=CONTEST,
        observed_at=T0,
        votes={1: votes[0], 2: votes[1]},
        valid=valid,
        invalid=invalid,
        total=valid + invalid + (7 if flagged else 0),  # breaks a hard rule: flagged
        voted=None if flagged else VoterCounts(valid + invalid, 0, 0),
        amends=Amends(amends.report_id, version) if amends is not None else None,
    )


def _situation(station: PollingStation) -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=f"M{station.code.compact}",
        station=station.code,
        observed_at=T0,
        stage=Stage.OPENING,
        status=SecurityStatus.SAFE,
    )


# ---------------------------------------------------------------------------------------
# What a clean storage reads back, and what must hold of it
# ---------------------------------------------------------------------------------------


@attrs.frozen
class Snapshot:
    reports: dict[UUID, StoredReport]
    log: list[AuditRecord]
    head: tuple[int, str]
    states: dict[StationKey, StationState]
    aggregates: dict[str, dict[str, int]]
    decisions: list[Decision]


def _regions(dep: Deployment) -> set[str]:
    levels = (RegionLevel.PROVINCE, RegionLevel.CITY, RegionLevel.DISTRICT)
    return {code.village.at_level(level).value for code in dep.stations for level in levels} | {
        code.village.value for code in dep.stations
    }


def snapshot(url: str, dep: Deployment) -> Snapshot:
    store = SQLStorage(url)
    try:
        with store.transaction() as tx:
            reports = {r.report_id: r for r in tx.reports(ReportFilter(heads_only=False))}
            states = tx.station_states([(CONTEST, code.compact) for code in dep.stations])
            return Snapshot(
                reports=reports,
                log=tx.audit(),
                head=tx.audit_head(),
                states={k: s for k, s in states.items() if s != StationState()},
                aggregates={
                    region: counters
                    for region in sorted(_regions(dep))
                    if (counters := tx.aggregates(CONTEST, region))
                },
                decisions=tx.decisions(),
            )
    finally:
        store.close()


def _report_of(entry: AuditRecord) -> UUID | None:
    if entry.object.startswith("report:") and not entry.outcome.startswith("denied"):
        return UUID(entry.object.removeprefix("report:"))
    return None


def check_consistent(snap: Snapshot, dep: Deployment) -> None:
    # The audit log: a valid chain, and its head.
    chained = verify_chain(snap.log)
    assert chained.ok, chained.reason
    assert snap.head == ((snap.log[-1].seq, snap.log[-1].link) if snap.log else (0, GENESIS))

    # A report is stored if and only if it is a leaf of a batch entry in the log (once):
    # every batch's leaves have their reports, and every report is in a batch.
    logged = verify_log(snap.log, snap.reports.values())
    assert logged.ok, logged.reason
    assert logged.tree[0] == len(snap.reports), "reports and the log's tree differ"

    # A decision is stored if and only if its entry is in the log; statuses follow them.
    logged = Counter(
        (e.action, _report_of(e)) for e in snap.log if e.action in ("override", "reject")
    )
    assert logged == Counter((d.action, d.report_id) for d in snap.decisions)
    last_decision = {d.report_id: d.action for d in snap.decisions}
    for report in snap.reports.values():
        decided = last_decision.get(report.report_id)
        if report.status is ReportStatus.OVERRIDDEN:
            assert decided == "override"
        elif report.status is ReportStatus.REJECTED:
            assert decided == "reject"
        elif report.status is not ReportStatus.SUPERSEDED:
            assert decided is None, report

    # Chains: versions without gaps, every version but the newest superseded.
    chains: dict[UUID, list[StoredReport]] = defaultdict(list)
    for report in snap.reports.values():
        chains[report.chain_id].append(report)
    heads = []
    for versions in chains.values():
        versions.sort(key=lambda r: r.version)
        assert [r.version for r in versions] == list(range(1, len(versions) + 1))
        assert all(r.status is ReportStatus.SUPERSEDED for r in versions[:-1])
        assert versions[-1].status is not ReportStatus.SUPERSEDED
        heads.append(versions[-1])

    # Station states follow the newest tally of each TPS, and count what its payload says.
    expected_states: dict[StationKey, tuple[UUID, UUID | None]] = {}
    for head in heads:
        if head.kind != "tally":
            continue
        counted = head.report_id if head.status in COUNTED_STATUSES else None
        expected_states[(CONTEST, head.station)] = (head.chain_id, counted)
    assert {
        k: (s.chain_id, s.counted.report_id if s.counted else None) for k, s in snap.states.items()
    } == expected_states
    for key, state in snap.states.items():
        if state.counted is not None:
            payload = json.loads(snap.reports[state.counted.report_id].payload)
            registered = dep.stations[StationCode.parse(key[1])].registered_voters
            expected = {f"votes.{n}": v for n, v in payload["votes"].items()}
            expected.update(valid=payload["valid"], invalid=payload["invalid"],
                            total=payload["total"], stations=1,
                            registered=registered)  # fmt: skip
            assert dict(state.counted.counters) == expected

    # The aggregates are exactly the sum of the counted station states.
    sums: dict[str, Counter[str]] = defaultdict(Counter)
    regions = _regions(dep)
    for (_, station), state in snap.states.items():
        if state.counted is None:
            continue
        code = StationCode.parse(station)
        for region in regions:
            if RegionCode(region).contains(code):
                sums[region].update(state.counted.counters)
    assert snap.aggregates == {r: {n: v for n, v in c.items() if v} for r, c in sums.items()}


# ---------------------------------------------------------------------------------------
# The use cases, each on fresh TPS
# ---------------------------------------------------------------------------------------

#: (the use case, whether it happened) — built by a scenario after its fault-free set-up
Prepared = tuple[Callable[[], object], Callable[[Snapshot], bool]]


def _stored_with(snap: Snapshot, report_id: UUID, status: ReportStatus) -> bool:
    found = snap.reports.get(report_id)
    return found is not None and found.status is status


def scenario_submit(desk: Desk, stations: list[PollingStation]) -> Prepared:
    report = _tally(stations[0], (120, 80))
    return (
        lambda: desk.submit(report, principal=SYSTEM),
        lambda snap: _stored_with(snap, report.report_id, ReportStatus.ACCEPTED),
    )


def scenario_submit_flagged(desk: Desk, stations: list[PollingStation]) -> Prepared:
    report = _tally(stations[0], (120, 80), flagged=True)
    return (
        lambda: desk.submit(report, principal=SYSTEM),
        lambda snap: _stored_with(snap, report.report_id, ReportStatus.FLAGGED),
    )


def scenario_correction(desk: Desk, stations: list[PollingStation]) -> Prepared:
    v1 = _tally(stations[0], (120, 80))
    desk.submit(v1, principal=SYSTEM)
    v2 = _tally(stations[0], (125, 75), amends=v1, version=1)

    def done(snap: Snapshot) -> bool:
        return _stored_with(snap, v2.report_id, ReportStatus.ACCEPTED) and _stored_with(
            snap, v1.report_id, ReportStatus.SUPERSEDED
        )

    return lambda: desk.submit(v2, principal=SYSTEM), done


def scenario_submit_many(desk: Desk, stations: list[PollingStation]) -> Prepared:
    a, b, c = stations[:3]
    old = _tally(c, (10, 20))
    desk.submit(old, principal=SYSTEM)
    batch: list[Any] = [
        _tally(a, (100, 50)),
        _tally(b, (60, 60), flagged=True),
        old,  # a duplicate: nothing written for it
        _tally(c, (11, 19), amends=old, version=1),
        _situation(a),
        attrs.evolve(old, invalid=5, total=old.total + 1),  # same id, other content
    ]
    expected = ["accepted", "flagged", "duplicate", "accepted", "accepted", "report.conflict"]

    def run() -> object:
        result = desk.submit_many(batch, principal=SYSTEM)
        got = [x.status if isinstance(x, Receipt) else x.code for x in result.items]
        if got != expected:  # a retried transaction gives the same answers
            assert {x.code for x in result.items if not isinstance(x, Receipt)} == {
                "report.conflict"
            } and got[0] in ("accepted", "duplicate"), got
        return result

    def done(snap: Snapshot) -> bool:
        return all(
            _stored_with(snap, r.report_id, s)
            for r, s in (
                (batch[0], ReportStatus.ACCEPTED),
                (batch[1], ReportStatus.FLAGGED),
                (batch[3], ReportStatus.ACCEPTED),
                (batch[4], ReportStatus.ACCEPTED),
                (old, ReportStatus.SUPERSEDED),
            )
        )

    return run, done


def scenario_override(desk: Desk, stations: list[PollingStation]) -> Prepared:
    report = _tally(stations[0], (120, 80), flagged=True)
    desk.submit(report, principal=SYSTEM)
    return (
        lambda: desk.override(report.report_id, principal=OFFICER, reason="dicek dengan C1"),
        lambda snap: _stored_with(snap, report.report_id, ReportStatus.OVERRIDDEN),
    )


def scenario_reject(desk: Desk, stations: list[PollingStation]) -> Prepared:
    report = _tally(stations[0], (120, 80))
    desk.submit(report, principal=SYSTEM)
    return (
        lambda: desk.reject(report.report_id, principal=OFFICER, reason="salah TPS"),
        lambda snap: _stored_with(snap, report.report_id, ReportStatus.REJECTED),
    )


SCENARIOS: dict[str, tuple[int, Callable[[Desk, list[PollingStation]], Prepared]]] = {
    "submit": (1, scenario_submit),
    "submit-flagged": (1, scenario_submit_flagged),
    "correction": (1, scenario_correction),
    "submit_many": (3, scenario_submit_many),
    "override": (1, scenario_override),
    "reject": (1, scenario_reject),
}
FAULTS = {"injected": injected, "lost-race": lost_race}


def run_with_every_fault(url: str, scenario: str, fault: str) -> list[str]:
    """Run the scenario with a fault at step 0, 1, 2, … until it runs without meeting
    one; check the store after each run. The steps of the fault-free run."""
    per_run, prepare = SCENARIOS[scenario]
    make = FAULTS[fault]
    dep = fault_deployment()
    pool = iter(sorted(dep.stations.values(), key=lambda s: s.code))
    storage = FaultyStorage(url)
    desk = Desk.open(dep, storage=storage)
    try:
        check_consistent(snapshot(url, dep), dep)
        for k in range(500):
            run, done = prepare(desk, [next(pool) for _ in range(per_run)])
            before = snapshot(url, dep)
            storage.faults.arm(k, make)
            raised: BaseException | None = None
            try:
                run()
            except (Injected, SipantauError) as e:
                raised = e
            finally:
                hit = storage.faults.disarm()
            after = snapshot(url, dep)
            check_consistent(after, dep)
            if hit is None:  # no step k: the whole path ran, fault-free
                assert raised is None, raised
                assert done(after)
                assert k > 5  # the path has steps
                return storage.faults.steps
            where = f"fault at step {k} ({hit})"
            if fault == "injected":
                assert isinstance(raised, Injected), where
                # all or nothing; all only if the writing transaction had committed
                if after != before:
                    assert hit == "after commit" and done(after), where
            elif raised is None:
                assert done(after), where  # the desk ran the transaction again
            else:
                assert after == before or done(after), where
        raise AssertionError("the use case never ran without a fault")
    finally:
        desk.close()


def _url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'desk.db'}"
    if request.param == "postgresql-bulk":
        from sipantau_adapters.storage.sql import bulk

        monkeypatch.setattr(bulk, "_COPY_FROM", 2)
        monkeypatch.setattr(bulk, "_STAGE_FROM", 2)
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("postgresql-bulk", marks=pytest.mark.postgres),
    ]
)
def any_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database for the use case; ``postgresql-bulk``: with the bulk paths (``COPY``,
    staged station locks, plain inserts of new station rows) from two rows on, so that
    the scenarios' small batches take them."""
    return _url(request, tmp_path, monkeypatch)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def statement_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A database whose every write statement the faults can reach (``COPY`` goes past
    SQLAlchemy, so the bulk paths are not among these)."""
    return _url(request, tmp_path, monkeypatch)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_fault_at_any_step_leaves_the_store_consistent(
    any_url: str, scenario: str, fault: str
) -> None:
    steps = run_with_every_fault(any_url, scenario, fault)
    # the faults did reach inside the write, and the commit
    assert any(s.startswith("write: ") for s in steps)
    assert "commit" in steps and "audit_head" in steps


# ---------------------------------------------------------------------------------------
# Inside one write: a failure between its statements
# ---------------------------------------------------------------------------------------


def _batch(head: tuple[int, str], *, with_reports: bool) -> WriteBatch:
    report = _stored()
    key = (CONTEST, report.station)
    return WriteBatch(
        reports=[report] if with_reports else [],
        stations={key: StationState(report.chain_id)},
        aggregates={(CONTEST, "16.73", "total"): 5, (CONTEST, "16.73.01", "total"): 5},
        decisions=[Decision(report.report_id, "reject", "officer-1", "salah", T0)],
        releases=[ReleaseRecord("16.73", None, "coord", T0)],
        audit=chain(head, [AuditRecord(T0, "p", "system", "submit", "x", "ok")] * 2),
        device_keys=[DeviceKeyRecord("k" * 32, "M1", b"\x01" * 32, "coord", T0)],
    )


def _everything(store: SQLStorage) -> tuple[Any, ...]:
    with store.transaction() as tx:
        return (
            tx.reports(ReportFilter(heads_only=False)),
            tx.station_states([(CONTEST, "1673011001001")]),
            tx.aggregates(CONTEST, "16.73"),
            tx.aggregates(CONTEST, "16.73.01"),
            tx.decisions(),
            tx.releases(),
            tx.audit(),
            tx.audit_head(),
            tx.device_keys(),
        )


@pytest.mark.parametrize("with_reports", [True, False], ids=["savepoint", "no-savepoint"])
def test_a_write_failing_between_its_statements_leaves_nothing_of_its_batch(
    statement_url: str, with_reports: bool
) -> None:
    """Whatever statement of a write fails, nothing of its batch remains, even when the
    caller swallows the error and leaves the transaction normally: with reports in the
    batch, a savepoint undoes it and the transaction goes on; without, the transaction
    is rolled back instead of committed (``storage.failed``), unless the failure came
    before anything of the batch was written."""
    storage = FaultyStorage(statement_url)
    try:
        assert _everything(storage) == ([], {(CONTEST, "1673011001001"): StationState()},
                                        {}, {}, [], [], [], (0, GENESIS), [])  # fmt: skip
        invalid = 0  # what the transactions' other writes committed
        hits: list[str] = []
        for k in range(100):
            committed = False
            try:
                with storage.transaction() as tx:
                    tx.write(WriteBatch(aggregates={(CONTEST, "16.73", "invalid"): 2}))
                    batch = _batch(tx.audit_head(lock=True), with_reports=with_reports)
                    storage.faults.arm(k, injected)
                    with suppress(Injected):
                        tx.write(batch)
                    hit = storage.faults.disarm()
                committed = True
            except StorageError as e:
                assert e.code == "storage.failed", e
            if committed:
                invalid += 2
            now = _everything(storage)
            if hit is None:  # the write ran whole
                assert committed
                report = batch.reports[0] if with_reports else None
                assert now == (
                    [report] if report else [],
                    {(CONTEST, "1673011001001"): batch.stations[(CONTEST, "1673011001001")]},
                    {"total": 5, "invalid": invalid},
                    {"total": 5},
                    batch.decisions,
                    batch.releases,
                    batch.audit,
                    (2, batch.audit[-1].link),
                    batch.device_keys,
                )
                break
            hits.append(hit)
            if with_reports:
                assert committed, hit
            else:
                assert committed == (hit in ("write", "write: UPDATE audit_head SET")), hit
            assert now == ([], {(CONTEST, "1673011001001"): StationState()},
                           {"invalid": invalid} if invalid else {}, {}, [], [], [],
                           (0, GENESIS), []), hit  # fmt: skip
        else:  # pragma: no cover
            raise AssertionError("the write never ran without a fault")
        for table in ("reports" if with_reports else "audit_head", "aggregates", "audit_log",
                      "device_keys"):  # fmt: skip
            assert any(table in h for h in hits), hits
    finally:
        storage.close()

"""Contract suites that every storage backend must pass: ours and third parties'.

Subclass a contract in your own test module and provide the fixture it names::

    from sipantau_core.testing.contracts import DeskContract, StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self):
            store = MyStorage("mydb://…")      # a fresh, empty store
            yield store
            store.close()

    class TestMyDesk(DeskContract):
        @pytest.fixture
        def storage_url(self):
            return "mydb://…"                  # a fresh, empty store per test

``StorageContract`` speaks to the port directly; ``DeskContract`` runs the desk's use
cases on top of it (through ``Desk.open(..., storage=storage_url)``, so the plugin
that serves the URL must be installed or passed in ``desk_plugins``).
"""

from __future__ import annotations

import json
import multiprocessing
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs
import pytest

from sipantau_core.access import Principal, Role
from sipantau_core.audit import GENESIS, chain, verify_chain
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk, Receipt
from sipantau_core.domain import (
    Amends,
    Candidate,
    Contest,
    Incident,
    Monitor,
    PollingStation,
    RegionCode,
    SecurityStatus,
    SituationReport,
    Stage,
    TallyReport,
    VoterCounts,
)
from sipantau_core.errors import ConflictError, PermissionDenied, UnknownEntityError
from sipantau_core.ports import (
    AuditRecord,
    CountedTally,
    Decision,
    DeviceKeyRecord,
    MonitorRecord,
    NotificationRecord,
    NotificationStatus,
    ReleaseRecord,
    ReportFilter,
    ReportStatus,
    StationState,
    Storage,
    StoredReport,
    TokenRecord,
    WriteBatch,
)
from sipantau_core.testing.contracts_tree import DeskLogTreeContract, LogTreeContract
from sipantau_core.testing.media_contract import MediaContract
from sipantau_core.testing.reads_contract import ReadsContract

__all__ = ["DeskContract", "StorageContract", "build_deployment", "small_deployment"]

T0 = datetime(2024, 11, 27, 6, 0, tzinfo=UTC)


def _notification(
    n: int,
    *,
    channel: str = "telegram",
    recipient: str = "-1001",
    at: datetime = T0,
    key: str | None = None,
) -> NotificationRecord:
    return NotificationRecord(
        dedupe_key=key or f"{n:064x}",
        event=f"incident:{n}",
        rule="kejadian-berat",
        channel=channel,
        recipient=recipient,
        kind="incident",
        payload=json.dumps({"n": n}),
        created_at=at,
        next_attempt_at=at + timedelta(minutes=1),
    )


def _stored(
    *,
    report_id: uuid.UUID | None = None,
    chain_id: uuid.UUID | None = None,
    version: int = 1,
    station: str = "1673011001001",
    kind: str = "tally",
    status: ReportStatus = ReportStatus.ACCEPTED,
    received_at: datetime = T0,
    payload: dict[str, Any] | None = None,
) -> StoredReport:
    rid = report_id or uuid.uuid4()
    return StoredReport(
        report_id=rid,
        chain_id=chain_id or rid,
        version=version,
        kind=kind,
        station=station,
        contest="walikota" if kind == "tally" else None,
        monitor="LLG-0001",
        stage="penghitungan" if kind == "tally" else "pembukaan",
        observed_at=received_at - timedelta(minutes=5),
        received_at=received_at,
        digest=f"{rid.int:064x}"[-64:],
        payload=json.dumps(payload or {"x": str(rid)}),
        status=status,
        verdict="[]",
        submitted_by="tester",
    )


def _write_in_child(storage: Storage, report: StoredReport) -> None:
    """In a forked child: drop the parent's connections, write ``report``, let go."""
    storage.after_fork()
    try:
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[report]))
    finally:
        storage.close()


class StorageContract(MediaContract, LogTreeContract, ReadsContract):
    """The storage port's contract. Provide a ``storage`` fixture: a fresh, empty
    :class:`~sipantau_core.ports.Storage`. Set ``persistent = True`` and provide
    ``reopen(storage) -> Storage`` for backends that keep data across instances. The
    media part is :class:`~sipantau_core.testing.media_contract.MediaContract`."""

    persistent = False

    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        raise pytest.UsageError("a StorageContract subclass must provide a storage fixture")

    def reopen(self, storage: Storage) -> Storage:
        return storage

    # -- reports -------------------------------------------------------------------------

    def test_write_then_read_a_report(self, storage: Storage) -> None:
        report = _stored()
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[report]))
        with storage.transaction() as tx:
            assert tx.get_reports([report.report_id, uuid.uuid4()]) == {report.report_id: report}
            assert tx.chain_heads([report.chain_id]) == {report.chain_id: report}

    def test_reads_inside_the_transaction_see_its_writes(self, storage: Storage) -> None:
        report = _stored()
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[report]))
            assert tx.get_reports([report.report_id]) == {report.report_id: report}

    def test_times_keep_their_instant(self, storage: Storage) -> None:
        wita = datetime(2024, 11, 27, 9, 30, 15, 123456, tzinfo=UTC).astimezone()
        report = _stored(received_at=wita)
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[report]))
        with storage.transaction() as tx:
            got = tx.get_reports([report.report_id])[report.report_id]
        assert got.received_at == wita
        assert got.observed_at == report.observed_at
        assert got.received_at.tzinfo is not None

    def test_a_duplicate_report_id_is_refused_and_nothing_of_the_batch_is_written(
        self, storage: Storage
    ) -> None:
        first = _stored()
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[first]))
        other = _stored()
        again = attrs.evolve(first, payload='{"other": 1}')
        with pytest.raises(ConflictError), storage.transaction() as tx:
            tx.write(
                WriteBatch(
                    reports=[other, again],
                    aggregates={("walikota", "16.73", "total"): 5},
                    audit=chain(
                        (0, GENESIS), [AuditRecord(T0, "p", "system", "submit", "x", "ok")]
                    ),
                )
            )
        with storage.transaction() as tx:
            assert tx.get_reports([other.report_id]) == {}
            assert tx.get_reports([first.report_id])[first.report_id].payload == first.payload
            assert tx.aggregates("walikota", "16.73") == {}
            assert tx.audit() == []

    def test_a_duplicate_version_is_refused(self, storage: Storage) -> None:
        first = _stored()
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[first]))
        twin = _stored(chain_id=first.chain_id, version=1)
        with pytest.raises(ConflictError), storage.transaction() as tx:
            tx.write(WriteBatch(reports=[twin]))
        with storage.transaction() as tx:
            assert tx.get_reports([twin.report_id]) == {}

    def test_versions_and_statuses(self, storage: Storage) -> None:
        v1 = _stored()
        v2 = _stored(chain_id=v1.chain_id, version=2, received_at=T0 + timedelta(minutes=1))
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[v1]))
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[v2], statuses={v1.report_id: ReportStatus.SUPERSEDED}))
        with storage.transaction() as tx:
            assert tx.chain_heads([v1.chain_id])[v1.chain_id] == v2
            got = tx.get_reports([v1.report_id])[v1.report_id]
            assert got.status is ReportStatus.SUPERSEDED
            assert tx.reports(ReportFilter()) == [v2]
            assert tx.reports(ReportFilter(heads_only=False)) == [
                attrs.evolve(v1, status=ReportStatus.SUPERSEDED),
                v2,
            ]

    def test_report_filters(self, storage: Storage) -> None:
        a = _stored(station="1673011001001")
        b = _stored(station="1673021002003", received_at=T0 + timedelta(seconds=1))
        c = _stored(station="1673021002004", kind="situation", received_at=T0 + timedelta(2))
        d = _stored(
            station="1671011001001", status=ReportStatus.FLAGGED, received_at=T0 + timedelta(3)
        )
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[a, b, c, d]))
        with storage.transaction() as tx:
            assert tx.reports(ReportFilter(region="16.73")) == [a, b, c]
            assert tx.reports(ReportFilter(region="16.73.02")) == [b, c]
            assert tx.reports(ReportFilter(region="1673021002003")) == [b]
            assert tx.reports(ReportFilter(region="16.73.02.1002")) == [b, c]
            assert tx.reports(ReportFilter(station="1673011001001")) == [a]
            assert tx.reports(ReportFilter(kind="situation")) == [c]
            assert tx.reports(ReportFilter(contest="walikota", region="16")) == [a, b, d]
            assert tx.reports(ReportFilter(statuses=frozenset({ReportStatus.FLAGGED}))) == [d]
            # without payloads: the same rows, each payload left out or whole
            lean = tx.reports(ReportFilter(region="16.73", payload=False))
            assert [attrs.evolve(r, payload="") for r in lean] == [
                attrs.evolve(r, payload="") for r in (a, b, c)
            ]
            assert all(
                r.payload in ("", full.payload) for r, full in zip(lean, (a, b, c), strict=True)
            )

    def test_a_failed_transaction_writes_nothing(self, storage: Storage) -> None:
        report = _stored()

        class Boom(Exception):
            pass

        def write_then_fail() -> None:
            with storage.transaction() as tx:
                tx.write(
                    WriteBatch(
                        reports=[report],
                        aggregates={("walikota", "16.73", "total"): 7},
                        stations={("walikota", report.station): StationState(report.chain_id)},
                    )
                )
                raise Boom

        with pytest.raises(Boom):
            write_then_fail()
        with storage.transaction() as tx:
            assert tx.get_reports([report.report_id]) == {}
            assert tx.aggregates("walikota", "16.73") == {}
            assert tx.station_states([("walikota", report.station)]) == {
                ("walikota", report.station): StationState()
            }

    # -- stations and aggregates ---------------------------------------------------------

    def test_station_states(self, storage: Storage) -> None:
        key = ("walikota", "1673011001001")
        chain = uuid.uuid4()
        counted = CountedTally(chain, 1, {"votes.1": 3, "valid": 3, "total": 4})
        with storage.transaction() as tx:
            assert tx.station_states([key], lock=True) == {key: StationState()}
            tx.write(WriteBatch(stations={key: StationState(chain, counted)}))
        with storage.transaction() as tx:
            assert tx.station_states([key]) == {key: StationState(chain, counted)}
            tx.write(WriteBatch(stations={key: StationState(chain, None)}))
        with storage.transaction() as tx:
            assert tx.station_states([key], lock=True) == {key: StationState(chain, None)}

    def test_station_states_of_a_whole_region(self, storage: Storage) -> None:
        """Many keys at once (a count of a province): the states asked for, no others."""
        written = {
            ("walikota", f"16730{d}100{v}{n:03d}"): StationState(
                uuid.uuid4(), CountedTally(uuid.uuid4(), 1, {"valid": n})
            )
            for d in (1, 2)
            for v in (1, 2)
            for n in range(1, 1100)
        }
        other = ("bupati", "1673011001001")
        with storage.transaction() as tx:
            tx.write(WriteBatch(stations={**written, other: StationState(uuid.uuid4(), None)}))
        # every other one (others in between are not asked for), and one never written
        keys = [*sorted(written)[5:-5:2], ("walikota", "1673011001999")]
        with storage.transaction() as tx:
            found = tx.station_states(keys)
        assert found == {k: written.get(k, StationState()) for k in keys}

    def test_aggregate_deltas_add_up(self, storage: Storage) -> None:
        for delta in (5, 7, -2):
            with storage.transaction() as tx:
                tx.write(
                    WriteBatch(
                        aggregates={
                            ("walikota", "16.73", "votes.1"): delta,
                            ("walikota", "16.73", "valid"): 1,
                            ("gubernur", "16.73", "valid"): 100,
                        }
                    )
                )
        with storage.transaction() as tx:
            assert tx.aggregates("walikota", "16.73") == {"votes.1": 10, "valid": 3}
            assert tx.aggregates("gubernur", "16.73") == {"valid": 300}
            assert tx.aggregates("walikota", "16.73.01") == {}
            # several regions in one read: those with a count, by region
            assert tx.aggregates_many("walikota", ["16.73.01", "16.73", "16.73"]) == {
                "16.73": {"votes.1": 10, "valid": 3}
            }
            assert tx.aggregates_many("gubernur", []) == {}

    # -- records -------------------------------------------------------------------------

    def test_decisions_releases_and_audit(self, storage: Storage) -> None:
        report = _stored()
        decision = Decision(report.report_id, "reject", "officer-1", "foto C1 tidak jelas", T0)
        release = ReleaseRecord("16.73", None, "coord", T0)
        entries = [
            AuditRecord(T0, f"p{i}", "system", "submit", f"obj{i}", "ok", region="16.73")
            for i in range(3)
        ]
        with storage.transaction() as tx:
            assert tx.audit_head(lock=True) == (0, GENESIS)
            first = chain((0, GENESIS), entries[:2])
            tx.write(WriteBatch(reports=[report], decisions=[decision], audit=first))
        with storage.transaction() as tx:
            head = tx.audit_head(lock=True)
            assert head == (2, first[-1].link)
            tx.write(WriteBatch(releases=[release], audit=chain(head, entries[2:])))
        with storage.transaction() as tx:
            assert tx.decisions(report.report_id) == [decision]
            assert tx.decisions() == [decision]
            assert tx.decisions(uuid.uuid4()) == []
            assert tx.releases() == [release]
            log = tx.audit()
            assert [e.principal for e in log] == ["p0", "p1", "p2"]
            assert [e.seq for e in log] == [1, 2, 3]
            assert all(e.region == "16.73" for e in log)
            assert verify_chain(log).ok
            assert tx.audit_head() == (3, log[-1].link)
            assert tx.audit(after=1) == log[1:]
            assert tx.audit(limit=1) == log[:1]

    def test_an_audit_sequence_taken_already_is_a_race(self, storage: Storage) -> None:
        entry = AuditRecord(T0, "p", "system", "submit", "x", "ok")
        with storage.transaction() as tx:
            tx.write(WriteBatch(audit=chain((0, GENESIS), [entry])))
        stale = chain((0, GENESIS), [attrs.evolve(entry, principal="q")])
        with pytest.raises(ConflictError) as info, storage.transaction() as tx:
            tx.write(WriteBatch(audit=stale))
        assert info.value.code == "storage.race"
        with storage.transaction() as tx:
            assert [e.principal for e in tx.audit()] == ["p"]

    def test_device_keys_tokens_and_monitors(self, storage: Storage) -> None:
        key = DeviceKeyRecord("a" * 32, "LLG-0001", bytes(range(32)), "officer-1", T0)
        other = DeviceKeyRecord("b" * 32, "LLG-0002", bytes(32), "officer-1", T0)
        token = TokenRecord("c" * 64, "officer-1", "officer", "16.73.01", "coord", T0)
        monitor = MonitorRecord(
            "LLG-0001", "1673011001001", b"\x01sealed", None, b"\x00", "sys", T0
        )
        with storage.transaction() as tx:
            tx.write(WriteBatch(device_keys=[key, other], tokens=[token], monitors=[monitor]))
        revoked = attrs.evolve(key, revoked_at=T0 + timedelta(hours=1), revoked_by="officer-1")
        with storage.transaction() as tx:
            tx.write(WriteBatch(device_keys=[revoked]))
        with storage.transaction() as tx:
            assert tx.device_keys(key_ids=["a" * 32]) == [revoked]
            assert tx.device_keys(monitor="LLG-0002") == [other]
            assert sorted(k.key_id for k in tx.device_keys()) == ["a" * 32, "b" * 32]
            assert tx.device_keys(key_ids=[]) == []
            assert tx.token("c" * 64) == token
            assert tx.token("d" * 64) is None
            assert tx.monitors() == {"LLG-0001": monitor}
            assert tx.monitors(["LLG-0001", "LLG-0009"]) == {"LLG-0001": monitor}

    # -- the notification queue ----------------------------------------------------------

    def test_notifications_are_queued_once_by_key_in_order(self, storage: Storage) -> None:
        a, b, c = _notification(1), _notification(2), _notification(3)
        with storage.transaction() as tx:
            tx.write(WriteBatch(notifications=[a, b, attrs.evolve(a, rule="other")]))
        with storage.transaction() as tx:
            # the same key again: skipped, not an error, and the rest of the batch is written
            tx.write(WriteBatch(notifications=[attrs.evolve(b, payload="{}"), c]))
        with storage.transaction() as tx:
            found = tx.notifications()
        assert [n.dedupe_key for n in found] == [a.dedupe_key, b.dedupe_key, c.dedupe_key]
        assert found[0] == attrs.evolve(a, seq=found[0].seq)  # the first write wins
        assert found[1].payload == b.payload
        assert 0 < found[0].seq < found[1].seq < found[2].seq

    def test_notification_filters_and_times(self, storage: Storage) -> None:
        wita = datetime(2024, 11, 27, 9, 30, 15, 123456, tzinfo=UTC).astimezone()
        a = _notification(1, at=wita)
        b = _notification(2, channel="email", recipient="kasubid@example.org")
        c = _notification(3, at=T0 + timedelta(hours=1))
        with storage.transaction() as tx:
            tx.write(WriteBatch(notifications=[a, b, c]))
        pending = [NotificationStatus.PENDING]
        with storage.transaction() as tx:
            got = tx.notifications(keys=[a.dedupe_key])[0]
            assert got.created_at == wita
            assert got.created_at.tzinfo is not None
            assert got.next_attempt_at == wita + timedelta(minutes=1)
            keys = [n.dedupe_key for n in tx.notifications(statuses=pending)]
            assert keys == [a.dedupe_key, b.dedupe_key, c.dedupe_key]
            assert tx.notifications(statuses=[NotificationStatus.SENT]) == []
            assert tx.notifications(statuses=[]) == []
            assert [n.channel for n in tx.notifications(channel="email")] == ["email"]
            due = tx.notifications(due=T0 + timedelta(minutes=1), lock=True)
            assert [n.dedupe_key for n in due] == [b.dedupe_key]  # a: 09:30 UTC, c: 07:01
            assert len(tx.notifications(limit=2)) == 2
            assert tx.notifications(keys=[c.dedupe_key, a.dedupe_key, "x" * 64]) == [
                tx.notifications(keys=[a.dedupe_key])[0],
                tx.notifications(keys=[c.dedupe_key])[0],
            ]
            assert tx.notifications(keys=[]) == []

    def test_notification_delivery_state_is_replaced_by_key(self, storage: Storage) -> None:
        a, b = _notification(1), _notification(2)
        with storage.transaction() as tx:
            tx.write(WriteBatch(notifications=[a, b]))
            queued = tx.notifications(keys=[a.dedupe_key])[0]
        sent = attrs.evolve(
            a,
            status=NotificationStatus.SENT,
            attempts=1,
            sent_at=T0 + timedelta(minutes=2),
            message_id="msg_1",
        )
        given_up = attrs.evolve(
            b,
            status=NotificationStatus.GIVEN_UP,
            attempts=3,
            last_error="telegram: 403 bot was kicked",
            given_up_reason="permanent: telegram: 403 bot was kicked",
        )
        with storage.transaction() as tx:
            tx.write(WriteBatch(notification_updates=[sent, given_up]))
        with storage.transaction() as tx:
            assert tx.notifications(keys=[a.dedupe_key]) == [attrs.evolve(sent, seq=queued.seq)]
            assert tx.notifications(statuses=[NotificationStatus.GIVEN_UP])[0].given_up_reason
            assert tx.notifications(statuses=[NotificationStatus.PENDING]) == []

    def test_an_update_of_a_notification_not_queued_writes_nothing(self, storage: Storage) -> None:
        a = _notification(1)
        with pytest.raises(ConflictError) as info, storage.transaction() as tx:
            tx.write(
                WriteBatch(
                    reports=[_stored()],
                    notifications=[a],
                    notification_updates=[_notification(2)],
                )
            )
        assert info.value.code == "storage.integrity"
        with storage.transaction() as tx:
            assert tx.notifications() == []
            assert tx.reports(ReportFilter()) == []

    def test_notifications_are_written_with_the_reports_or_not_at_all(
        self, storage: Storage
    ) -> None:
        first = _stored()
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[first]))
        with pytest.raises(ConflictError), storage.transaction() as tx:
            tx.write(WriteBatch(reports=[first], notifications=[_notification(1)]))
        with storage.transaction() as tx:
            assert tx.notifications() == []

    def test_multi_process_says_whether_a_forked_child_writes_for_all(
        self, storage: Storage
    ) -> None:
        """``multi_process`` is true exactly when what a child forked from this process
        writes (after ``after_fork()``) is there for this process too; and this process's
        own handle goes on working after the fork."""
        if "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover
            pytest.skip("this platform cannot fork")
        with storage.transaction() as tx:  # the parent has used its handle before
            tx.write(WriteBatch(reports=[_stored()]))
        report = _stored()
        child = multiprocessing.get_context("fork").Process(
            target=_write_in_child, args=(storage, report)
        )
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0, "the child could not write through after_fork()"
        with storage.transaction() as tx:
            seen = tx.get_reports([report.report_id])
        assert (report.report_id in seen) is bool(storage.multi_process)
        mine = _stored()
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[mine]))
        with storage.transaction() as tx:
            assert tx.get_reports([mine.report_id]) == {mine.report_id: mine}

    def test_data_survives_reopening(self, storage: Storage) -> None:
        if not self.persistent:
            pytest.skip("this backend keeps nothing across instances (by design)")
        report = _stored()
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[report], aggregates={("walikota", "16", "total"): 3}))
        again = self.reopen(storage)
        try:
            with again.transaction() as tx:
                assert tx.get_reports([report.report_id]) == {report.report_id: report}
                assert tx.aggregates("walikota", "16") == {"total": 3}
        finally:
            if again is not storage:
                again.close()


# ---------------------------------------------------------------------------------------
# The desk on top of a backend
# ---------------------------------------------------------------------------------------


def build_deployment(
    stations: Iterable[PollingStation],
    *,
    region: RegionCode | str = "16.73",
    contest: Contest | None = None,
    monitor_id: Callable[[int, PollingStation], str] = lambda i, s: f"LLG-{i:04d}",
    id: str = "test",
    name: str | None = None,
    election_day: date = date(2024, 11, 27),
) -> Deployment:
    """A deployment for tests: ``stations``, one monitor each (ids from ``monitor_id``,
    ``LLG-0001`` … by default, numbered from 1), and one contest (a two-pair mayor's race
    of ``region`` by default)."""
    listed = list(stations)
    race = contest or Contest(
        id="walikota",
        region=region,
        candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2")],
    )
    monitors = [Monitor(id=monitor_id(i, s), station=s.code) for i, s in enumerate(listed, 1)]
    return Deployment(
        id=id,
        name=name or f"Desk {id}",
        region=RegionCode.parse(region),
        election_day=election_day,
        stations={s.code: s for s in listed},
        contests={race.id: race},
        monitors={m.id: m for m in monitors},
    )


def small_deployment() -> Deployment:
    """Three TPS in two districts of Kota Lubuklinggau, a two-pair mayor's race."""
    return build_deployment(
        [
            PollingStation(code="1673011001001", registered_voters=400),
            PollingStation(code="1673011001002", registered_voters=350),
            PollingStation(code="1673021002001", registered_voters=500),
        ],
        id="kecil",
        name="Desk kecil",
    )


SYSTEM = Principal(id="import", role=Role.SYSTEM)
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")
OFFICER = Principal(id="officer-1", role=Role.OFFICER, scope="16.73.01")


def _monitor(n: int) -> Principal:
    codes = {1: "1673011001001", 2: "1673011001002", 3: "1673021002001"}
    return Principal(id=f"LLG-000{n}", role=Role.MONITOR, scope=codes[n])


def _tally(
    n: int,
    votes: tuple[int, int],
    invalid: int = 5,
    *,
    amends: TallyReport | None = None,
    version: int = 1,
    total: int | None = None,
) -> TallyReport:
    codes = {1: "1673011001001", 2: "1673011001002", 3: "1673021002001"}
    valid = sum(votes)
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=f"LLG-000{n}",
        station=codes[n],
        contest="walikota",
        observed_at=T0 + timedelta(hours=8),
        votes={1: votes[0], 2: votes[1]},
        valid=valid,
        invalid=invalid,
        total=valid + invalid if total is None else total,
        voted=VoterCounts(valid + invalid, 0, 0) if total is None else None,
        amends=Amends(amends.report_id, version) if amends is not None else None,
    )


class DeskContract(DeskLogTreeContract):
    """The desk's use cases on a backend. Provide a ``storage_url`` fixture (a fresh,
    empty store per test); ``desk_plugins`` may list plugins to pass to ``Desk.open``."""

    desk_plugins: tuple[object, ...] = ()

    @pytest.fixture
    def storage_url(self) -> str:
        raise pytest.UsageError("a DeskContract subclass must provide a storage_url fixture")

    @pytest.fixture
    def desk(self, storage_url: str) -> Iterator[Desk]:
        desk = Desk.open(small_deployment(), storage=storage_url, plugins=self.desk_plugins)
        yield desk
        desk.close()

    def test_accept_flag_and_count(self, desk: Desk) -> None:
        a = desk.submit(_tally(1, (100, 200)), principal=_monitor(1))
        b = desk.submit(_tally(2, (50, 60), total=500), principal=_monitor(2))
        assert (a.status, b.status) == ("accepted", "flagged")
        assert {v.code for v in b.violations} >= {"total.sum_mismatch"}
        city = desk.tally("16.73", principal=COORDINATOR)
        assert (city.votes, city.valid, city.invalid, city.total) == ({1: 100, 2: 200}, 300, 5, 305)
        assert (city.stations_counted, city.stations_expected) == (1, 3)
        assert (city.registered_covered, city.registered_expected) == (400, 1250)
        for region in ("16.73.01", "16.73.01.1001", "1673011001001"):
            assert desk.tally(region, principal=COORDINATOR).total == 305
        assert desk.tally("16", principal=SYSTEM).total == 305
        with pytest.raises(PermissionDenied):
            desk.tally("16", principal=COORDINATOR)  # above the coordinator's region
        assert desk.tally("16.73.02", principal=COORDINATOR).total == 0
        assert desk.tally("1673011001002", principal=COORDINATOR).total == 0

    def test_a_duplicate_changes_nothing(self, desk: Desk) -> None:
        report = _tally(1, (100, 200))
        first = desk.submit(report, principal=_monitor(1))
        again = desk.submit(report, principal=_monitor(1))
        assert again.status == "duplicate"
        assert again.first_status == "accepted"
        assert (again.report_id, again.version, again.received_at) == (
            first.report_id,
            first.version,
            first.received_at,
        )
        assert desk.tally("16.73", principal=COORDINATOR).total == 305

    def test_same_id_other_content_is_a_conflict(self, desk: Desk) -> None:
        report = _tally(1, (100, 200))
        desk.submit(report, principal=_monitor(1))
        changed = attrs.evolve(report, invalid=6, total=306)
        with pytest.raises(ConflictError) as info:
            desk.submit(changed, principal=_monitor(1))
        assert info.value.code == "report.conflict"
        assert desk.tally("16.73", principal=COORDINATOR).total == 305

    def test_corrections_replace_and_stale_ones_conflict(self, desk: Desk) -> None:
        v1 = _tally(1, (100, 200))
        desk.submit(v1, principal=_monitor(1))
        v2 = _tally(1, (110, 190), amends=v1, version=1)
        r2 = desk.submit(v2, principal=_monitor(1))
        assert (r2.status, r2.version, r2.chain_id) == ("accepted", 2, v1.report_id)
        city = desk.tally("16.73", principal=COORDINATOR)
        assert (city.votes, city.stations_counted) == ({1: 110, 2: 190}, 1)
        stale = _tally(1, (120, 180), amends=v1, version=1)
        with pytest.raises(ConflictError) as info:
            desk.submit(stale, principal=_monitor(1))
        assert info.value.code == "report.stale_version"
        flagged = _tally(1, (130, 170), amends=v2, version=2, total=999)
        assert desk.submit(flagged, principal=_monitor(1)).status == "flagged"
        assert desk.tally("16.73", principal=COORDINATOR).stations_counted == 0
        rows = desk.reports("1673011001001", principal=COORDINATOR, heads_only=False)
        assert [s.version for s, _ in rows] == [1, 2, 3]

    def test_a_second_chain_for_a_station_conflicts(self, desk: Desk) -> None:
        desk.submit(_tally(1, (100, 200)), principal=_monitor(1))
        with pytest.raises(ConflictError) as info:
            desk.submit(_tally(1, (1, 2)), principal=_monitor(1))
        assert info.value.code == "report.station_already_reported"

    def test_override_and_reject_are_recorded(self, desk: Desk) -> None:
        bad = desk.submit(_tally(1, (100, 200), total=999), principal=_monitor(1))
        assert desk.tally("16.73", principal=COORDINATOR).total == 0
        over = desk.override(bad.report_id, principal=OFFICER, reason="dicek dengan foto C1")
        assert over.status == "overridden"
        assert desk.tally("16.73", principal=COORDINATOR).total == 999
        with pytest.raises(ConflictError):
            desk.override(bad.report_id, principal=OFFICER, reason="lagi")
        gone = desk.reject(bad.report_id, principal=OFFICER, reason="salah TPS")
        assert gone.status == "rejected"
        assert desk.tally("16.73", principal=COORDINATOR).total == 0
        decisions = desk.decisions(bad.report_id, principal=COORDINATOR)
        assert [(d.action, d.principal) for d in decisions] == [
            ("override", "officer-1"),
            ("reject", "officer-1"),
        ]

    def test_viewers_see_only_released_aggregates(self, desk: Desk) -> None:
        desk.submit(_tally(1, (100, 200)), principal=_monitor(1))
        viewer = Principal(id="walikota-office", role=Role.VIEWER, scope="16.73")
        with pytest.raises(PermissionDenied) as info:
            desk.tally("16.73", principal=viewer)
        assert info.value.code == "access.not_released"
        desk.release("16.73", principal=COORDINATOR)
        assert desk.tally("16.73", principal=viewer).total == 305
        with pytest.raises(PermissionDenied):
            desk.tally("16.73.01", principal=viewer)

    def test_bad_input_leaves_the_store_unchanged(self, desk: Desk) -> None:
        desk.submit(_tally(1, (100, 200)), principal=_monitor(1))
        before = desk.reports("16.73", principal=COORDINATOR, heads_only=False)
        with pytest.raises(PermissionDenied):
            desk.submit(_tally(2, (1, 2)), principal=_monitor(1))  # another TPS
        with pytest.raises(UnknownEntityError):
            desk.submit(attrs.evolve(_tally(1, (1, 2)), contest="gubernur"), principal=SYSTEM)
        with pytest.raises(UnknownEntityError):
            desk.submit(attrs.evolve(_tally(1, (1, 2)), station="1673011001009"), principal=SYSTEM)
        assert desk.reports("16.73", principal=COORDINATOR, heads_only=False) == before
        assert desk.tally("16.73", principal=COORDINATOR).total == 305

    def test_bulk_equals_one_by_one(self, desk: Desk, storage_url: str) -> None:
        v1 = _tally(1, (100, 200))
        batch: list[Any] = [
            v1,
            _tally(2, (10, 20), total=99),
            v1,
            _tally(1, (110, 190), amends=v1, version=1),
            _tally(3, (5, 5)),
            attrs.evolve(v1, invalid=9),
        ]
        result = desk.submit_many(batch, principal=SYSTEM)
        statuses = [x.status if isinstance(x, Receipt) else x.code for x in result.items]
        assert statuses == [
            "accepted",
            "flagged",
            "duplicate",
            "accepted",
            "accepted",
            "report.conflict",
        ]
        city = desk.tally("16.73", principal=COORDINATOR)
        assert (city.votes, city.stations_counted) == ({1: 115, 2: 195}, 2)

    def test_situation_reports_status_and_incidents(self, desk: Desk) -> None:
        report = SituationReport(
            report_id=uuid.uuid4(),
            monitor="LLG-0001",
            station="1673011001001",
            observed_at=T0 + timedelta(hours=1),
            stage=Stage.OPENING,
            status=SecurityStatus.ALERT,
            incidents=[Incident("intimidasi", 3, "kerumunan"), Incident("logistik", 1)],
        )
        assert desk.submit(report, principal=_monitor(1)).status == "accepted"
        found = desk.incidents("16.73.01", principal=OFFICER, min_severity=2)
        assert [(i.category, i.severity, i.station) for i in found] == [
            ("intimidasi", 3, "1673011001001")
        ]
        status = desk.station_status("16.73.01", principal=OFFICER, now=T0 + timedelta(hours=2))
        assert [s.station for s in status] == ["1673011001001", "1673011001002"]
        assert status[0].stage(Stage.OPENING).state in ("in", "late")
        assert status[1].stage(Stage.OPENING).state == "missing"

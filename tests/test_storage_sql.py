"""The SQL storage (SQLite and PostgreSQL): the contract suites, what the database
enforces, a database that is down, and several processes writing at once."""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import socket
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from pg import pg_url  # noqa: F401 - a fixture
from sipantau_adapters.storage.sql import SQLStorage, normalize_url
from sipantau_adapters.storage.sql.reads import _region_range
from sipantau_core.access import Principal, Role
from sipantau_core.audit import GENESIS, chain, verify_chain
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk, Receipt
from sipantau_core.domain import (
    Amends,
    Candidate,
    Contest,
    PollingStation,
    RegionCode,
    RegionLevel,
    StationCode,
    TallyReport,
    VoterCounts,
)
from sipantau_core.errors import ConflictError, SipantauError, StorageError
from sipantau_core.ports import (
    AuditRecord,
    DeviceKeyRecord,
    MonitorRecord,
    ReportFilter,
    ReportStatus,
    Storage,
    StoredReport,
    TokenRecord,
    WriteBatch,
)
from sipantau_core.testing.contracts import DeskContract, StorageContract, _stored, build_deployment
from sqlite_locks import new_file_being_written

T0 = datetime(2024, 11, 27, 6, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------
# The contract suites
# ---------------------------------------------------------------------------------------


class TestSQLiteStorage(StorageContract):
    persistent = True

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        store = SQLStorage(f"sqlite:///{tmp_path / 'desk.db'}")
        yield store
        store.close()

    def reopen(self, storage: Storage) -> Storage:
        return SQLStorage(storage.url)


class TestSQLiteMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        store = SQLStorage("sqlite://")
        yield store
        store.close()


class TestSQLiteDesk(DeskContract):
    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'desk.db'}"


class TestSQLiteMemoryDesk(DeskContract):
    @pytest.fixture
    def storage_url(self) -> str:
        return "sqlite://"


@pytest.mark.postgres
class TestPostgresStorage(StorageContract):
    persistent = True

    @pytest.fixture
    def storage(self, pg_url: str) -> Iterator[Storage]:  # noqa: F811
        store = SQLStorage(pg_url)
        yield store
        store.close()

    def reopen(self, storage: Storage) -> Storage:
        return SQLStorage(storage.url)


@pytest.mark.postgres
class TestPostgresDesk(DeskContract):
    @pytest.fixture
    def storage_url(self, pg_url: str) -> str:  # noqa: F811
        return pg_url


# ---------------------------------------------------------------------------------------
# URLs, info
# ---------------------------------------------------------------------------------------


def test_urls_are_normalised_to_psycopg_and_lose_sipantau_parameters() -> None:
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        got = normalize_url(f"{scheme}://u:secret@db.example:5433/desk?schema=llg")
        assert got == "postgresql+psycopg://u:***@db.example:5433/desk"
    assert normalize_url("sqlite:///x.db?synchronous=normal") == "sqlite+pysqlite:///x.db"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("mysql://u@h/db", "storage.bad_url"),
        ("postgresql://u@h/db?schema=Bad-Name", "storage.bad_url"),
        ("sqlite:///x.db?schema=s", "storage.bad_url"),
        ("sqlite:///x.db?synchronous=sometimes", "storage.bad_url"),
    ],
)
def test_bad_urls_are_refused_before_connecting(url: str, code: str) -> None:
    with pytest.raises(StorageError) as info:
        SQLStorage(url, migrate=False)
    assert info.value.code == code


def test_info_names_the_backend_and_masks_the_password() -> None:
    store = SQLStorage("postgres://desk:s3cret@127.0.0.1:1/test?schema=llg", migrate=False)
    info = store.info()
    assert info["backend"] == "postgresql"
    assert info["schema"] == "llg"
    assert "s3cret" not in str(info) and "s3cret" not in store.url and "***" in info["url"]
    store.close()


def test_region_prefixes_become_index_ranges() -> None:
    assert _region_range("1673011001001") == ("1673011001001", None, None)
    assert _region_range("16.73") == ("", "1673", "1674")
    assert _region_range("16.79") == ("", "1679", "1680")
    assert _region_range("99") == ("", "99", None)  # no upper bound past the last code


def test_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    import sqlite3

    store = SQLStorage(f"sqlite:///{tmp_path / 'desk.db'}")
    store.close()
    with sqlite3.connect(tmp_path / "desk.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_new_sqlite_file_being_written_by_another_connection_still_opens(
    tmp_path: Path,
) -> None:
    """SQLite refuses the switch to WAL at once ("database is locked", no busy wait) while
    another connection writes to a new database still in rollback mode: what several
    processes opening a new desk together meet. The storage waits it out."""
    path = tmp_path / "desk.db"
    with new_file_being_written(path):
        store = SQLStorage(f"sqlite:///{path}")
        try:
            with store.transaction() as tx:
                assert tx.audit_head() == (0, GENESIS)
        finally:
            store.close()


# ---------------------------------------------------------------------------------------
# What the database enforces, on both backends
# ---------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'desk.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def store(any_url: str) -> Iterator[SQLStorage]:
    s = SQLStorage(any_url)
    yield s
    s.close()


def test_a_refused_batch_leaves_the_transactions_earlier_writes(store: SQLStorage) -> None:
    """A conflict rolls back the batch only (a savepoint): the transaction goes on."""
    first = _stored()
    with store.transaction() as tx:
        tx.write(WriteBatch(reports=[first]))
    kept = _stored()
    with store.transaction() as tx:
        tx.write(WriteBatch(reports=[kept], aggregates={("walikota", "16", "total"): 1}))
        with pytest.raises(ConflictError) as info:
            tx.write(
                WriteBatch(reports=[_stored(), first], aggregates={("walikota", "16", "total"): 5})
            )
        assert info.value.code == "storage.race"
        assert tx.aggregates("walikota", "16") == {"total": 1}
    with store.transaction() as tx:
        assert set(tx.get_reports([first.report_id, kept.report_id])) == {
            first.report_id,
            kept.report_id,
        }
        assert len(tx.reports(ReportFilter(heads_only=False))) == 2
        assert tx.aggregates("walikota", "16") == {"total": 1}


def test_a_status_for_a_missing_report_is_an_integrity_conflict(store: SQLStorage) -> None:
    report = _stored()
    with pytest.raises(ConflictError) as info, store.transaction() as tx:
        tx.write(WriteBatch(reports=[report], statuses={uuid.uuid4(): ReportStatus.SUPERSEDED}))
    assert info.value.code == "storage.integrity"
    with store.transaction() as tx:
        assert tx.get_reports([report.report_id]) == {}


def test_statuses_of_new_and_old_reports_in_one_batch(store: SQLStorage) -> None:
    old = _stored()
    with store.transaction() as tx:
        tx.write(WriteBatch(reports=[old]))
    new = _stored()
    with store.transaction() as tx:
        tx.write(
            WriteBatch(
                reports=[new],
                statuses={
                    old.report_id: ReportStatus.REJECTED,
                    new.report_id: ReportStatus.FLAGGED,
                },
            )
        )
    with store.transaction() as tx:
        got = tx.get_reports([old.report_id, new.report_id])
    assert got[old.report_id].status is ReportStatus.REJECTED
    assert got[new.report_id].status is ReportStatus.FLAGGED


@pytest.mark.parametrize("n", [1, 30])  # PostgreSQL: INSERT, then COPY
def test_a_naive_datetime_is_refused(store: SQLStorage, n: int) -> None:
    reports = [_stored() for _ in range(n - 1)]
    reports.append(attrs.evolve(_stored(), received_at=datetime(2024, 11, 27, 6, 0)))
    with pytest.raises(StorageError), store.transaction() as tx:
        tx.write(WriteBatch(reports=reports))
    with store.transaction() as tx:
        assert tx.reports(ReportFilter(heads_only=False)) == []


def test_many_rows_in_one_batch(store: SQLStorage) -> None:
    """More rows than one IN list or statement carries on SQLite."""
    reports = [
        _stored(station=f"16730110010{i % 100:02d}", received_at=T0 + timedelta(seconds=i))
        for i in range(2500)
    ]
    audit = [AuditRecord(T0, f"p{i}", "system", "submit", f"o{i}", "ok") for i in range(2500)]
    with store.transaction() as tx:
        tx.write(WriteBatch(reports=reports, audit=chain(tx.audit_head(lock=True), audit)))
    with store.transaction() as tx:
        assert len(tx.get_reports([r.report_id for r in reports])) == 2500
        assert len(tx.chain_heads([r.chain_id for r in reports])) == 2500
        assert tx.reports(ReportFilter(region="16.73.01.1001")) == reports
        log = tx.audit()
        assert [e.principal for e in log] == [f"p{i}" for i in range(2500)]
        assert [e.seq for e in log] == list(range(1, 2501))
        assert verify_chain(log).ok
        assert tx.audit_head() == (2500, log[-1].link)


# ---------------------------------------------------------------------------------------
# The audit chain's head, device keys, tokens and monitors
# ---------------------------------------------------------------------------------------


def _entries(n: int, tag: str = "p") -> list[AuditRecord]:
    return [
        AuditRecord(T0 + timedelta(seconds=i), f"{tag}{i}", "system", "submit", f"o{i}", "ok",
                    region="16.73")
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize("n", [1, 30])  # PostgreSQL: INSERT, then COPY
def test_the_audit_chain_is_stored_as_given(store: SQLStorage, n: int) -> None:
    with store.transaction() as tx:
        assert tx.audit_head(lock=True) == (0, GENESIS)
        first = chain((0, GENESIS), _entries(n))
        tx.write(WriteBatch(audit=first))
        assert tx.audit_head() == (n, first[-1].link)  # the transaction's own write
    with store.transaction() as tx:
        second = chain(tx.audit_head(lock=True), _entries(n, "q"))
        tx.write(WriteBatch(audit=second, aggregates={("walikota", "16", "total"): 1}))
    with store.transaction() as tx:
        log = tx.audit()
        assert log == first + second  # seq, link and region as given
        assert verify_chain(log).ok
        assert tx.audit_head() == (2 * n, second[-1].link)
        assert tx.audit(after=n, limit=1) == second[:1]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda head: chain((0, GENESIS), _entries(2, "x")), id="seq-taken"),
        pytest.param(lambda head: chain((head[0] + 1, head[1]), _entries(2, "x")), id="gap"),
        pytest.param(lambda head: _entries(2, "x"), id="not-numbered"),
        pytest.param(
            lambda head: [chain(head, _entries(1, "x"))[0], chain(head, _entries(1, "y"))[0]],
            id="not-consecutive",
        ),
    ],
)
def test_audit_entries_that_do_not_follow_the_head_are_a_race(store: SQLStorage, bad: Any) -> None:
    with store.transaction() as tx:
        kept = chain(tx.audit_head(lock=True), _entries(3))
        tx.write(WriteBatch(audit=kept))
    report = _stored()
    with store.transaction() as tx:
        with pytest.raises(ConflictError) as info:
            tx.write(
                WriteBatch(
                    reports=[report],
                    aggregates={("walikota", "16", "total"): 5},
                    audit=bad(tx.audit_head(lock=True)),
                )
            )
        assert info.value.code == "storage.race"
        # nothing of the batch, and the transaction goes on
        assert tx.get_reports([report.report_id]) == {}
        assert tx.audit_head() == (3, kept[-1].link)
        tx.write(WriteBatch(audit=chain(tx.audit_head(lock=True), _entries(1, "z"))))
    with store.transaction() as tx:
        log = tx.audit()
        assert [e.principal for e in log] == ["p0", "p1", "p2", "z0"]
        assert verify_chain(log).ok
        assert tx.aggregates("walikota", "16") == {}


def test_a_head_row_deleted_by_hand_is_put_back_from_the_log(store: SQLStorage) -> None:
    with store.transaction() as tx:
        entries = chain(tx.audit_head(lock=True), _entries(4))
        tx.write(WriteBatch(audit=entries))
    with store.transaction() as tx:
        tx._conn.execute(sa.text("DELETE FROM audit_head"))  # type: ignore[attr-defined]
    with store.transaction() as tx:
        assert tx.audit_head(lock=True) == (4, entries[-1].link)
        tx.write(WriteBatch(audit=chain((4, entries[-1].link), _entries(1, "z"))))
    with store.transaction() as tx:
        assert verify_chain(tx.audit()).ok


@pytest.mark.postgres
def test_postgresql_writers_of_the_chain_queue_on_its_head(pg_url: str) -> None:  # noqa: F811
    """A transaction that locked the head holds back the next one, which then reads the
    head as the first left it; without the lock a stale writer loses the race."""
    store = SQLStorage(pg_url)
    try:
        locked = threading.Event()
        second_head: list[tuple[int, str]] = []

        def second() -> None:
            locked.wait(10)
            with store.transaction() as tx:
                head = tx.audit_head(lock=True)  # waits for the first transaction
                second_head.append(head)
                tx.write(WriteBatch(audit=chain(head, _entries(1, "second"))))

        thread = threading.Thread(target=second)
        thread.start()
        with store.transaction() as tx:
            first = chain(tx.audit_head(lock=True), _entries(2, "first"))
            locked.set()
            time.sleep(0.5)
            assert second_head == []  # still waiting
            tx.write(WriteBatch(audit=first))
        thread.join(10)
        assert second_head == [(2, first[-1].link)]

        # A writer that read the head without locking it, then lost to another one.
        with store.transaction() as stale:
            head = stale.audit_head()
            with store.transaction() as other:
                other.write(WriteBatch(audit=chain(other.audit_head(lock=True), _entries(1, "o"))))
            with pytest.raises(ConflictError) as info:
                stale.write(WriteBatch(audit=chain(head, _entries(1, "stale"))))
            assert info.value.code == "storage.race"
        with store.transaction() as tx:
            log = tx.audit()
            assert [e.principal for e in log] == ["first0", "first1", "second0", "o0"]
            assert verify_chain(log).ok
    finally:
        store.close()


def test_device_keys_tokens_and_monitors_round_trip(store: SQLStorage) -> None:
    wita = datetime(2024, 11, 27, 9, 30, 15, 123456, tzinfo=UTC).astimezone()
    keys = [
        DeviceKeyRecord(f"{i:032x}", f"LLG-{i % 3:04d}", i.to_bytes(32, "big"), "coord",
                        T0 + timedelta(seconds=i))
        for i in range(1000)  # more ids than one IN list carries on SQLite
    ]  # fmt: skip
    token = TokenRecord("h" * 64, "officer-1", "officer", "16.73.01", "coord", wita)
    system = TokenRecord("s" * 64, "import", "system", "", "coord", wita)
    sealed = MonitorRecord("LLG-0001", "1673011001001", b"\x00\xffnama", b"\x01hp", None,
                           "coord", wita)  # fmt: skip
    bare = MonitorRecord("LLG-0002", "1673011001002", None, None, None, "coord", wita)
    with store.transaction() as tx:
        # a batch of records alone is a batch to write too
        tx.write(WriteBatch(device_keys=keys, tokens=[token, system], monitors=[sealed, bare]))
    with store.transaction() as tx:
        assert tx.device_keys() == keys
        assert tx.device_keys(key_ids=[k.key_id for k in keys]) == keys
        assert tx.device_keys(key_ids=[keys[5].key_id, "nope"]) == [keys[5]]
        assert tx.device_keys(monitor="LLG-0001") == [k for k in keys if k.monitor == "LLG-0001"]
        assert tx.device_keys(key_ids=[keys[4].key_id], monitor="LLG-0001") == [keys[4]]
        assert tx.device_keys(key_ids=[keys[5].key_id], monitor="LLG-0001") == []
        assert tx.device_keys(key_ids=[]) == []
        assert tx.token("h" * 64) == token
        assert tx.token("s" * 64) == system
        assert tx.token("x" * 64) is None
        assert tx.monitors() == {"LLG-0001": sealed, "LLG-0002": bare}
        assert tx.monitors(["LLG-0002", "LLG-9999"]) == {"LLG-0002": bare}
        assert tx.monitors([]) == {}
        assert isinstance(tx.monitors(["LLG-0001"])["LLG-0001"].name, bytes)
        assert tx.token("h" * 64).issued_at == wita  # type: ignore[union-attr]

    # upserts by key: revoking, re-sealing; the last of a key in a batch wins
    revoked = attrs.evolve(keys[4], revoked_at=T0 + timedelta(hours=1), revoked_by="coord")
    gone = attrs.evolve(token, revoked_at=T0 + timedelta(hours=2))
    resealed = attrs.evolve(sealed, name=b"baru", phone=None)
    with store.transaction() as tx:
        tx.write(
            WriteBatch(
                device_keys=[attrs.evolve(keys[4], enrolled_by="x"), revoked],
                tokens=[gone],
                monitors=[resealed],
            )
        )
    with store.transaction() as tx:
        assert tx.device_keys(key_ids=[keys[4].key_id]) == [revoked]  # revoked: still there
        assert len(tx.device_keys()) == 1000
        assert tx.token("h" * 64) == gone
        assert tx.monitors(["LLG-0001"]) == {"LLG-0001": resealed}


def test_records_are_rolled_back_with_their_transaction(store: SQLStorage) -> None:
    key = DeviceKeyRecord("k" * 32, "LLG-0001", b"\x07" * 32, "coord", T0)

    def write_then_fail() -> None:
        with store.transaction() as tx:
            tx.write(WriteBatch(device_keys=[key]))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_fail()
    with store.transaction() as tx:
        assert tx.device_keys() == []


# ---------------------------------------------------------------------------------------
# A database that is down
# ---------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_an_unreachable_server_is_storage_unavailable(scheme: str) -> None:
    port = _closed_port()
    with pytest.raises(StorageError) as info:
        SQLStorage(f"{scheme}://postgres:hunter2@127.0.0.1:{port}/test")
    error = info.value
    assert error.code == "storage.unavailable"
    assert f"127.0.0.1:{port}" in error.message
    assert "hunter2" not in str(error)
    assert "running" in error.message  # says what to check
    assert not isinstance(error.__cause__, SipantauError)  # the driver's error is chained


def test_the_desk_reports_an_unreachable_server() -> None:
    from sipantau_core.testing.contracts import small_deployment

    with pytest.raises(StorageError) as info:
        Desk.open(small_deployment(), storage=f"postgresql://postgres@127.0.0.1:{_closed_port()}/x")
    assert info.value.code == "storage.unavailable"


def test_an_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        SQLStorage(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'desk.db'}")
    assert info.value.code == "storage.unavailable"


class _Proxy:
    """A TCP forwarder to PostgreSQL that can be cut, like a network or server failure."""

    def __init__(self, port: int = 5432):
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                if self.closed:
                    client.close()
                    upstream.close()
                    return
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        # shutdown() wakes the accept() blocked in the other thread; new connections
        # are refused from here on
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            self.closed = True
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


@pytest.mark.postgres
def test_a_server_lost_mid_transaction_leaves_nothing_half_written(pg_url: str) -> None:  # noqa: F811
    direct = SQLStorage(pg_url)  # creates the schema
    proxy = _Proxy()
    via_proxy = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert via_proxy != pg_url
    store = SQLStorage(via_proxy)
    committed, lost = _stored(), _stored()
    with store.transaction() as tx:
        tx.write(WriteBatch(reports=[committed], aggregates={("walikota", "16", "total"): 3}))

    def write_then_lose_the_server() -> None:
        with store.transaction() as tx:
            tx.write(
                WriteBatch(
                    reports=[lost],
                    aggregates={("walikota", "16", "total"): 4},
                    audit=chain(
                        tx.audit_head(lock=True),
                        [AuditRecord(T0, "p", "system", "submit", "x", "ok")],
                    ),
                )
            )
            proxy.cut()

    with pytest.raises(StorageError) as info:
        write_then_lose_the_server()
    assert info.value.code == "storage.unavailable"
    # and the next transaction cannot even start
    with pytest.raises(StorageError) as again, store.transaction():
        pass
    assert again.value.code == "storage.unavailable"
    store.close()
    with direct.transaction() as tx:
        assert tx.get_reports([committed.report_id, lost.report_id]).keys() == {committed.report_id}
        assert tx.aggregates("walikota", "16") == {"total": 3}
        assert tx.audit() == []
        assert tx.audit_head() == (0, GENESIS)
    direct.close()


# ---------------------------------------------------------------------------------------
# Several processes writing to one database at once
# ---------------------------------------------------------------------------------------

CONTEST = "presiden"
SYSTEM = Principal(id="import", role=Role.SYSTEM)
NS = uuid.UUID("5b7c4c38-1c7e-4c1b-9d7e-0a4f6f0e2a11")
#: what a worker may be told when it loses a race; anything else fails the test
ALLOWED = frozenset(
    {
        "report.stale_version",
        "report.amends_unknown",
        "report.not_flagged",
        "report.not_head",
        "report.already_rejected",
        "report.station_already_reported",
        "storage.race",
    }
)


def race_deployment(n_stations: int = 60) -> Deployment:
    """``n_stations`` TPS in 3 districts × 4 villages of Jakarta Pusat, 3 pairs."""
    stations = []
    for i in range(n_stations):
        district, rest = divmod(i, n_stations // 3)
        village, tps = divmod(rest, max(1, n_stations // 12))
        code = StationCode(RegionCode(f"31.71.{district + 1:02d}.{1001 + village}"), tps + 1)
        stations.append(PollingStation(code=code, registered_voters=200 + i))
    contest = Contest(id=CONTEST, candidates=[Candidate(n, f"Paslon {n}") for n in (1, 2, 3)])
    return build_deployment(
        stations,
        region="31",
        contest=contest,
        monitor_id=lambda _, s: f"M{s.code.compact}",
        id="race",
        name="race",
        election_day=date(2024, 2, 14),
    )


def _tally(station: PollingStation, seed: int, *, amends: Amends | None = None) -> TallyReport:
    rng = random.Random(seed)
    votes = {n: rng.randint(10, 60) for n in (1, 2, 3)}
    valid = sum(votes.values())
    invalid = rng.randint(0, 5)
    total = valid + invalid
    if seed % 7 == 0 and amends is None:
        total += 3  # breaks a hard rule: flagged
    code = station.code.compact
    return TallyReport(
        report_id=uuid.uuid5(NS, f"{code}/{seed}"),
        monitor=f"M{code}",
        station=station.code,
        contest=CONTEST,
        observed_at=datetime(2024, 2, 14, 15, 0, tzinfo=UTC),
        votes=votes,
        valid=valid,
        invalid=invalid,
        total=total,
        voted=VoterCounts(valid + invalid, 0, 0) if total == valid + invalid else None,
        amends=amends,
    )


def _originals(dep: Deployment) -> list[TallyReport]:
    return [_tally(s, i) for i, s in enumerate(sorted(dep.stations.values(), key=lambda s: s.code))]


def _is_rival(i: int) -> bool:
    """At these TPS every process sends an original of its own (other id, other figures):
    one chain wins, the others are ``report.station_already_reported``."""
    return i % 5 == 1


def _rival(station: PollingStation, i: int, worker: int) -> TallyReport:
    return _tally(station, 5000 * (worker + 1) + i)


def _race_worker(
    url: str, worker: int, n_workers: int, barrier: Any, out: Any, bulk_from: int | None = None
) -> None:
    """One process: every original (shared: duplicates across processes), then its own
    correction of every third TPS (racing the others'), then overrides of the flagged.
    ``bulk_from``: batches of this many reports and more take the PostgreSQL bulk paths
    (``COPY``, staged station locks) that otherwise start at hundreds of rows."""
    if bulk_from is not None:
        from sipantau_adapters.storage.sql import bulk

        bulk._COPY_FROM = bulk._STAGE_FROM = bulk_from
    codes: Counter[str] = Counter()
    unexpected: list[str] = []
    rng = random.Random(worker)
    dep = race_deployment()
    stations = sorted(dep.stations.values(), key=lambda s: s.code)
    shared = _originals(dep)
    originals = [
        _rival(s, i, worker) if _is_rival(i) else shared[i] for i, s in enumerate(stations)
    ]
    corrections = [
        _tally(s, 1000 * (worker + 1) + i, amends=Amends(originals[i].report_id, 1))
        for i, s in enumerate(stations)
        if i % 3 == 0 and not _is_rival(i)
    ]

    def note(items: list[Any]) -> None:
        for item in items:
            if isinstance(item, Receipt):
                codes[item.status] += 1
            else:
                codes[item.code] += 1
                if item.code not in ALLOWED:
                    unexpected.append(f"{item.code}: {item}")

    try:
        desk = Desk.open(dep, storage=url)
        barrier.wait()
        for phase in (originals, corrections):
            items: list[Any] = list(phase)
            rng.shuffle(items)
            while items:
                size = rng.randint(1, 8)
                chunk, items = items[:size], items[size:]
                try:
                    if size == 1:
                        note([desk.submit(chunk[0], principal=SYSTEM)])
                    else:
                        note(list(desk.submit_many(chunk, principal=SYSTEM).items))
                except ConflictError as e:  # the retries ran out: a lost race, nothing written
                    note([e] * len(chunk))
                time.sleep(rng.random() / 200)  # let the others interleave
            barrier.wait()
        officer = Principal(id="officer", role=Role.OFFICER, scope="31")
        flagged = [r for i, r in enumerate(originals) if i % 7 == 0 and not _is_rival(i)]
        rng.shuffle(flagged)
        for report in flagged:
            try:
                note([desk.override(report.report_id, principal=officer, reason="dicek C1")])
            except SipantauError as e:
                note([e])
        desk.close()
    except Exception as e:  # noqa: BLE001 - the parent reports whatever went wrong
        unexpected.append(f"{type(e).__name__}: {e}")
    out.put((worker, dict(codes), unexpected))


def _run_race(
    url: str, n_workers: int, bulk_from: int | None = None
) -> list[tuple[int, dict[str, int], list[str]]]:
    SQLStorage(url).close()  # migrate once up front (the workers would queue for it anyway)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n_workers, timeout=120)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_race_worker, args=(url, w, n_workers, barrier, out, bulk_from))
        for w in range(n_workers)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def _expected_counters(dep: Deployment, heads: list[StoredReport]) -> dict[str, dict[str, int]]:
    """Recompute every region's counters from the head reports alone (not the desk's
    station states or aggregates)."""
    import json

    per_region: dict[str, Counter[str]] = defaultdict(Counter)
    for head in heads:
        if head.status not in (ReportStatus.ACCEPTED, ReportStatus.OVERRIDDEN):
            continue
        payload = json.loads(head.payload)
        code = StationCode.parse(head.station)
        counters = Counter({f"votes.{n}": int(v) for n, v in payload["votes"].items()})
        counters.update(
            valid=payload["valid"],
            invalid=payload["invalid"],
            total=payload["total"],
            stations=1,
            registered=dep.stations[code].registered_voters,
        )
        for level in (RegionLevel.PROVINCE, RegionLevel.CITY, RegionLevel.DISTRICT):
            per_region[code.village.at_level(level).value].update(counters)
        per_region[code.village.value].update(counters)
    return {region: dict(c) for region, c in per_region.items()}


def _check_race_outcome(url: str, results: list[tuple[int, dict[str, int], list[str]]]) -> None:
    problems = [u for _, _, unexpected in results for u in unexpected]
    assert problems == []
    totals: Counter[str] = Counter()
    for _, codes, _ in results:
        totals.update(codes)
    assert totals["duplicate"] > 0, totals  # the processes did send the same reports
    assert totals["report.stale_version"] + totals["storage.race"] > 0, totals

    dep = race_deployment()
    originals = _originals(dep)
    store = SQLStorage(url)
    with store.transaction() as tx:
        every = tx.reports(ReportFilter(kind="tally", heads_only=False))
        heads = tx.reports(ReportFilter(kind="tally"))
        states = tx.station_states([(CONTEST, s.compact) for s in dep.stations])
        regions = {
            code.village.at_level(level).value
            for code in dep.stations
            for level in (RegionLevel.PROVINCE, RegionLevel.CITY, RegionLevel.DISTRICT)
        } | {code.village.value for code in dep.stations}
        aggregates = {region: tx.aggregates(CONTEST, region) for region in regions}
    store.close()

    # Every shared original stored once, one rival original per rival TPS; one chain
    # per TPS; versions without gaps.
    stations = sorted(dep.stations.values(), key=lambda s: s.code)
    firsts = {r.station: r.report_id for r in every if r.version == 1}
    assert len(firsts) == sum(1 for r in every if r.version == 1) == len(stations)
    for i, station in enumerate(stations):
        if _is_rival(i):
            rivals = {_rival(station, i, w).report_id for w in range(len(results))}
            assert firsts[station.code.compact] in rivals
        else:
            assert firsts[station.code.compact] == originals[i].report_id
    assert totals["report.station_already_reported"] > 0, totals
    assert len({r.report_id for r in every}) == len(every)
    assert sorted(h.station for h in heads) == sorted(s.compact for s in dep.stations)
    chains: dict[uuid.UUID, list[int]] = defaultdict(list)
    for r in every:
        chains[r.chain_id].append(r.version)
    assert all(sorted(v) == list(range(1, len(v) + 1)) for v in chains.values())
    assert max(len(v) for v in chains.values()) == 2  # exactly one correction won per TPS
    assert all(r.status is ReportStatus.SUPERSEDED for r in every if r not in heads)

    # Station states: what each head counts.
    for head in heads:
        state = states[(CONTEST, head.station)]
        assert state.chain_id == head.chain_id
        counted = head.status in (ReportStatus.ACCEPTED, ReportStatus.OVERRIDDEN)
        assert (state.counted is not None) == counted, head
        if state.counted is not None:
            assert (state.counted.report_id, state.counted.version) == (
                head.report_id,
                head.version,
            )

    # Aggregates: exactly the recomputation from the heads, and from the station states.
    expected = _expected_counters(dep, heads)
    assert {r: a for r, a in aggregates.items() if a} == expected
    from_states: dict[str, Counter[str]] = defaultdict(Counter)
    for (_, station), state in states.items():
        if state.counted is not None:
            code = StationCode.parse(station)
            for region in regions:
                if RegionCode(region).contains(code):
                    from_states[region].update(state.counted.counters)
    assert {r: dict(c) for r, c in from_states.items()} == expected
    with Desk.open(dep, storage=url) as desk:
        province = desk.tally("31", principal=SYSTEM)
        assert province.total == expected["31"]["total"]
        assert province.stations_counted == expected["31"]["stations"]
        # the racing writers' batches make one tree: every report a leaf, once (#13)
        audit = desk.audit.verify()
        assert audit.ok, audit.reason
        assert audit.tree[0] == len(every)


@pytest.mark.postgres
@pytest.mark.slow
def test_four_processes_on_one_postgresql_count_exactly(pg_url: str) -> None:  # noqa: F811
    results = _run_race(pg_url, 4)
    _check_race_outcome(pg_url, results)


@pytest.mark.postgres
@pytest.mark.slow
def test_four_processes_through_copy_and_staged_locks_count_exactly(
    pg_url: str,  # noqa: F811
) -> None:
    results = _run_race(pg_url, 4, bulk_from=2)
    _check_race_outcome(pg_url, results)


@pytest.mark.slow
def test_three_processes_on_one_sqlite_file_count_exactly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    results = _run_race(url, 3)
    _check_race_outcome(url, results)

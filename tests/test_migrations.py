"""Schema migrations: a database made by one release opens with the next, the models and
the migrations agree, and concurrent first opens do not trip over each other."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pg import pg_url  # noqa: F401 - a fixture
from sipantau_adapters.storage.sql import (
    SQLStorage,
    alembic_config,
    head_revision,
    migration_connection,
    upgrade,
)
from sipantau_adapters.storage.sql_models import VERSION_TABLE, metadata
from sipantau_core import Desk, Principal, Role, SecurityStatus, SituationReport, Stage
from sipantau_core.audit import GENESIS, chain, verify_chain
from sipantau_core.errors import StorageError
from sipantau_core.ports import (
    AuditRecord,
    CountedTally,
    Decision,
    DeviceKeyRecord,
    MediaRecord,
    ReleaseRecord,
    ReportFilter,
    ReportStatus,
    StationState,
    StoredReport,
    WriteBatch,
)
from sipantau_core.testing.contracts import small_deployment

COUNTERS = {"votes.1": 110, "valid": 300, "total": 305, "stations": 1}
WITA = datetime(2024, 11, 27, 14, 30, 15, 123456, tzinfo=UTC).astimezone()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'desk.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def _revision(url: str) -> str | None:
    with migration_connection(url) as (conn, schema):
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "version_table_schema": schema}
        )
        return context.get_current_revision()


def _indexes(url: str) -> set[str]:
    with migration_connection(url) as (conn, _):
        return {str(i["name"]) for i in sa.inspect(conn).get_indexes("reports")}


# Rows as release 0.1 (schema 0001) wrote them, in plain SQL.
V1 = uuid.UUID("0b5f4e1e-7f6b-4c1e-9a52-3f0d2b1c0001")
V2 = uuid.UUID("0b5f4e1e-7f6b-4c1e-9a52-3f0d2b1c0002")
SITUATION = uuid.UUID("0b5f4e1e-7f6b-4c1e-9a52-3f0d2b1c0003")


def _old_rows() -> list[dict[str, Any]]:
    base = {
        "kind": "tally",
        "station": "1673011001001",
        "contest": "walikota",
        "monitor": "LLG-0001",
        "stage": "penghitungan",
        "observed_at": WITA - timedelta(hours=1),
        "verdict": "[]",
        "submitted_by": "LLG-0001",
    }
    return [
        {**base, "report_id": V1, "chain_id": V1, "version": 1, "received_at": WITA,
         "digest": "a" * 64, "payload": '{"v":1}', "status": "superseded"},
        {**base, "report_id": V2, "chain_id": V1, "version": 2,
         "received_at": WITA + timedelta(minutes=5), "digest": "b" * 64, "payload": '{"v":2}',
         "status": "accepted"},
        {**base, "report_id": SITUATION, "chain_id": SITUATION, "version": 1, "kind": "situation",
         "contest": None, "stage": "pembukaan", "station": "1673021002001",
         "received_at": WITA + timedelta(minutes=1), "digest": "c" * 64,
         "payload": '{"s":1}', "status": "accepted"},
    ]  # fmt: skip


def _write_as_release_0_1(url: str) -> None:
    """What the 0.1 adapter wrote, as plain SQL against schema 0001."""
    with migration_connection(url) as (conn, _):
        sqlite = conn.dialect.name == "sqlite"

        def uid(u: uuid.UUID) -> str:
            return u.hex if sqlite else str(u)

        def at(d: datetime) -> Any:
            return d.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else d

        for row in _old_rows():
            conn.execute(
                sa.text(
                    "INSERT INTO reports (report_id, chain_id, version, kind, station, contest,"
                    " monitor, stage, observed_at, received_at, digest, payload, status,"
                    " verdict, submitted_by) VALUES (:report_id, :chain_id, :version, :kind,"
                    " :station, :contest, :monitor, :stage, :observed_at, :received_at,"
                    " :digest, :payload, :status, :verdict, :submitted_by)"
                ),
                {
                    **row,
                    "report_id": uid(row["report_id"]),
                    "chain_id": uid(row["chain_id"]),
                    "observed_at": at(row["observed_at"]),
                    "received_at": at(row["received_at"]),
                },
            )
        conn.execute(
            sa.text(
                "INSERT INTO station_states (contest, station, chain_id, counted_report_id,"
                " counted_version, counters) VALUES ('walikota', '1673011001001', :chain,"
                " :counted, 2, :counters)"
            ),
            {
                "chain": uid(V1),
                "counted": uid(V2),
                "counters": json.dumps(COUNTERS),
            },
        )
        for region in ("16", "16.73", "16.73.01", "16.73.01.1001"):
            for name, value in (("votes.1", 110), ("valid", 300), ("total", 305), ("x", 0)):
                conn.execute(
                    sa.text(
                        "INSERT INTO aggregates (contest, region, name, value)"
                        " VALUES ('walikota', :region, :name, :value)"
                    ),
                    {"region": region, "name": name, "value": value},
                )
        conn.execute(
            sa.text(
                "INSERT INTO decisions (report_id, action, principal, reason, at)"
                " VALUES (:r, 'reject', 'officer-1', 'salah TPS', :at)"
            ),
            {"r": uid(SITUATION), "at": at(WITA)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO releases (region, contest, principal, at)"
                " VALUES ('16.73', NULL, 'coord', :at)"
            ),
            {"at": at(WITA)},
        )
        for i in range(3):
            conn.execute(
                sa.text(
                    "INSERT INTO audit_log (at, principal, role, action, object, outcome,"
                    " detail) VALUES (:at, :p, 'system', 'submit', 'report', 'ok', '')"
                ),
                {"at": at(WITA), "p": f"p{i}"},
            )


def _expected_reports() -> dict[uuid.UUID, StoredReport]:
    out = {}
    for row in _old_rows():
        values = dict(row)
        values["status"] = ReportStatus(values["status"])
        out[row["report_id"]] = StoredReport(**values)
    return out


def test_a_database_made_by_the_first_release_opens_with_this_one(db_url: str) -> None:
    upgrade(db_url, "0001")
    assert _revision(db_url) == "0001"
    assert "ix_reports_station" not in _indexes(db_url)
    _write_as_release_0_1(db_url)

    store = SQLStorage(db_url)  # upgrades on open
    try:
        assert _revision(db_url) == head_revision()
        assert {"ix_reports_station", "ix_reports_kind_contest"} <= _indexes(db_url)
        expected = _expected_reports()
        with store.transaction() as tx:
            got = tx.get_reports(expected)
            # 0006 made every report a leaf of the audit log's tree, in received order
            assert {r.report_id: r.leaf_index for r in got.values()} == {
                V1: 0,
                SITUATION: 1,
                V2: 2,
            }
            assert all(len(r.leaf_hash) == 64 for r in got.values())
            got = {k: attrs.evolve(r, leaf_index=None, leaf_hash="") for k, r in got.items()}
            assert got == expected
            assert _without_leaves(tx.chain_heads([V1, SITUATION])) == {
                V1: expected[V2],
                SITUATION: expected[SITUATION],
            }
            listed = [
                attrs.evolve(r, leaf_index=None, leaf_hash="")
                for r in tx.reports(ReportFilter(region="16.73"))
            ]
            assert listed == [expected[SITUATION], expected[V2]]
            first = tx.reports(ReportFilter(region="16.73", heads_only=False))[0]
            assert attrs.evolve(first, leaf_index=None, leaf_hash="") == expected[V1]
            key = ("walikota", "1673011001001")
            assert tx.station_states([key]) == {
                key: StationState(
                    V1,
                    CountedTally(
                        V2, 2, {"votes.1": 110, "valid": 300, "total": 305, "stations": 1}
                    ),
                )
            }
            assert tx.aggregates("walikota", "16.73.01") == {
                "votes.1": 110,
                "valid": 300,
                "total": 305,
            }
            assert tx.decisions(SITUATION) == [
                Decision(SITUATION, "reject", "officer-1", "salah TPS", WITA)
            ]
            assert tx.releases() == [ReleaseRecord("16.73", None, "coord", WITA)]
            log = tx.audit()
            # chained by 0003; 0006 added the batch entry of the tree over the reports
            assert [e.principal for e in log] == ["p0", "p1", "p2", "migration"]
            assert [e.seq for e in log] == [1, 2, 3, 4]
            assert (log[3].action, log[3].object) == ("submit_batch", "leaves:0-2")
            assert verify_chain(log).ok
            assert tx.audit_head() == (4, log[-1].link)
            assert tx.log_tree().size == 3
            # and the next writes go on from there
            tx.write(
                WriteBatch(
                    aggregates={("walikota", "16.73", "total"): 5},
                    audit=chain(
                        tx.audit_head(lock=True),
                        [AuditRecord(WITA, "p3", "system", "submit", "report", "ok")],
                    ),
                )
            )
        with store.transaction() as tx:
            assert tx.aggregates("walikota", "16.73")["total"] == 310
            after = tx.audit()
            assert after[:4] == log and [e.seq for e in after] == [1, 2, 3, 4, 5]
            assert verify_chain(after).ok
    finally:
        store.close()


def _without_leaves(found: dict[uuid.UUID, StoredReport]) -> dict[uuid.UUID, StoredReport]:
    return {k: attrs.evolve(r, leaf_index=None, leaf_hash="") for k, r in found.items()}


def _sql_time(conn: sa.Connection, d: datetime) -> Any:
    if conn.dialect.name == "sqlite":
        return d.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return d


def _write_audit_as_release_0_2(url: str, seqs: list[int | None]) -> None:
    """Audit entries as the 0.2 adapter wrote them against schema 0002: ``seq`` assigned
    by the database (``None``), or given (to make the gaps a rolled-back insert leaves)."""
    with migration_connection(url) as (conn, _):
        for i, seq in enumerate(seqs):
            values = {
                "at": _sql_time(conn, WITA + timedelta(seconds=i, microseconds=7)),
                "p": f"p{i}",
                "role": "officer" if i % 2 else "system",
                "action": "read_tally" if i % 3 else "submit",
                "object": f"report:{uuid.UUID(int=i)}",
                "detail": "" if i % 2 else "ulang",
            }
            if seq is None:
                conn.execute(
                    sa.text(
                        "INSERT INTO audit_log (at, principal, role, action, object, outcome,"
                        " detail) VALUES (:at, :p, :role, :action, :object, 'ok', :detail)"
                    ),
                    values,
                )
            else:
                conn.execute(
                    sa.text(
                        "INSERT INTO audit_log (seq, at, principal, role, action, object,"
                        " outcome, detail) VALUES (:seq, :at, :p, :role, :action, :object, 'ok',"
                        " :detail)"
                    ),
                    {**values, "seq": seq},
                )


@pytest.mark.parametrize(
    ("seqs", "kept"),
    [
        pytest.param([None] * 7, True, id="numbered-by-the-database"),
        pytest.param([1, 2, 5, 6, 9, 20, 21], False, id="with-gaps"),
    ],
)
def test_an_audit_log_of_release_0_2_is_chained_on_opening(
    db_url: str, seqs: list[int | None], kept: bool
) -> None:
    upgrade(db_url, "0002")
    _write_audit_as_release_0_2(db_url, seqs)
    with migration_connection(db_url) as (conn, _):
        before = conn.execute(sa.text("SELECT seq, principal FROM audit_log ORDER BY seq")).all()
    store = SQLStorage(db_url)
    try:
        with store.transaction() as tx:
            log = tx.audit()
            report = verify_chain(log)
            assert report.ok, report.reason
            # the same entries in the same order; their seq kept when it had no gaps
            assert [e.principal for e in log] == [p for _, p in before]
            assert [e.seq for e in log] == list(range(1, len(before) + 1))
            if kept:
                assert [e.seq for e in log] == [seq for seq, _ in before]
            assert [e.detail for e in log][:2] == ["ulang", ""]
            assert all(e.region == "" for e in log)
            assert log[1].at == WITA + timedelta(seconds=1, microseconds=7)
            assert tx.audit_head() == (len(log), log[-1].link) == report.head
            tx.write(
                WriteBatch(
                    audit=chain(
                        tx.audit_head(lock=True),
                        [AuditRecord(WITA, "desk", "system", "open", "desk", "ok", region="16")],
                    )
                )
            )
        with store.transaction() as tx:
            assert verify_chain(tx.audit()).ok
            assert tx.audit_head()[0] == len(before) + 1
    finally:
        store.close()


def test_an_empty_log_gets_the_genesis_head(db_url: str) -> None:
    upgrade(db_url, "0002")
    store = SQLStorage(db_url)
    try:
        with store.transaction() as tx:
            assert tx.audit_head() == (0, GENESIS)
            assert tx.audit() == []
    finally:
        store.close()


def test_0003_downgrades_to_what_release_0_2_reads_and_writes(db_url: str) -> None:
    store = SQLStorage(db_url)
    with store.transaction() as tx:
        tx.write(
            WriteBatch(
                audit=chain((0, GENESIS), [AuditRecord(WITA, "p0", "system", "x", "y", "ok")]),
                device_keys=[DeviceKeyRecord("k" * 32, "LLG-0001", b"\x01" * 32, "c", WITA)],
            )
        )
    store.close()
    with migration_connection(db_url) as (conn, schema):
        command.downgrade(alembic_config(conn, schema), "0002")
    assert _revision(db_url) == "0002"
    _write_audit_as_release_0_2(db_url, [None, None])  # the database numbers them again
    with migration_connection(db_url) as (conn, _):
        tables = set(sa.inspect(conn).get_table_names())
        rows = conn.execute(sa.text("SELECT seq, principal FROM audit_log ORDER BY seq")).all()
    assert not tables & {"audit_head", "device_keys", "staff_tokens", "monitors"}
    assert [tuple(r) for r in rows] == [(1, "p0"), (2, "p0"), (3, "p1")]
    store = SQLStorage(db_url)  # and up again
    try:
        with store.transaction() as tx:
            assert verify_chain(tx.audit()).ok
            assert tx.audit_head()[0] == 3
    finally:
        store.close()


def test_a_database_of_release_0_4_gets_the_media_table_on_opening(db_url: str) -> None:
    upgrade(db_url, "0001")
    _write_as_release_0_1(db_url)  # rows of the older tables, as they were written
    upgrade(db_url, "0004")
    with migration_connection(db_url) as (conn, _):
        assert "media" not in set(sa.inspect(conn).get_table_names())
    photo = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    record = MediaRecord(
        hashlib.sha256(photo).hexdigest(), "image/png", len(photo), photo, "LLG-0001", WITA
    )
    store = SQLStorage(db_url)  # upgrades on open
    try:
        assert _revision(db_url) == head_revision()
        with store.transaction() as tx:
            assert tx.get_reports([V2])[V2].payload == '{"v":2}'  # the old rows stay
            assert tx.media([record.sha256]) == {}
            tx.write(WriteBatch(media=[record]))
        with store.transaction() as tx:
            assert tx.media([record.sha256]) == {record.sha256: record}
    finally:
        store.close()


def test_0005_downgrades_to_what_release_0_4_reads_and_writes(db_url: str) -> None:
    photo = b"\xff\xd8\xff\xe0" + b"\x00" * 64
    record = MediaRecord(
        hashlib.sha256(photo).hexdigest(), "image/jpeg", len(photo), photo, "LLG-0001", WITA
    )
    store = SQLStorage(db_url)
    with store.transaction() as tx:
        tx.write(WriteBatch(media=[record], aggregates={("walikota", "16.73", "total"): 3}))
    store.close()
    with migration_connection(db_url) as (conn, schema):
        command.downgrade(alembic_config(conn, schema), "0004")
    assert _revision(db_url) == "0004"
    with migration_connection(db_url) as (conn, _):
        assert "media" not in set(sa.inspect(conn).get_table_names())
    store = SQLStorage(db_url)  # and up again: the table is back, empty
    try:
        with store.transaction() as tx:
            assert tx.aggregates("walikota", "16.73") == {"total": 3}
            assert tx.media([record.sha256]) == {}
    finally:
        store.close()


def test_opening_twice_does_not_migrate_again(db_url: str) -> None:
    SQLStorage(db_url).close()
    SQLStorage(db_url).close()
    assert _revision(db_url) == head_revision()


def test_the_models_and_the_migrations_agree(db_url: str) -> None:
    upgrade(db_url)
    with migration_connection(db_url) as (conn, _):
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, parent: name != VERSION_TABLE,
            },
        )
        assert compare_metadata(context, metadata) == []


def test_a_database_from_a_newer_release_is_refused(db_url: str) -> None:
    upgrade(db_url)
    with migration_connection(db_url) as (conn, _):
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(StorageError) as info:
        SQLStorage(db_url)
    assert info.value.code == "storage.schema"
    assert "newer release" in info.value.message


def test_processes_opening_a_new_database_at_once_migrate_it_once(db_url: str) -> None:
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            SQLStorage(db_url).close()
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _revision(db_url) == head_revision()


# -- 0006: the audit log in Merkle batches ------------------------------------------------


def _write_as_release_0_4(url: str) -> list[uuid.UUID]:
    """Three reports and the log release 0.4 wrote for them (one ``submit`` entry each,
    chained), a read between them, against schema 0004, in plain SQL."""
    ids = [uuid.UUID(int=0x5EED0000 + i) for i in range(3)]
    entries: list[AuditRecord] = []
    with migration_connection(url) as (conn, _):
        sqlite = conn.dialect.name == "sqlite"

        def uid(u: uuid.UUID) -> str:
            return u.hex if sqlite else str(u)

        for i, report_id in enumerate(ids):
            payload = json.dumps({"report_id": str(report_id), "n": i})
            at = WITA + timedelta(minutes=10 - 3 * i)  # received in reverse id order
            conn.execute(
                sa.text(
                    "INSERT INTO reports (report_id, chain_id, version, kind, station, contest,"
                    " monitor, stage, observed_at, received_at, digest, payload, status,"
                    " verdict, submitted_by) VALUES (:id, :id, 1, 'situation', :station, NULL,"
                    " 'LLG-0001', 'pembukaan', :at, :at, :digest, :payload, :status, '[]',"
                    " 'LLG-0001')"
                ),
                {
                    "id": uid(report_id),
                    "station": "1673011001001",
                    "at": _sql_time(conn, at),
                    "digest": hashlib.sha256(payload.encode()).hexdigest(),
                    "payload": payload,
                    "status": "flagged" if i == 1 else "accepted",
                },
            )
            entries.append(
                AuditRecord(at, "LLG-0001", "monitor", "submit", f"report:{report_id}",
                            "flagged" if i == 1 else "accepted", region="1673011001001")
            )  # fmt: skip
            entries.append(AuditRecord(at, "coord", "coordinator", "read_tally", "x", "ok"))
        log = chain((0, GENESIS), entries)
        for e in log:
            conn.execute(
                sa.text(
                    "INSERT INTO audit_log (seq, at, principal, role, action, object, outcome,"
                    " detail, region, link) VALUES (:seq, :at, :principal, :role, :action,"
                    " :object, :outcome, :detail, :region, :link)"
                ),
                {**attrs.asdict(e), "at": _sql_time(conn, e.at)},
            )
        conn.execute(
            sa.text("UPDATE audit_head SET seq = :seq, link = :link WHERE id = 1"),
            {"seq": log[-1].seq, "link": log[-1].link},
        )
    return ids


def test_0006_carries_a_log_of_one_entry_per_report_over(db_url: str) -> None:
    upgrade(db_url, "0004")
    ids = _write_as_release_0_4(db_url)
    store = SQLStorage(db_url)  # upgrades on open
    desk = Desk.open(small_deployment(), storage=store, clock=lambda: WITA + timedelta(hours=1))
    try:
        with store.transaction() as tx:
            got = tx.get_reports(ids)
            log = tx.audit()
        # leaves in received order, with the role and outcome of their own entries
        assert [got[i].leaf_index for i in ids] == [2, 1, 0]
        assert [(got[i].submitted_role, got[i].submitted_status) for i in ids] == [
            ("monitor", "accepted"),
            ("monitor", "flagged"),
            ("monitor", "accepted"),
        ]
        # the old entries stay, and one batch entry states the tree over them
        actions = [e.action for e in log]
        assert actions[:7] == ["submit", "read_tally"] * 3 + ["submit_batch"]
        assert (log[6].principal, log[6].object) == ("migration", "leaves:0-2")
        report = desk.audit.verify()
        assert report.ok, report.reason
        assert report.tree[0] == 3
        # the desk goes on from there
        situation = SituationReport(
            report_id=uuid.uuid4(), monitor="LLG-0001", station="1673011001001",
            observed_at=WITA, stage=Stage.OPENING, status=SecurityStatus.SAFE,
        )  # fmt: skip
        system = Principal(id="import", role=Role.SYSTEM)
        assert desk.submit(situation, principal=system).leaf_index == 3
        assert desk.audit.verify().ok
        # and tampering with a migrated report is named
        with migration_connection(db_url) as (conn, _):
            conn.execute(
                sa.text("UPDATE reports SET submitted_by = 'mallory' WHERE leaf_index = 1")
            )
        bad = desk.audit.verify()
        assert (bad.ok, bad.leaf, bad.report_id) == (False, 1, ids[1])
    finally:
        desk.close()


def test_0006_downgrades_only_a_log_without_batches(db_url: str) -> None:
    upgrade(db_url)
    with migration_connection(db_url) as (conn, schema):
        command.downgrade(alembic_config(conn, schema), "0005")  # no report: no batch
    with migration_connection(db_url) as (conn, _):
        columns = {c["name"] for c in sa.inspect(conn).get_columns("reports")}
    assert "leaf_index" not in columns
    _write_as_release_0_4(db_url)
    upgrade(db_url)
    with (
        pytest.raises(RuntimeError, match="Restore the backup"),
        migration_connection(db_url) as (conn, schema),
    ):
        command.downgrade(alembic_config(conn, schema), "0005")
    store = SQLStorage(db_url)  # still at 0006, and sound
    try:
        with store.transaction() as tx:
            assert verify_chain(tx.audit()).ok
            assert tx.log_tree().size == 3
    finally:
        store.close()

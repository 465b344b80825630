"""The statements the SQL storage runs, built once: ``_PG`` for PostgreSQL (many rows as
array parameters, ``unnest``), ``_SQLITE`` for SQLite, and those both run."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect

from sipantau_adapters.storage.sql.rows import _DELIVERY_STATE, _MONITOR_COLUMNS, _REPORT_COLUMNS
from sipantau_adapters.storage.sql_models import (
    AGGREGATES,
    AUDIT,
    AUDIT_HEAD,
    DEVICE_KEYS,
    MEDIA,
    MONITORS,
    NOTIFICATIONS,
    REPORTS,
    STATIONS,
    TOKENS,
)

#: how many values one ``IN (…)`` list carries on SQLite
_CHUNK = 900
#: PostgreSQL: the temporary tables the bulk path (:mod:`.bulk`) COPYs into, for station
#: locks and upserts of many TPS
_STAGE_KEYS = sa.table(
    "sipantau_stage_keys", sa.column("contest", sa.Text()), sa.column("station", sa.Text())
)
_STAGE_STATIONS = sa.table(
    "sipantau_stage_stations",
    sa.column("contest", sa.Text()),
    sa.column("station", sa.Text()),
    sa.column("chain_id", sa.Uuid()),
    sa.column("counted_report_id", sa.Uuid()),
    sa.column("counted_version", sa.Integer()),
    sa.column("counters", sa.Text()),
)


def _unnest(*columns: tuple[str, sa.types.TypeEngine[Any]]) -> Any:
    """PostgreSQL: ``unnest(:a::T[], :b::U[], …) AS u(a, b, …)``: many rows in one
    statement with one array parameter per column."""
    fn = sa.func.unnest(*(sa.bindparam(name, type_=pg.ARRAY(t)) for name, t in columns))
    names = [sa.column(name, t) for name, t in columns]
    return fn.table_valued(*names).render_derived(name="u")


# Statements built once (SQLAlchemy then finds their compiled form in its cache at once).

_SELECT_AGGREGATES = sa.select(AGGREGATES.c.name, AGGREGATES.c.value).where(
    AGGREGATES.c.contest == sa.bindparam("contest"),
    AGGREGATES.c.region == sa.bindparam("region"),
    AGGREGATES.c.value != 0,
)


_SELECT_AGGREGATES_MANY = sa.select(
    AGGREGATES.c.region, AGGREGATES.c.name, AGGREGATES.c.value
).where(
    AGGREGATES.c.contest == sa.bindparam("contest"),
    AGGREGATES.c.region.in_(sa.bindparam("regions", expanding=True)),
    AGGREGATES.c.value != 0,
)


def _is_head() -> Any:
    newer = REPORTS.alias("newer")
    return ~sa.exists().where(
        newer.c.chain_id == REPORTS.c.chain_id, newer.c.version > REPORTS.c.version
    )


def _by_ids(column: sa.Column[Any], *, postgresql: bool) -> Any:
    if postgresql:
        return column == sa.any_(sa.bindparam("ids", type_=pg.ARRAY(column.type)))
    return column.in_(sa.bindparam("ids", expanding=True))


def _report_lookups(postgresql: bool) -> dict[str, Any]:
    select = sa.select(*_REPORT_COLUMNS)
    return {
        "get_reports": select.where(_by_ids(REPORTS.c.report_id, postgresql=postgresql)),
        "chain_heads": select.where(_by_ids(REPORTS.c.chain_id, postgresql=postgresql), _is_head()),
    }


def _upsert_stations_from(source: Any) -> Any:
    """``INSERT … SELECT`` of station states from ``source`` (a staging table or an
    ``unnest`` of arrays), replacing the rows that exist, in key order."""
    ins = pg.insert(STATIONS).from_select(
        ["contest", "station", "chain_id", "counted_report_id", "counted_version", "counters"],
        sa.select(
            source.c.contest,
            source.c.station,
            source.c.chain_id,
            source.c.counted_report_id,
            source.c.counted_version,
            sa.cast(source.c.counters, sa.JSON()),
        ).order_by(source.c.contest, source.c.station),
    )
    return ins.on_conflict_do_update(
        index_elements=["contest", "station"],
        set_={
            "chain_id": ins.excluded.chain_id,
            "counted_report_id": ins.excluded.counted_report_id,
            "counted_version": ins.excluded.counted_version,
            "counters": ins.excluded.counters,
        },
    )


def _pg_statements() -> dict[str, Any]:
    s: dict[str, Any] = _report_lookups(postgresql=True)
    key_cols = (("contest", sa.String()), ("station", sa.String()))
    u = _unnest(*key_cols)
    s["lock_insert"] = (
        pg.insert(STATIONS)
        .from_select(
            ["contest", "station"],
            sa.select(u.c.contest, u.c.station).order_by(u.c.contest, u.c.station),
        )
        .on_conflict_do_nothing(index_elements=["contest", "station"])
    )
    u = _unnest(*key_cols)
    s["lock_select"] = (
        sa.select(STATIONS)
        .join(u, sa.and_(STATIONS.c.contest == u.c.contest, STATIONS.c.station == u.c.station))
        .order_by(STATIONS.c.contest, STATIONS.c.station)
        .with_for_update(of=STATIONS)
    )
    s["select_states"] = sa.select(STATIONS).join(
        u, sa.and_(STATIONS.c.contest == u.c.contest, STATIONS.c.station == u.c.station)
    )
    # the counters as text: a whole region's are decoded in one go (see _Bulk._pg_states)
    s["select_states_range"] = sa.select(
        STATIONS.c.contest,
        STATIONS.c.station,
        STATIONS.c.chain_id,
        STATIONS.c.counted_report_id,
        STATIONS.c.counted_version,
        sa.cast(STATIONS.c.counters, sa.Text).label("counters"),
    ).where(
        STATIONS.c.contest == sa.bindparam("contest"),
        STATIONS.c.station.between(sa.bindparam("low"), sa.bindparam("high")),
    )
    k = _STAGE_KEYS
    s["lock_select_staged"] = (
        sa.select(STATIONS)
        .join(k, sa.and_(STATIONS.c.contest == k.c.contest, STATIONS.c.station == k.c.station))
        .order_by(STATIONS.c.contest, STATIONS.c.station)
        .with_for_update(of=STATIONS)
    )
    s["stations_staged"] = _upsert_stations_from(_STAGE_STATIONS)
    s["stations"] = _upsert_stations_from(
        _unnest(
            *key_cols,
            ("chain_id", sa.Uuid()),
            ("counted_report_id", sa.Uuid()),
            ("counted_version", sa.Integer()),
            ("counters", sa.Text()),
        )
    )
    u = _unnest(("contest", sa.String()), ("region", sa.String()), ("name", sa.String()),
                ("value", sa.BigInteger()))  # fmt: skip
    ins = pg.insert(AGGREGATES).from_select(
        ["contest", "region", "name", "value"],
        sa.select(u.c.contest, u.c.region, u.c.name, u.c.value).order_by(
            u.c.contest, u.c.region, u.c.name
        ),
    )
    s["aggregates"] = ins.on_conflict_do_update(
        index_elements=["contest", "region", "name"],
        set_={"value": AGGREGATES.c.value + ins.excluded.value},
    )
    s["statuses"] = (
        sa.update(REPORTS)
        .where(REPORTS.c.report_id == sa.any_(sa.bindparam("ids", type_=pg.ARRAY(sa.Uuid()))))
        .values(status=sa.bindparam("new_status"))
    )
    return s


_PG = _pg_statements()
_PG["monitors_by_id"] = sa.select(*_MONITOR_COLUMNS).where(_by_ids(MONITORS.c.id, postgresql=True))


def _sqlite_statements() -> dict[str, Any]:
    s: dict[str, Any] = _report_lookups(postgresql=False)
    s["select_states"] = sa.select(STATIONS).where(
        STATIONS.c.contest == sa.bindparam("contest"),
        STATIONS.c.station.in_(sa.bindparam("stations", expanding=True)),
    )
    s["statuses"] = (
        sa.update(REPORTS)
        .where(_by_ids(REPORTS.c.report_id, postgresql=False))
        .values(status=sa.bindparam("new_status"))
    )
    ins = sqlite_dialect.insert(STATIONS)
    s["stations"] = ins.on_conflict_do_update(
        index_elements=["contest", "station"],
        set_={
            "chain_id": ins.excluded.chain_id,
            "counted_report_id": ins.excluded.counted_report_id,
            "counted_version": ins.excluded.counted_version,
            "counters": ins.excluded.counters,
        },
    )
    ins = sqlite_dialect.insert(AGGREGATES)
    s["aggregates"] = ins.on_conflict_do_update(
        index_elements=["contest", "region", "name"],
        set_={"value": AGGREGATES.c.value + ins.excluded.value},
    )
    return s


_SQLITE = _sqlite_statements()


def _upsert(insert: Any, table: sa.Table) -> Any:
    """``INSERT … ON CONFLICT (primary key) DO UPDATE`` every other column."""
    ins = insert(table)
    key = [c.name for c in table.primary_key.columns]
    return ins.on_conflict_do_update(
        index_elements=key,
        set_={c.name: ins.excluded[c.name] for c in table.c if c.name not in key},
    )


#: (batch attribute, table, key attribute) of the records upserted by their key
_RECORDS: tuple[tuple[str, sa.Table, str], ...] = (
    ("device_keys", DEVICE_KEYS, "key_id"),
    ("tokens", TOKENS, "token_hash"),
    ("monitors", MONITORS, "id"),
)
for _name, _table, _ in _RECORDS:
    _PG[_name] = _upsert(pg.insert, _table)
    _SQLITE[_name] = _upsert(sqlite_dialect.insert, _table)

_HEAD_SELECT = sa.select(
    AUDIT_HEAD.c.seq, AUDIT_HEAD.c.link, AUDIT_HEAD.c.tree_size, AUDIT_HEAD.c.frontier
).where(AUDIT_HEAD.c.id == 1)
_HEAD_LOCK = _HEAD_SELECT.with_for_update()
_HEAD_MOVE = (
    sa.update(AUDIT_HEAD)
    .where(AUDIT_HEAD.c.id == 1, AUDIT_HEAD.c.seq == sa.bindparam("expected"))
    .values(seq=sa.bindparam("new_seq"), link=sa.bindparam("new_link"))
)
_HEAD_MOVE_TREE = (
    sa.update(AUDIT_HEAD)
    .where(
        AUDIT_HEAD.c.id == 1,
        AUDIT_HEAD.c.seq == sa.bindparam("expected"),
        AUDIT_HEAD.c.tree_size == sa.bindparam("expected_size"),
    )
    .values(
        seq=sa.bindparam("new_seq"),
        link=sa.bindparam("new_link"),
        tree_size=sa.bindparam("new_size"),
        frontier=sa.bindparam("new_frontier"),
    )
)
_LAST_ENTRY = sa.select(AUDIT.c.seq, AUDIT.c.link).order_by(AUDIT.c.seq.desc()).limit(1)
_LAST_BATCH = (
    sa.select(AUDIT.c.detail)
    .where(AUDIT.c.action == "submit_batch")
    .order_by(AUDIT.c.seq.desc())
    .limit(1)
)
#: the leaf hashes of leaves ``start`` .. ``stop`` - 1 (a range of the unique index)
_LEAF_HASHES = (
    sa.select(REPORTS.c.leaf_hash)
    .where(REPORTS.c.leaf_index >= sa.bindparam("start"))
    .where(REPORTS.c.leaf_index < sa.bindparam("stop"))
    .order_by(REPORTS.c.leaf_index)
)
_PG["heal_head"] = pg.insert(AUDIT_HEAD).on_conflict_do_nothing(index_elements=["id"])
_SQLITE["heal_head"] = sqlite_dialect.insert(AUDIT_HEAD).on_conflict_do_nothing(
    index_elements=["id"]
)
_PG["queue"] = pg.insert(NOTIFICATIONS).on_conflict_do_nothing(index_elements=["dedupe_key"])
_SQLITE["queue"] = sqlite_dialect.insert(NOTIFICATIONS).on_conflict_do_nothing(
    index_elements=["dedupe_key"]
)
# media: content-addressed, a hash stored already is skipped (the first upload stays)
_PG["media"] = pg.insert(MEDIA).on_conflict_do_nothing(index_elements=["sha256"])
_SQLITE["media"] = sqlite_dialect.insert(MEDIA).on_conflict_do_nothing(index_elements=["sha256"])
_NOTIFICATION_UPDATE = (
    sa.update(NOTIFICATIONS)
    .where(NOTIFICATIONS.c.dedupe_key == sa.bindparam("b_dedupe_key"))
    .values({name: sa.bindparam(f"b_{name}") for name in _DELIVERY_STATE})
)

"""The SQL schema of the storage port, as SQLModel table models.

These models are the *target* of the Alembic migrations in ``migrations/versions``: the
database is always created and changed by migrations (``tests/test_migrations.py`` checks
that the two agree); the models give the adapter its typed tables. They live on their own
registry and :data:`metadata`, so they never mix with an application's SQLModel tables.

What the database enforces: the report id is the primary key; ``(chain_id, version)`` is
unique; a station's state has one row per ``(contest, station)``; an aggregate counter one
row per ``(contest, region, name)``; a report's status is one of the port's statuses; an
audit entry's ``seq`` (assigned by the desk) is unique and positive, and ``audit_head`` has
one row, the last entry's ``(seq, link)`` and the report tree's size and frontier
(0005); a report's leaf index is unique (0005); a device key, a staff token and a monitor have
one row per key id, token hash and monitor id; a queued notification one row per
``dedupe_key`` (0004), its status one of the port's notification statuses; a stored photo
one row per SHA-256 of its bytes (0005).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from sipantau_core.ports import NotificationStatus, ReportStatus

__all__ = [
    "AGGREGATES",
    "AUDIT",
    "AUDIT_HEAD",
    "DECISIONS",
    "DEVICE_KEYS",
    "MEDIA",
    "MONITORS",
    "NOTIFICATIONS",
    "RELEASES",
    "REPORTS",
    "STATIONS",
    "TOKENS",
    "VERSION_TABLE",
    "AggregateRow",
    "AuditHeadRow",
    "AuditRow",
    "DecisionRow",
    "DeviceKeyRow",
    "MediaRow",
    "MonitorRow",
    "NotificationRow",
    "ReleaseRow",
    "ReportRow",
    "StationStateRow",
    "TokenRow",
    "UTCDateTime",
    "metadata",
]


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware instant. PostgreSQL: ``TIMESTAMPTZ``. SQLite: the UTC wall time
    with microseconds (``YYYY-MM-DD HH:MM:SS.ffffff``, which sorts by instant), read back
    as an aware datetime in UTC. Naive datetimes are refused: their instant is unknown."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"a naive datetime ({value.isoformat()}) has no instant to store")
        if dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class _Base(SQLModel, registry=registry()):
    """The abstract base of sipantau's tables: its own registry and metadata."""


#: The metadata of every sipantau table (the migrations' target).
metadata: sa.MetaData = _Base.metadata

#: Alembic's version table (in the same schema as the tables).
VERSION_TABLE = "sipantau_alembic_version"

_STATUSES = ", ".join(f"'{s.value}'" for s in ReportStatus)


class ReportRow(_Base, table=True):
    """A stored report (:class:`~sipantau_core.ports.StoredReport`)."""

    __tablename__ = "reports"
    __table_args__ = (
        sa.UniqueConstraint("chain_id", "version", name="uq_reports_chain_version"),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name="ck_reports_status"),
        sa.CheckConstraint("version >= 1", name="ck_reports_version"),
        # 0002: region/station listings and kind/contest filters
        sa.Index("ix_reports_station", "station"),
        sa.Index("ix_reports_kind_contest", "kind", "contest"),
        # 0005: the report's leaf in the audit log's Merkle tree, one report per leaf
        sa.Index("uq_reports_leaf_index", "leaf_index", unique=True),
    )

    report_id: uuid.UUID = Field(sa_type=sa.Uuid(), primary_key=True)
    chain_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False)
    version: int = Field(sa_type=sa.Integer(), nullable=False)
    kind: str = Field(sa_type=sa.String(), nullable=False)
    station: str = Field(sa_type=sa.String(), nullable=False)
    contest: str | None = Field(default=None, sa_type=sa.String(), nullable=True)
    monitor: str = Field(sa_type=sa.String(), nullable=False)
    stage: str | None = Field(default=None, sa_type=sa.String(), nullable=True)
    observed_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    received_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    digest: str = Field(sa_type=sa.String(), nullable=False)
    payload: str = Field(sa_type=sa.Text(), nullable=False)
    status: str = Field(sa_type=sa.String(), nullable=False)
    verdict: str = Field(sa_type=sa.Text(), nullable=False)
    submitted_by: str = Field(sa_type=sa.String(), nullable=False)
    # 0005: what the report's leaf in the audit log records, and the leaf
    submitted_role: str = Field(
        default="", sa_type=sa.String(), nullable=False, sa_column_kwargs={"server_default": ""}
    )
    submitted_status: str = Field(
        default="", sa_type=sa.String(), nullable=False, sa_column_kwargs={"server_default": ""}
    )
    leaf_index: int | None = Field(default=None, sa_type=sa.BigInteger(), nullable=True)
    leaf_hash: str = Field(
        default="", sa_type=sa.String(), nullable=False, sa_column_kwargs={"server_default": ""}
    )


class StationStateRow(_Base, table=True):
    """Per (contest, station): the chain that holds its tally, and what it counts. A row
    with every column but the key empty is the same as no row (it is inserted to lock)."""

    __tablename__ = "station_states"

    contest: str = Field(sa_type=sa.String(), primary_key=True)
    station: str = Field(sa_type=sa.String(), primary_key=True)
    chain_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), nullable=True)
    counted_report_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), nullable=True)
    counted_version: int | None = Field(default=None, sa_type=sa.Integer(), nullable=True)
    counters: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON(), nullable=True)


class AggregateRow(_Base, table=True):
    """One counter of a region for a contest, kept up to date by incremental upserts."""

    __tablename__ = "aggregates"

    contest: str = Field(sa_type=sa.String(), primary_key=True)
    region: str = Field(sa_type=sa.String(), primary_key=True)
    name: str = Field(sa_type=sa.String(), primary_key=True)
    value: int = Field(default=0, sa_type=sa.BigInteger(), nullable=False)


class DecisionRow(_Base, table=True):
    """A desk officer's decision; ``id`` keeps the order they were made in."""

    __tablename__ = "decisions"
    __table_args__ = (sa.Index("ix_decisions_report_id", "report_id"),)

    id: int | None = Field(default=None, sa_type=sa.Integer(), primary_key=True)
    report_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False)
    action: str = Field(sa_type=sa.String(), nullable=False)
    principal: str = Field(sa_type=sa.String(), nullable=False)
    reason: str = Field(sa_type=sa.Text(), nullable=False)
    at: datetime = Field(sa_type=UTCDateTime(), nullable=False)


class ReleaseRow(_Base, table=True):
    """A region released to viewers."""

    __tablename__ = "releases"

    id: int | None = Field(default=None, sa_type=sa.Integer(), primary_key=True)
    region: str = Field(sa_type=sa.String(), nullable=False)
    contest: str | None = Field(default=None, sa_type=sa.String(), nullable=True)
    principal: str = Field(sa_type=sa.String(), nullable=False)
    at: datetime = Field(sa_type=UTCDateTime(), nullable=False)


class AuditRow(_Base, table=True):
    """One entry of who did what. ``seq`` and ``link`` (the hash chain) are assigned by the
    desk (0003: no longer by the database); a ``seq`` taken already is refused."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.CheckConstraint("seq >= 1", name="ck_audit_log_seq"),)

    seq: int = Field(
        sa_type=sa.Integer(), primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    principal: str = Field(sa_type=sa.String(), nullable=False)
    role: str = Field(sa_type=sa.String(), nullable=False)
    action: str = Field(sa_type=sa.String(), nullable=False)
    object: str = Field(sa_type=sa.String(), nullable=False)
    outcome: str = Field(sa_type=sa.String(), nullable=False)
    detail: str = Field(default="", sa_type=sa.Text(), nullable=False)
    region: str = Field(
        default="", sa_type=sa.String(), nullable=False, sa_column_kwargs={"server_default": ""}
    )
    link: str = Field(sa_type=sa.String(), nullable=False)


class AuditHeadRow(_Base, table=True):
    """The audit log's head: one row (``id`` 1), the last entry's ``(seq, link)``, or
    ``(0, "0" * 64)`` for an empty log. Every write that appends entries moves it (and
    PostgreSQL writers lock it first), so the chain has one writer at a time and the head
    is read without looking at the log."""

    __tablename__ = "audit_head"
    __table_args__ = (
        sa.CheckConstraint("id = 1", name="ck_audit_head_one_row"),
        sa.CheckConstraint("seq >= 0", name="ck_audit_head_seq"),
    )

    id: int = Field(
        sa_type=sa.Integer(), primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    seq: int = Field(sa_type=sa.Integer(), nullable=False)
    link: str = Field(sa_type=sa.String(), nullable=False)
    # 0005: the report tree as of the head (size, frontier: see sipantau_core.merkle)
    tree_size: int = Field(
        default=0, sa_type=sa.BigInteger(), nullable=False, sa_column_kwargs={"server_default": "0"}
    )
    frontier: str = Field(
        default="", sa_type=sa.Text(), nullable=False, sa_column_kwargs={"server_default": ""}
    )


class DeviceKeyRow(_Base, table=True):
    """A monitor's enrolled device key (:class:`~sipantau_core.ports.DeviceKeyRecord`)."""

    __tablename__ = "device_keys"
    __table_args__ = (sa.Index("ix_device_keys_monitor", "monitor"),)

    key_id: str = Field(sa_type=sa.String(), primary_key=True)
    monitor: str = Field(sa_type=sa.String(), nullable=False)
    public_key: bytes = Field(sa_type=sa.LargeBinary(), nullable=False)
    enrolled_by: str = Field(sa_type=sa.String(), nullable=False)
    enrolled_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    revoked_by: str | None = Field(default=None, sa_type=sa.String(), nullable=True)


class TokenRow(_Base, table=True):
    """A desk staff token, by its hash only (:class:`~sipantau_core.ports.TokenRecord`)."""

    __tablename__ = "staff_tokens"

    token_hash: str = Field(sa_type=sa.String(), primary_key=True)
    principal: str = Field(sa_type=sa.String(), nullable=False)
    role: str = Field(sa_type=sa.String(), nullable=False)
    scope: str = Field(sa_type=sa.String(), nullable=False)
    issued_by: str = Field(sa_type=sa.String(), nullable=False)
    issued_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)


class MonitorRow(_Base, table=True):
    """A monitor enrolled at the desk, personal data sealed
    (:class:`~sipantau_core.ports.MonitorRecord`): ``BYTEA`` / ``BLOB``."""

    __tablename__ = "monitors"

    id: str = Field(sa_type=sa.String(), primary_key=True)
    station: str = Field(sa_type=sa.String(), nullable=False)
    name: bytes | None = Field(default=None, sa_type=sa.LargeBinary(), nullable=True)
    phone: bytes | None = Field(default=None, sa_type=sa.LargeBinary(), nullable=True)
    national_id: bytes | None = Field(default=None, sa_type=sa.LargeBinary(), nullable=True)
    enrolled_by: str = Field(sa_type=sa.String(), nullable=False)
    enrolled_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)


_NOTIFICATION_STATUSES = ", ".join(f"'{s.value}'" for s in NotificationStatus)


class NotificationRow(_Base, table=True):
    """A queued notification (:class:`~sipantau_core.ports.NotificationRecord`), 0004:
    ``seq`` (the queue's order) is assigned by the database; ``dedupe_key`` is unique, so
    the same event, rule, channel and recipient is queued once; the senders look for the
    pending ones by ``(status, next_attempt_at)``."""

    __tablename__ = "notifications"
    __table_args__ = (
        sa.UniqueConstraint("dedupe_key", name="uq_notifications_dedupe_key"),
        sa.CheckConstraint(f"status IN ({_NOTIFICATION_STATUSES})", name="ck_notifications_status"),
        sa.CheckConstraint("attempts >= 0", name="ck_notifications_attempts"),
        sa.Index("ix_notifications_status_due", "status", "next_attempt_at"),
    )

    seq: int | None = Field(default=None, sa_type=sa.Integer(), primary_key=True)
    dedupe_key: str = Field(sa_type=sa.String(), nullable=False)
    event: str = Field(sa_type=sa.String(), nullable=False)
    rule: str = Field(sa_type=sa.String(), nullable=False)
    channel: str = Field(sa_type=sa.String(), nullable=False)
    recipient: str = Field(sa_type=sa.String(), nullable=False)
    kind: str = Field(sa_type=sa.String(), nullable=False)
    payload: str = Field(sa_type=sa.Text(), nullable=False)
    created_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    status: str = Field(sa_type=sa.String(), nullable=False)
    attempts: int = Field(sa_type=sa.Integer(), nullable=False)
    last_error: str = Field(sa_type=sa.Text(), nullable=False)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    message_id: str = Field(sa_type=sa.String(), nullable=False)
    given_up_reason: str = Field(sa_type=sa.Text(), nullable=False)


class MediaRow(_Base, table=True):
    """A photo a report references, by the SHA-256 of its bytes
    (:class:`~sipantau_core.ports.MediaRecord`), 0005: the bytes as ``BYTEA`` / ``BLOB``;
    the hash is the primary key, so the same bytes are stored once."""

    __tablename__ = "media"
    __table_args__ = (sa.CheckConstraint("size >= 0", name="ck_media_size"),)

    sha256: str = Field(sa_type=sa.String(), primary_key=True)
    content_type: str = Field(sa_type=sa.String(), nullable=False)
    size: int = Field(sa_type=sa.Integer(), nullable=False)
    data: bytes = Field(sa_type=sa.LargeBinary(), nullable=False)
    uploaded_by: str = Field(sa_type=sa.String(), nullable=False)
    uploaded_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)


REPORTS: sa.Table = metadata.tables["reports"]
STATIONS: sa.Table = metadata.tables["station_states"]
AGGREGATES: sa.Table = metadata.tables["aggregates"]
DECISIONS: sa.Table = metadata.tables["decisions"]
RELEASES: sa.Table = metadata.tables["releases"]
AUDIT: sa.Table = metadata.tables["audit_log"]
AUDIT_HEAD: sa.Table = metadata.tables["audit_head"]
DEVICE_KEYS: sa.Table = metadata.tables["device_keys"]
TOKENS: sa.Table = metadata.tables["staff_tokens"]
MONITORS: sa.Table = metadata.tables["monitors"]
NOTIFICATIONS: sa.Table = metadata.tables["notifications"]
MEDIA: sa.Table = metadata.tables["media"]

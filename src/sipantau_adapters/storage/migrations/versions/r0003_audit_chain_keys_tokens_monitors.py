"""The tamper-evident audit log, device keys, staff tokens and monitors.

- ``audit_log`` gets ``region`` (what the entry is about, "" when nothing) and ``link``
  (the hash chain of :mod:`sipantau_core.audit`); ``seq`` stays the primary key but is no
  longer assigned by the database (the desk numbers and chains the entries), and must be
  positive. The entries already in the log are chained here, in ``seq`` order. Their
  ``seq`` is kept when it runs 1, 2, 3, …; a log with gaps (PostgreSQL's sequence skips
  the numbers of rolled-back inserts) is renumbered 1…n in the same order, as a chain has
  no gaps.
- ``audit_head``: one row, the last entry's ``(seq, link)`` (``(0, "0" * 64)`` when the log
  is empty), which every writer of the log moves (and locks first on PostgreSQL).
- ``device_keys``, ``staff_tokens`` (hashes only) and ``monitors`` (personal data sealed,
  as bytes: ``BYTEA`` / ``BLOB``).

Revision ID: 0003
Revises: 0002
Create Date: 2024-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from sipantau_core.audit import GENESIS, link_hash
from sipantau_core.ports import AuditRecord

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: how many entries are chained per round trip
_PAGE = 5000

# The audit log as this revision reads and writes it (not the models: they move on).
_AUDIT = sa.table(
    "audit_log",
    sa.column("seq", sa.Integer()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("principal", sa.String()),
    sa.column("role", sa.String()),
    sa.column("action", sa.String()),
    sa.column("object", sa.String()),
    sa.column("outcome", sa.String()),
    sa.column("detail", sa.Text()),
    sa.column("region", sa.String()),
    sa.column("link", sa.String()),
)


def _at(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _aware(at: datetime) -> datetime:
    # SQLite keeps the UTC wall time (see sql_models.UTCDateTime)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _chain_the_log(conn: sa.Connection) -> tuple[int, str]:
    """Chain the entries in ``seq`` order (renumbering them 1…n if there are gaps, which
    never collides: each new number is at most the old one and the rows are moved in
    ascending order); the head."""
    a = _AUDIT
    select = (
        sa.select(a.c.seq, a.c.at, a.c.principal, a.c.role, a.c.action, a.c.object,
                  a.c.outcome, a.c.detail, a.c.region)
        .where(a.c.seq > sa.bindparam("after"))
        .order_by(a.c.seq)
        .limit(_PAGE)
    )  # fmt: skip
    update = (
        sa.update(a)
        .where(a.c.seq == sa.bindparam("old_seq"))
        .values(seq=sa.bindparam("new_seq"), link=sa.bindparam("new_link"))
    )
    seq, link, after = 0, GENESIS, 0
    while True:
        rows = conn.execute(select, {"after": after}).all()
        if not rows:
            return seq, link
        updates: list[dict[str, Any]] = []
        for row in rows:
            seq += 1
            entry = AuditRecord(
                at=_aware(row.at),
                principal=row.principal,
                role=row.role,
                action=row.action,
                object=row.object,
                outcome=row.outcome,
                seq=seq,
                detail=row.detail,
                region=row.region,
            )
            link = link_hash(link, entry)
            updates.append({"old_seq": row.seq, "new_seq": seq, "new_link": link})
        after = rows[-1].seq
        if all(u["old_seq"] == u["new_seq"] for u in updates):
            conn.execute(update, updates)
        else:
            for u in updates:  # one at a time, in order: no two rows ever share a seq
                conn.execute(update, u)


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("region", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("link", sa.String(), nullable=True))
    if conn.dialect.name == "postgresql":
        # 0001 made seq a SERIAL; the desk numbers the entries now.
        sequence = conn.execute(
            sa.text("SELECT pg_get_serial_sequence('audit_log', 'seq')")
        ).scalar()
        op.alter_column("audit_log", "seq", existing_type=sa.Integer(), server_default=None)
        if sequence is not None:
            op.execute(f"DROP SEQUENCE {sequence}")
    head_seq, head_link = _chain_the_log(conn)
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("link", existing_type=sa.String(), nullable=False)
        batch.create_check_constraint("ck_audit_log_seq", "seq >= 1")

    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("link", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint("id = 1", name="ck_audit_head_one_row"),
        sa.CheckConstraint("seq >= 0", name="ck_audit_head_seq"),
    )
    assert audit_head is not None
    op.bulk_insert(audit_head, [{"id": 1, "seq": head_seq, "link": head_link}])

    op.create_table(
        "device_keys",
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("monitor", sa.String(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("enrolled_by", sa.String(), nullable=False),
        _at("enrolled_at"),
        _at("revoked_at", nullable=True),
        sa.Column("revoked_by", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_index("ix_device_keys_monitor", "device_keys", ["monitor"])
    op.create_table(
        "staff_tokens",
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("principal", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("issued_by", sa.String(), nullable=False),
        _at("issued_at"),
        _at("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_table(
        "monitors",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("station", sa.String(), nullable=False),
        sa.Column("name", sa.LargeBinary(), nullable=True),
        sa.Column("phone", sa.LargeBinary(), nullable=True),
        sa.Column("national_id", sa.LargeBinary(), nullable=True),
        sa.Column("enrolled_by", sa.String(), nullable=False),
        _at("enrolled_at"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    conn = op.get_bind()
    op.drop_table("monitors")
    op.drop_table("staff_tokens")
    op.drop_index("ix_device_keys_monitor", table_name="device_keys")
    op.drop_table("device_keys")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("ck_audit_log_seq", type_="check")
        batch.drop_column("link")
        batch.drop_column("region")
    if conn.dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE audit_log_seq_seq OWNED BY audit_log.seq")
        op.execute(
            "SELECT setval('audit_log_seq_seq', COALESCE((SELECT max(seq) FROM audit_log), 0)"
            " + 1, false)"
        )
        op.alter_column(
            "audit_log",
            "seq",
            existing_type=sa.Integer(),
            server_default=sa.text("nextval('audit_log_seq_seq'::regclass)"),
        )

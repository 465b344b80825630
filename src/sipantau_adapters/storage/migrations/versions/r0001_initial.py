"""The initial schema: reports, station states, aggregates, decisions, releases, audit.

Revision ID: 0001
Revises:
Create Date: 2024-11-20
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'accepted', 'flagged', 'overridden', 'rejected', 'superseded'"


def _at(name: str = "at") -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("chain_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("station", sa.String(), nullable=False),
        sa.Column("contest", sa.String(), nullable=True),
        sa.Column("monitor", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=True),
        _at("observed_at"),
        _at("received_at"),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("submitted_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("report_id"),
        sa.UniqueConstraint("chain_id", "version", name="uq_reports_chain_version"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_reports_status"),
        sa.CheckConstraint("version >= 1", name="ck_reports_version"),
    )
    op.create_table(
        "station_states",
        sa.Column("contest", sa.String(), nullable=False),
        sa.Column("station", sa.String(), nullable=False),
        sa.Column("chain_id", sa.Uuid(), nullable=True),
        sa.Column("counted_report_id", sa.Uuid(), nullable=True),
        sa.Column("counted_version", sa.Integer(), nullable=True),
        sa.Column("counters", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("contest", "station"),
    )
    op.create_table(
        "aggregates",
        sa.Column("contest", sa.String(), nullable=False),
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("contest", "region", "name"),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("principal", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _at(),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_decisions_report_id", "decisions", ["report_id"])
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("contest", sa.String(), nullable=True),
        sa.Column("principal", sa.String(), nullable=False),
        _at(),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        _at(),
        sa.Column("principal", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("object", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )


def downgrade() -> None:
    for table in ("audit_log", "releases", "decisions", "aggregates", "station_states"):
        op.drop_table(table)
    op.drop_table("reports")

"""The notification queue: alerts waiting to go out through the desk's channels.

- ``notifications``: one row per alert, escalation rule, channel and recipient
  (``dedupe_key`` unique: the same event is queued once), numbered by ``seq`` in the
  order it was queued, with its delivery state (``status`` pending / sent / given_up,
  ``attempts``, ``next_attempt_at``, ``last_error``, ``sent_at``, ``message_id``,
  ``given_up_reason``); indexed by ``(status, next_attempt_at)`` for the senders.

Revision ID: 0004
Revises: 0003
Create Date: 2024-12-09
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dedupe_key", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        _at("created_at"),
        _at("next_attempt_at"),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        _at("sent_at", nullable=True),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("given_up_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("dedupe_key", name="uq_notifications_dedupe_key"),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'given_up')", name="ck_notifications_status"
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_notifications_attempts"),
    )
    op.create_index("ix_notifications_status_due", "notifications", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_notifications_status_due", table_name="notifications")
    op.drop_table("notifications")

"""Indexes for the report listings: by station (region prefixes are ranges over it) and
by kind and contest.

Revision ID: 0002
Revises: 0001
Create Date: 2024-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_reports_station", "reports", ["station"])
    op.create_index("ix_reports_kind_contest", "reports", ["kind", "contest"])


def downgrade() -> None:
    op.drop_index("ix_reports_kind_contest", table_name="reports")
    op.drop_index("ix_reports_station", table_name="reports")

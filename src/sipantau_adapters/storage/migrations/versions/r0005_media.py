"""Media: the photos that reports reference (a tally's ``sheet_sha256``, an incident's
``media_sha256``).

- ``media``: one row per SHA-256 of the bytes (the primary key: the same bytes are stored
  once), with the content type the desk read from the bytes, the size, the bytes
  (``BYTEA`` / ``BLOB``), who uploaded them first and when.

Revision ID: 0005
Revises: 0004
Create Date: 2024-12-16
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("content_type", sa.String(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.String(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
        sa.CheckConstraint("size >= 0", name="ck_media_size"),
    )


def downgrade() -> None:
    op.drop_table("media")

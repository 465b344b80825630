"""The audit log in Merkle batches (#13).

- ``reports`` gets what its leaf in the audit log's Merkle tree records beyond its own
  columns (``submitted_role``, ``submitted_status``: who sent it in which role, and
  what it got), its place in the tree (``leaf_index``, unique) and its leaf hash
  (``leaf_hash``).
- ``audit_head`` gets the tree as of the head: ``tree_size`` and ``frontier``.

Downgrading is refused once the log has a batch (it would no longer verify). The log
of an older desk is carried over: its reports become leaves 0, 1, 2, … in the
order they were received (then by id), each with the role and outcome of its own
``submit`` entry (those entries stay in the chain as they were, and still verify), and
one chained ``submit_batch`` entry by ``migration`` states the tree over them.

Revision ID: 0006
Revises: 0005
Create Date: 2024-12-16
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from sipantau_core.audit import chain
from sipantau_core.audit_leaves import Batch, batch_entry, report_leaf
from sipantau_core.merkle import Frontier
from sipantau_core.ports import ReportStatus, StoredReport

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: how many reports are numbered per round trip
_PAGE = 5000

# The tables as this revision reads and writes them (not the models: they move on).
_REPORTS = sa.table(
    "reports",
    sa.column("report_id", sa.Uuid()),
    sa.column("chain_id", sa.Uuid()),
    sa.column("version", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("station", sa.String()),
    sa.column("received_at", sa.DateTime(timezone=True)),
    sa.column("digest", sa.String()),
    sa.column("submitted_by", sa.String()),
    sa.column("submitted_role", sa.String()),
    sa.column("submitted_status", sa.String()),
    sa.column("leaf_index", sa.BigInteger()),
    sa.column("leaf_hash", sa.String()),
)
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
_HEAD = sa.table(
    "audit_head",
    sa.column("id", sa.Integer()),
    sa.column("seq", sa.Integer()),
    sa.column("link", sa.String()),
    sa.column("tree_size", sa.BigInteger()),
    sa.column("frontier", sa.Text()),
)
_OUTCOMES = ("accepted", "flagged")


def _aware(at: datetime) -> datetime:
    # SQLite keeps the UTC wall time (see sql_models.UTCDateTime)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _sql_time(conn: sa.Connection, at: datetime) -> Any:
    if conn.dialect.name == "sqlite":
        return at.astimezone(UTC).replace(tzinfo=None)
    return at


def _submissions(conn: sa.Connection) -> dict[str, tuple[str, str]]:
    """Per report id (text): the role and outcome of its first ``submit`` entry."""
    a = _AUDIT
    rows = conn.execute(
        sa.select(a.c.object, a.c.role, a.c.outcome)
        .where(a.c.action == "submit", a.c.outcome.in_(_OUTCOMES))
        .order_by(a.c.seq)
    )
    found: dict[str, tuple[str, str]] = {}
    for obj, role, outcome in rows:
        if obj.startswith("report:"):
            found.setdefault(obj.removeprefix("report:"), (role, outcome))
    return found


def _number_the_reports(conn: sa.Connection) -> Frontier:
    """Number every report as a leaf, in received order, and return the tree."""
    r = _REPORTS
    submitted = _submissions(conn)
    select = sa.select(
        r.c.report_id, r.c.chain_id, r.c.version, r.c.kind, r.c.station, r.c.received_at,
        r.c.digest, r.c.submitted_by,
    ).order_by(r.c.received_at, r.c.report_id)  # fmt: skip
    update = (
        sa.update(r)
        .where(r.c.report_id == sa.bindparam("rid"))
        .values(
            leaf_index=sa.bindparam("new_index"),
            leaf_hash=sa.bindparam("new_hash"),
            submitted_role=sa.bindparam("new_role"),
            submitted_status=sa.bindparam("new_status"),
        )
    )
    frontier = Frontier()
    page: list[dict[str, Any]] = []
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for row in conn.execute(select).all():
        report_id: uuid.UUID = row.report_id
        role, outcome = submitted.get(str(report_id), ("", ""))
        leaf_data = StoredReport(
            report_id=report_id, chain_id=row.chain_id, version=row.version, kind=row.kind,
            station=row.station, contest=None, monitor="", stage=None, observed_at=epoch,
            received_at=_aware(row.received_at), digest=row.digest, payload="",
            status=ReportStatus.ACCEPTED, verdict="[]", submitted_by=row.submitted_by,
            submitted_role=role, submitted_status=outcome,
        )  # fmt: skip
        leaf = report_leaf(leaf_data, frontier.size)
        page.append(
            {
                "rid": report_id,
                "new_index": frontier.size,
                "new_hash": leaf.hex(),
                "new_role": role,
                "new_status": outcome,
            }
        )
        frontier.append(leaf)
        if len(page) == _PAGE:
            conn.execute(update, page)
            page = []
    if page:
        conn.execute(update, page)
    return frontier


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("reports") as batch:
        batch.add_column(
            sa.Column("submitted_role", sa.String(), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("submitted_status", sa.String(), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("leaf_index", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("leaf_hash", sa.String(), nullable=False, server_default=""))
    op.create_index("uq_reports_leaf_index", "reports", ["leaf_index"], unique=True)
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(
            sa.Column("tree_size", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("frontier", sa.Text(), nullable=False, server_default=""))

    frontier = _number_the_reports(conn)
    if not frontier.size:
        return
    head = conn.execute(sa.select(_HEAD.c.seq, _HEAD.c.link).where(_HEAD.c.id == 1)).first()
    if head is None:  # every 0003 database has the row; one deleted by hand is healed later
        last = conn.execute(
            sa.select(_AUDIT.c.seq, _AUDIT.c.link).order_by(_AUDIT.c.seq.desc()).limit(1)
        ).first()
        head_at = (last.seq, last.link) if last is not None else (0, "0" * 64)
        conn.execute(sa.insert(_HEAD).values(id=1, seq=head_at[0], link=head_at[1]))
    else:
        head_at = (head.seq, head.link)
    carried = Batch(0, frontier.size, frontier.size, frontier.root().hex())
    entry = batch_entry(datetime.now(UTC), "migration", "system", carried)
    [numbered] = chain(head_at, [entry])
    values = {
        "seq": numbered.seq,
        "at": _sql_time(conn, numbered.at),
        "principal": numbered.principal,
        "role": numbered.role,
        "action": numbered.action,
        "object": numbered.object,
        "outcome": numbered.outcome,
        "detail": numbered.detail,
        "region": numbered.region,
        "link": numbered.link,
    }
    conn.execute(sa.insert(_AUDIT).values(**values))
    conn.execute(
        sa.update(_HEAD)
        .where(_HEAD.c.id == 1)
        .values(
            seq=numbered.seq,
            link=numbered.link,
            tree_size=frontier.size,
            frontier=frontier.to_text(),
        )
    )


def downgrade() -> None:
    """Refused once the log has a batch: its entries would state leaves that are gone,
    and the log would not verify again after an upgrade. Restore the backup taken before
    the upgrade instead."""
    conn = op.get_bind()
    batches = conn.execute(
        sa.select(sa.func.count()).select_from(_AUDIT).where(_AUDIT.c.action == "submit_batch")
    ).scalar()
    if batches:
        raise RuntimeError(
            f"the audit log holds {batches} batch entries over the reports' Merkle tree; "
            "without the reports' leaves (0006) it would no longer verify. Restore the "
            "backup taken before upgrading to 0006 instead of downgrading."
        )
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("frontier")
        batch.drop_column("tree_size")
    op.drop_index("uq_reports_leaf_index", table_name="reports")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("leaf_hash")
        batch.drop_column("leaf_index")
        batch.drop_column("submitted_status")
        batch.drop_column("submitted_role")

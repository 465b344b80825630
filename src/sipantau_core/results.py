"""What the desk answers: receipts, counts, the state of each TPS, incidents, findings.

Plain frozen values with no behaviour beyond a few derived properties; the use cases in
:mod:`sipantau_core.desk` build them, the HTTP adapter serialises them, and report events
(:mod:`sipantau_core.events`) carry a :class:`Receipt`. Importing this module imports no
use case.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal
from uuid import UUID

import attrs

from sipantau_core.domain import SecurityStatus, Stage
from sipantau_core.errors import SipantauError
from sipantau_core.rules import Violation

__all__ = [
    "BulkResult",
    "IncidentView",
    "MediaReceipt",
    "Receipt",
    "ReceiptStatus",
    "StageProgress",
    "StageState",
    "StationStatus",
    "Tally",
    "TpsAnomaly",
]

ReceiptStatus = Literal["accepted", "flagged", "duplicate", "overridden", "rejected"]


@attrs.frozen
class Receipt:
    """What the desk answers a submission (and a decision).

    ``status`` is ``accepted`` (stored and counted), ``flagged`` (stored, breaks a hard
    rule, kept out of the counts), ``duplicate`` (the same report was stored already:
    nothing changed; ``first_status`` is what the first submission got), or after a
    decision ``overridden`` / ``rejected``.

    What the monitor keeps to check later that its report is in the audit log (#13):
    ``leaf_index`` and ``leaf_hash`` (hex), the report's place and hash in the log's
    Merkle tree, and the tree head after its batch (``tree_size`` leaves, ``tree_root``
    hex). With an inclusion proof for a signed checkpoint (``desk.audit.inclusion_proof``,
    :func:`sipantau_core.proofs.check_inclusion`), the leaf is shown to be in the log. A
    duplicate carries the first submission's leaf, without a tree head.
    """

    report_id: UUID
    status: ReceiptStatus
    version: int
    chain_id: UUID
    station: str
    received_at: datetime
    violations: tuple[Violation, ...] = ()
    first_status: str | None = None
    leaf_index: int | None = None
    leaf_hash: str = ""
    tree_size: int | None = None
    tree_root: str = ""

    @property
    def counted(self) -> bool:
        return self.status in ("accepted", "overridden") or (
            self.status == "duplicate" and self.first_status in ("accepted", "overridden")
        )


@attrs.frozen
class Tally:
    """The counts of a region (or one TPS) for one contest."""

    region: str
    contest: str
    votes: Mapping[int, int]
    valid: int
    invalid: int
    total: int
    stations_counted: int
    stations_expected: int
    registered_covered: int
    registered_expected: int

    @property
    def share(self) -> dict[int, float]:
        """Each option's share of the valid votes counted so far (0 when none)."""
        return {n: (v / self.valid if self.valid else 0.0) for n, v in self.votes.items()}

    @property
    def progress(self) -> float:
        """The share of the region's TPS counted."""
        return self.stations_counted / self.stations_expected if self.stations_expected else 0.0


@attrs.frozen
class StageState:
    """One stage of one TPS: ``in`` (on time), ``late``, ``missing`` (deadline passed,
    nothing in) or ``pending`` (deadline not yet passed)."""

    stage: Stage
    state: Literal["in", "late", "missing", "pending"]
    deadline: datetime
    reported_at: datetime | None = None
    security: SecurityStatus | None = None


@attrs.frozen
class StationStatus:
    station: str
    stages: tuple[StageState, ...]
    tally: str | None  # the status of the station's newest tally, if any

    def stage(self, stage: Stage) -> StageState:
        return next(s for s in self.stages if s.stage is stage)


@attrs.frozen
class StageProgress:
    """The stage reports of the TPS within one region: how many TPS, and per stage how
    many reported by the deadline (``on_time``), after it (``late``), or not at all
    once it passed (``missing``); the rest are not due yet."""

    region: str
    stations: int
    stages: tuple[tuple[Stage, int, int, int], ...]  # (stage, on_time, late, missing)


@attrs.frozen
class IncidentView:
    station: str
    report_id: UUID
    stage: Stage
    observed_at: datetime
    category: str
    severity: int
    text: str
    media_sha256: str | None


@attrs.frozen
class MediaReceipt:
    """What the desk answers an upload of a photo: ``stored``, or ``duplicate`` when the
    same bytes were stored already (nothing changed; ``uploaded_at`` is the first
    upload's). ``content_type`` is what the desk read from the bytes."""

    sha256: str
    status: Literal["stored", "duplicate"]
    content_type: str
    size: int
    station: str
    uploaded_at: datetime


@attrs.frozen
class TpsAnomaly:
    """What the desk's screens found at one TPS (see :meth:`Desk.anomalies`)."""

    station: str
    rule_codes: tuple[str, ...]
    turnout_z: float | None = None
    single_candidate: int | None = None


@attrs.frozen
class BulkResult:
    """The outcome of :meth:`Desk.submit_many`, one item per report in order: a
    :class:`Receipt`, or the :class:`SipantauError` that :meth:`Desk.submit` would have
    raised for it."""

    items: tuple[Receipt | SipantauError, ...]

    @property
    def receipts(self) -> list[Receipt]:
        return [x for x in self.items if isinstance(x, Receipt)]

    @property
    def errors(self) -> list[tuple[int, SipantauError]]:
        return [(i, x) for i, x in enumerate(self.items) if isinstance(x, SipantauError)]

    def count(self, status: str) -> int:
        return sum(1 for x in self.receipts if x.status == status)

    def __len__(self) -> int:
        return len(self.items)

"""The audit log's report leaves and batch entries (#13).

Every report the desk stores is a leaf of one log-wide Merkle tree (RFC 6962, see
:mod:`sipantau_core.merkle`), numbered 0, 1, 2, … in the order it was stored. The leaf's
data is a domain-separated canonical JSON object of what the per-report audit entry
recorded before (who submitted it, with which role, when, about which TPS, and what it
got) and the report's own identity (id, chain, version, kind, and the SHA-256 of its
canonical payload): changing any of it, or moving the report to another place in the
tree, changes its leaf hash.

Each batch of reports (one ``submit_many`` transaction; a single ``submit`` is a batch of
one) appends *one* chained audit entry, ``submit_batch``, whose detail carries the
batch's first leaf, its number of leaves, and the tree's size and root after it: the
hash chain covers the tree heads, and the tree covers the reports.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Final

import attrs

from sipantau_core.ports import AuditRecord, StoredReport
from sipantau_core.wire import _json_str

__all__ = [
    "BATCH_ACTION",
    "Batch",
    "batch_entry",
    "batch_from_detail",
    "batch_of",
    "report_leaf",
    "report_leaf_data",
]

#: The action of the chained entry a batch of reports appends.
BATCH_ACTION: Final = "submit_batch"
_LEAF_TAG_TEXT: Final = "sipantau/report-leaf/v1\x00"
_sha256 = hashlib.sha256
_LAST_AT: tuple[datetime | None, str] = (None, "")


def _utc_text(at: datetime) -> str:
    """``at`` in UTC, ISO 8601 with microseconds (the reports of a batch share one
    time: written once)."""
    global _LAST_AT  # one tuple, swapped whole: safe across threads
    last = _LAST_AT
    if last[0] is at:
        return last[1]
    text = at.astimezone(UTC).isoformat(timespec="microseconds")
    _LAST_AT = (at, text)
    return text


def _leaf_text(report: StoredReport, index: int) -> str:
    q = _json_str
    report_id = str(report.report_id)
    chain_id = report_id if report.chain_id == report.report_id else str(report.chain_id)
    return (
        f'{{"at":"{_utc_text(report.received_at)}","chain":"{chain_id}",'
        f'"digest":{q(report.digest)},"index":{int(index)},"kind":{q(report.kind)},'
        f'"outcome":{q(report.submitted_status)},"principal":{q(report.submitted_by)},'
        f'"region":{q(report.station)},"report":"{report_id}",'
        f'"role":{q(report.submitted_role)},"version":{int(report.version)}}}'
    )


def report_leaf_data(report: StoredReport, index: int) -> bytes:
    """The canonical data of ``report`` as leaf ``index``: a tag, then the JSON object of
    the fields below, keys sorted, no white space (as ``json.dumps(..., sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` writes it)."""
    return (_LEAF_TAG_TEXT + _leaf_text(report, index)).encode("utf-8")


def report_leaf(report: StoredReport, index: int) -> bytes:
    """The RFC 6962 leaf hash of ``report`` as leaf ``index``: SHA-256(0x00 || data)."""
    return _sha256(("\x00" + _LEAF_TAG_TEXT + _leaf_text(report, index)).encode("utf-8")).digest()


@attrs.frozen
class Batch:
    """What a ``submit_batch`` entry states: leaves ``first`` … ``first + count - 1``
    were appended, after which the tree had ``size`` leaves and head ``root`` (hex)."""

    first: int
    count: int
    size: int
    root: str

    @property
    def last(self) -> int:
        return self.first + self.count - 1


def batch_entry(
    at: datetime, principal: str, role: str, batch: Batch, region: str = ""
) -> AuditRecord:
    """The chained entry of a batch (numbered and linked later, with the others)."""
    detail = (
        f'{{"count":{batch.count},"first":{batch.first},"root":"{batch.root}","size":{batch.size}}}'
    )
    return AuditRecord(
        at=at,
        principal=principal,
        role=role,
        action=BATCH_ACTION,
        object=f"leaves:{batch.first}-{batch.last}",
        outcome="ok",
        detail=detail,
        region=region,
    )


def batch_of(entry: AuditRecord) -> Batch | None:
    """The batch a ``submit_batch`` entry states (``None`` for other entries, or when
    its detail is not one)."""
    if entry.action != BATCH_ACTION:
        return None
    return batch_from_detail(entry.detail)


def batch_from_detail(detail: str) -> Batch | None:
    """The batch a ``submit_batch`` entry's detail states, or ``None``."""
    try:
        data = json.loads(detail)
        found = Batch(int(data["first"]), int(data["count"]), int(data["size"]), str(data["root"]))
    except (ValueError, KeyError, TypeError):
        return None
    if found.first < 0 or found.count < 1 or found.size != found.first + found.count:
        return None
    return found

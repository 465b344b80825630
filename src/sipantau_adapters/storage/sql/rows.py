"""The columns the SQL storage reads and writes, and its rows turned into the port's
values and back."""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import sqlalchemy as sa

from sipantau_adapters.storage.sql_models import (
    AUDIT,
    DEVICE_KEYS,
    MEDIA,
    MONITORS,
    NOTIFICATIONS,
    REPORTS,
    TOKENS,
)
from sipantau_core.ports import (
    CountedTally,
    DeviceKeyRecord,
    MediaRecord,
    MonitorRecord,
    NotificationRecord,
    NotificationStatus,
    ReportStatus,
    StationKey,
    StationState,
    StoredReport,
    TokenRecord,
)

_REPORT_COLUMNS = [
    REPORTS.c.report_id,
    REPORTS.c.chain_id,
    REPORTS.c.version,
    REPORTS.c.kind,
    REPORTS.c.station,
    REPORTS.c.contest,
    REPORTS.c.monitor,
    REPORTS.c.stage,
    REPORTS.c.observed_at,
    REPORTS.c.received_at,
    REPORTS.c.digest,
    REPORTS.c.payload,
    REPORTS.c.status,
    REPORTS.c.verdict,
    REPORTS.c.submitted_by,
    REPORTS.c.submitted_role,
    REPORTS.c.submitted_status,
    REPORTS.c.leaf_index,
    REPORTS.c.leaf_hash,
]
_REPORT_NAMES = [c.name for c in _REPORT_COLUMNS]
#: The same row with an empty payload (``ReportFilter(payload=False)``).
_REPORT_COLUMNS_NO_PAYLOAD = [
    sa.literal("").label("payload") if c is REPORTS.c.payload else c for c in _REPORT_COLUMNS
]
_STATUS = {s.value: s for s in ReportStatus}
_AUDIT_NAMES = [
    "seq", "at", "principal", "role", "action", "object", "outcome", "detail", "region", "link"
]  # fmt: skip
_AUDIT_COLUMNS = [AUDIT.c[name] for name in _AUDIT_NAMES]
_audit_values = operator.attrgetter(*_AUDIT_NAMES)
_DEVICE_KEY_COLUMNS = [DEVICE_KEYS.c[a.name] for a in attrs.fields(DeviceKeyRecord)]
_TOKEN_COLUMNS = [TOKENS.c[a.name] for a in attrs.fields(TokenRecord)]
_MONITOR_COLUMNS = [MONITORS.c[a.name] for a in attrs.fields(MonitorRecord)]
_MEDIA_COLUMNS = [MEDIA.c[a.name] for a in attrs.fields(MediaRecord)]
#: The same row without the bytes (``StorageTx.media(..., data=False)``).
_MEDIA_COLUMNS_NO_DATA = [c for c in _MEDIA_COLUMNS if c.name != "data"]
_NOTIFICATION_NAMES = [a.name for a in attrs.fields(NotificationRecord)]
_NOTIFICATION_COLUMNS = [NOTIFICATIONS.c[name] for name in _NOTIFICATION_NAMES]
_NOTIFICATION_STATUS = {s.value: s for s in NotificationStatus}
#: the delivery state a notification update replaces
_DELIVERY_STATE = (
    "status", "attempts", "next_attempt_at", "last_error", "sent_at", "message_id",
    "given_up_reason",
)  # fmt: skip


_json_key = json.encoder.encode_basestring_ascii


def _counters_json(counters: Mapping[str, int]) -> str:
    """``json.dumps(counters, separators=(",", ":"))``, written directly (a row per TPS)."""
    if not all(type(v) is int for v in counters.values()):
        return json.dumps(counters, separators=(",", ":"))
    return "{" + ",".join([f"{_json_key(k)}:{v}" for k, v in counters.items()]) + "}"


def _report(row: Sequence[Any]) -> StoredReport:
    return StoredReport(
        report_id=row[0],
        chain_id=row[1],
        version=row[2],
        kind=row[3],
        station=row[4],
        contest=row[5],
        monitor=row[6],
        stage=row[7],
        observed_at=row[8],
        received_at=row[9],
        digest=row[10],
        payload=row[11],
        status=_STATUS[row[12]],
        verdict=row[13],
        submitted_by=row[14],
        submitted_role=row[15],
        submitted_status=row[16],
        leaf_index=row[17],
        leaf_hash=row[18],
    )


def _report_values(
    r: StoredReport, leaf_index: int | None = None, leaf_hash: str = ""
) -> tuple[Any, ...]:
    """The row of ``r``; as leaf ``leaf_index`` with ``leaf_hash`` when given (the
    write of a batch that appends its reports to the log's tree)."""
    if leaf_index is None:
        leaf_index, leaf_hash = r.leaf_index, r.leaf_hash
    return (
        r.report_id,
        r.chain_id,
        r.version,
        r.kind,
        r.station,
        r.contest,
        r.monitor,
        r.stage,
        r.observed_at,
        r.received_at,
        r.digest,
        r.payload,
        r.status.value,
        r.verdict,
        r.submitted_by,
        r.submitted_role,
        r.submitted_status,
        leaf_index,
        leaf_hash,
    )


def _station_state(row: Any) -> StationState:
    counted = None
    if row.counted_report_id is not None:
        counters = row.counters
        if isinstance(counters, str):  # pragma: no cover - a driver that returns text
            counters = json.loads(counters)
        counted = CountedTally(row.counted_report_id, row.counted_version, dict(counters or {}))
    return StationState(chain_id=row.chain_id, counted=counted)


def _station_values(key: StationKey, state: StationState) -> dict[str, Any]:
    counted = state.counted
    return {
        "contest": key[0],
        "station": key[1],
        "chain_id": state.chain_id,
        "counted_report_id": counted.report_id if counted else None,
        "counted_version": counted.version if counted else None,
        "counters": dict(counted.counters) if counted else None,
    }


def _station_row(key: StationKey, state: StationState) -> tuple[Any, ...]:
    """The row of a station state as PostgreSQL's bulk path writes it, the counters as
    JSON text: (contest, station, chain_id, counted_report_id, counted_version,
    counters)."""
    counted = state.counted
    if counted is None:
        return (key[0], key[1], state.chain_id, None, None, None)
    return (
        key[0],
        key[1],
        state.chain_id,
        counted.report_id,
        counted.version,
        _counters_json(counted.counters),
    )


def _notification(row: Any) -> NotificationRecord:
    values = dict(row._mapping)
    values["status"] = _NOTIFICATION_STATUS[values["status"]]
    return NotificationRecord(**values)


def _notification_values(record: NotificationRecord) -> dict[str, Any]:
    values = attrs.asdict(record, recurse=False)
    del values["seq"]  # numbered by the database
    values["status"] = record.status.value
    return values


def _columns(rows: list[dict[str, Any]], json_column: str | None = None) -> dict[str, list[Any]]:
    """Rows as one list per column (for :func:`_unnest`)."""
    out: dict[str, list[Any]] = {name: [row[name] for row in rows] for name in rows[0]}
    if json_column is not None:
        out[json_column] = [None if v is None else _counters_json(v) for v in out[json_column]]
    return out

"""The JSON of the desk's values in the HTTP API's answers."""

from __future__ import annotations

import json
from typing import Any

from sipantau_core.desk import IncidentView, Receipt, StationStatus, Tally
from sipantau_core.ports import StoredReport
from sipantau_core.rules import Violation

__all__ = ["incident_json", "receipt_json", "status_json", "tally_json"]


def _violation_json(v: Violation) -> dict[str, Any]:
    return {
        "code": v.code,
        "severity": v.severity,
        "fields": list(v.fields),
        "message_id": v.message_id,
        "message": v.message,
    }


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "report_id": str(receipt.report_id),
        "status": receipt.status,
        "first_status": receipt.first_status,
        "counted": receipt.counted,
        "version": receipt.version,
        "chain_id": str(receipt.chain_id),
        "station": receipt.station,
        "received_at": receipt.received_at.isoformat(),
        "violations": [_violation_json(v) for v in receipt.violations],
        "leaf_index": receipt.leaf_index,
        "leaf_hash": receipt.leaf_hash or None,
        "tree_size": receipt.tree_size,
        "tree_root": receipt.tree_root or None,
    }


def _stored_receipt_json(stored: StoredReport) -> dict[str, Any]:
    """The receipt of a stored report as it stands now (its status may have moved on:
    overridden, rejected or superseded)."""
    status = stored.status.value
    return {
        "report_id": str(stored.report_id),
        "status": status,
        "first_status": None,
        "counted": status in ("accepted", "overridden"),
        "version": stored.version,
        "chain_id": str(stored.chain_id),
        "station": stored.station,
        "received_at": stored.received_at.isoformat(),
        "violations": json.loads(stored.verdict),
        "leaf_index": stored.leaf_index,
        "leaf_hash": stored.leaf_hash or None,
        "tree_size": None,
        "tree_root": None,
    }


def tally_json(tally: Tally) -> dict[str, Any]:
    return {
        "region": tally.region,
        "contest": tally.contest,
        "votes": {str(n): v for n, v in tally.votes.items()},
        "valid": tally.valid,
        "invalid": tally.invalid,
        "total": tally.total,
        "stations_counted": tally.stations_counted,
        "stations_expected": tally.stations_expected,
        "registered_covered": tally.registered_covered,
        "registered_expected": tally.registered_expected,
        "progress": tally.progress,
    }


def status_json(status: StationStatus) -> dict[str, Any]:
    return {
        "station": status.station,
        "tally": status.tally,
        "stages": [
            {
                "stage": s.stage.value,
                "state": s.state,
                "deadline": s.deadline.isoformat(),
                "reported_at": s.reported_at.isoformat() if s.reported_at else None,
                "security": s.security.value if s.security else None,
            }
            for s in status.stages
        ],
    }


def incident_json(i: IncidentView) -> dict[str, Any]:
    return {
        "station": i.station,
        "report_id": str(i.report_id),
        "stage": i.stage.value,
        "observed_at": i.observed_at.isoformat(),
        "category": i.category,
        "severity": i.severity,
        "text": i.text,
        "media_sha256": i.media_sha256,
    }

"""One TPS as the page shows it: its stage reports, its tally with every version of its
chain and who sent or decided each, the rules it breaks and the photo of its sheet, its
incidents (and their photos), and the audit entries about it — each part read with the
desk's queries under the signed-in principal (a part the principal may not read carries
the desk's refusal code instead)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import attrs

from sipantau_adapters.web.overview import Panel, station_contest
from sipantau_core.access import Action, Principal, is_allowed
from sipantau_core.desk import Desk
from sipantau_core.domain import SituationReport, StationCode, TallyReport
from sipantau_core.errors import PermissionDenied, UnknownEntityError

__all__ = ["StationView", "TallyVersion", "station_view"]

#: A photo a report names: none named, named but its bytes not received, or received.
PhotoState = Literal["none", "pending", "received"]


@attrs.frozen
class Finding:
    code: str
    severity: str
    message_id: str
    message: str


@attrs.frozen
class TallyVersion:
    report_id: str
    version: int
    status: str
    submitted_by: str
    received_at: datetime
    votes: tuple[tuple[int, int], ...]
    valid: int
    invalid: int
    total: int
    findings: tuple[Finding, ...]
    decisions: tuple[tuple[str, str, str, datetime], ...]  # (action, who, reason, at)
    sheet_sha256: str | None = None  # the photo of the sheet the version names
    photo: PhotoState = "none"


@attrs.frozen
class IncidentItem:
    report_id: str
    index: int
    stage: str
    observed_at: datetime
    category: str
    severity: int
    text: str
    media_sha256: str | None
    acknowledged: tuple[tuple[str, str, datetime], ...]  # (who, note, at)
    photo: PhotoState = "none"


@attrs.frozen
class StationView:
    code: str
    label: str
    name: str
    district: str
    registered: int
    risk_level: str
    risk_indicators: tuple[str, ...]
    monitor: str | None
    contest: str
    options: tuple[tuple[int, str], ...]
    stages: Panel  # tuple[StageState, ...]
    tallies: Panel  # tuple[TallyVersion, ...], newest first
    incidents: Panel  # tuple[IncidentItem, ...]
    audit: Panel  # tuple[AuditRecord, ...]
    can_decide: bool
    can_acknowledge: bool


def _findings(verdict: str) -> tuple[Finding, ...]:
    if not verdict or verdict == "[]":
        return ()
    return tuple(
        Finding(d["code"], d["severity"], d["message_id"], d["message"])
        for d in json.loads(verdict)
    )


def _decisions(desk: Desk, report_id: Any, principal: Principal) -> list[Any]:
    try:
        return desk.decisions(report_id, principal=principal)
    except PermissionDenied:
        return []


def station_view(desk: Desk, code: str, *, principal: Principal) -> StationView:
    """The drill-down of TPS ``code`` (13 digits or ``16.73.01.1001 TPS 001``)."""
    dep = desk.deployment
    try:
        station_code = StationCode.parse(code)
    except ValueError:
        raise UnknownEntityError(
            "not a TPS code", code="report.unknown_station", message_id="kode TPS tidak dikenal"
        ) from None
    station = dep.stations.get(station_code)
    if station is None:
        raise UnknownEntityError(
            f"TPS {station_code.label} is not in the deployment",
            code="report.unknown_station",
            message_id=f"TPS {station_code.label} tidak terdaftar",
        )
    contest = station_contest(dep, station_code)
    contest_id = contest.id if contest is not None else ""
    options = tuple((n, contest.label(n)) for n in contest.options) if contest else ()
    monitor = next((m.id for m in dep.monitors.values() if m.station == station_code), None)

    stages = _read(lambda: desk.station_status(station_code, principal=principal)[0].stages)
    tallies: Panel
    incidents: Panel
    try:
        found = desk.reports(station_code, principal=principal, heads_only=False)
    except PermissionDenied as e:
        tallies = incidents = Panel(refused=e.code)
    else:
        photos = _photos(desk, station_code, principal)
        versions: list[TallyVersion] = []
        items: list[IncidentItem] = []
        for stored, report in found:
            if isinstance(report, TallyReport):
                versions.append(
                    TallyVersion(
                        report_id=str(stored.report_id),
                        version=stored.version,
                        status=stored.status.value,
                        submitted_by=stored.submitted_by,
                        received_at=stored.received_at,
                        votes=tuple(sorted(report.votes.items())),
                        valid=report.valid,
                        invalid=report.invalid,
                        total=report.total,
                        findings=_findings(stored.verdict),
                        decisions=tuple(
                            (d.action, d.principal, d.reason, d.at)
                            for d in _decisions(desk, stored.report_id, principal)
                        ),
                        sheet_sha256=report.sheet_sha256,
                        photo=_photo_state(photos, report.sheet_sha256),
                    )
                )
            elif isinstance(report, SituationReport) and report.incidents:
                acks = [
                    d
                    for d in _decisions(desk, stored.report_id, principal)
                    if d.action.startswith("acknowledge:")
                ]
                for i, incident in enumerate(report.incidents):
                    items.append(
                        IncidentItem(
                            report_id=str(stored.report_id),
                            index=i,
                            stage=report.stage.value,
                            observed_at=report.observed_at,
                            category=incident.category,
                            severity=incident.severity,
                            text=incident.text,
                            media_sha256=incident.media_sha256,
                            acknowledged=tuple(
                                (d.principal, d.reason, d.at)
                                for d in acks
                                if d.action == f"acknowledge:{i}"
                            ),
                            photo=_photo_state(photos, incident.media_sha256),
                        )
                    )
        versions.sort(key=lambda v: -v.version)
        items.sort(key=lambda i: (-i.severity, i.observed_at))
        tallies, incidents = Panel(tuple(versions)), Panel(tuple(items))
    audit = _read(
        lambda: tuple(
            e
            for e in desk.history(principal=principal, region=station_code)
            if e.region == station_code.compact
        )
    )
    district = station_code.village.value.rsplit(".", 1)[0]
    return StationView(
        code=station_code.compact,
        label=station_code.label,
        name=station.name,
        district=district,
        registered=station.registered_voters,
        risk_level=station.risk.level.value,
        risk_indicators=tuple(station.risk.indicators),
        monitor=monitor,
        contest=contest_id,
        options=options,
        stages=stages,
        tallies=tallies,
        incidents=incidents,
        audit=audit,
        can_decide=is_allowed(principal, Action.DECIDE, station_code),
        can_acknowledge=is_allowed(principal, Action.DECIDE, station_code),
    )


def _photos(desk: Desk, station: StationCode, principal: Principal) -> dict[str, bool]:
    """Per photo the TPS's reports name: whether the desk has received it."""
    try:
        found = desk.station_media(station, principal=principal)
    except PermissionDenied:
        return {}
    return {sha256: record is not None for sha256, record in found.items()}


def _photo_state(photos: dict[str, bool], sha256: str | None) -> PhotoState:
    if sha256 is None:
        return "none"
    return "received" if photos.get(sha256) else "pending"


def _read(fn: Any) -> Panel:
    try:
        return Panel(fn())
    except PermissionDenied as e:
        return Panel(refused=e.code)

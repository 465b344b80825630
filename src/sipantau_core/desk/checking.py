"""Submitting, first step: a report read from what was sent and checked against the
deployment, the access policy, its signature and the tally rules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from sipantau_core.access import Action, Principal, Role, authorize
from sipantau_core.desk._base import DeskBase
from sipantau_core.domain import (
    Contest,
    PollingStation,
    Report,
    SituationReport,
    StationCode,
    TallyReport,
)
from sipantau_core.errors import (
    PayloadError,
    PermissionDenied,
    Problem,
    SipantauError,
    UnknownEntityError,
)
from sipantau_core.ports import (
    DeviceKeyRecord,
)
from sipantau_core.rules import Verdict
from sipantau_core.signing import (
    PublicKey,
    SignatureError,
    SignedReport,
    parse_signed,
    verify_report,
)
from sipantau_core.wire import canonical_bytes, parse_report

Submission = Report | SignedReport | bytes | str | Mapping[str, Any]


@attrs.frozen
class _Prepared:
    """A report checked against everything that does not need the storage."""

    report: Report
    payload: str
    digest: str
    verdict: Verdict | None
    station: PollingStation
    principal: Principal


class Checking(DeskBase):
    """Reading a submission and checking it against everything that needs no storage:
    the submitter's right, the signature, the TPS, monitor and contest, the rules."""

    @staticmethod
    def _read_submission(raw: Submission) -> Report | SignedReport | SipantauError:
        """A report or a signed report from an object, JSON bytes or text, or a mapping;
        a payload that cannot be read becomes its error (raised for that item alone)."""
        if isinstance(raw, TallyReport | SituationReport | SignedReport):
            return raw
        try:
            data: Any = raw
            if isinstance(raw, bytes | bytearray | str):
                text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
                if '"signature"' not in text:
                    return parse_report(text)
                data = json.loads(text)
            if isinstance(data, Mapping) and "signature" in data:
                return parse_signed(data)
            return parse_report(data)
        except SipantauError as e:
            return e
        except (ValueError, RecursionError) as e:
            return PayloadError([Problem("$", "json.invalid", f"not valid JSON ({e})")])

    def _check_signature(
        self,
        item: Report | SignedReport,
        principal: Principal,
        keys: Mapping[str, DeviceKeyRecord],
        now: datetime,
    ) -> Report:
        if not isinstance(item, SignedReport):
            if self.require_signatures and principal.role is Role.MONITOR:
                raise SignatureError(
                    "this desk accepts only signed reports from monitors",
                    code="signature.missing",
                    message_id="laporan harus ditandatangani dengan kunci perangkat",
                )
            return item
        report = item.report
        record = keys.get(item.signature.key_id)
        if record is None:
            raise SignatureError(
                f"the key {item.signature.key_id} is not enrolled at this desk",
                code="signature.unknown_key",
                message_id="kunci perangkat belum terdaftar di desk",
            )
        if record.revoked_at is not None and record.revoked_at <= now:
            raise SignatureError(
                f"the key {record.key_id} was revoked",
                code="signature.revoked_key",
                message_id="kunci perangkat sudah dicabut",
            )
        if record.monitor != report.monitor:
            raise SignatureError(
                f"the key {record.key_id} belongs to another monitor than the report names",
                code="signature.wrong_monitor",
                message_id="kunci perangkat milik pemantau lain",
            )
        verify_report(item, PublicKey(record.public_key))
        if abs(report.observed_at - now) > self.signature_window:
            raise SignatureError(
                f"the report was observed at {report.observed_at.isoformat()}, outside the "
                f"accepted window of {self.signature_window} around the desk's clock",
                code="signature.replay",
                message_id="waktu laporan di luar rentang yang diterima (kemungkinan ulangan)",
            )
        return report

    def _prepare(
        self,
        item: Report | SignedReport,
        principal: Principal,
        keys: Mapping[str, DeviceKeyRecord],
        now: datetime,
    ) -> _Prepared:
        report = item.report if isinstance(item, SignedReport) else item
        code = report.station.compact
        station = self._stations.get(code)
        self._check_submitter(report, principal)
        report = self._check_signature(item, principal, keys, now)
        if station is None:
            raise UnknownEntityError(
                f"TPS {report.station.label} is not in the deployment {self.deployment.id}",
                code="report.unknown_station",
                message_id=f"TPS {report.station.label} tidak terdaftar di desk ini",
            )
        monitor = self._monitors.get(report.monitor)
        if monitor is None:
            raise UnknownEntityError(
                "the report names a monitor who is not in the deployment",
                code="report.unknown_monitor",
                message_id="pemantau yang disebut dalam laporan tidak terdaftar",
            )
        if monitor.station.compact != code:
            raise UnknownEntityError(
                f"monitor {report.monitor!r} is assigned to TPS {monitor.station.label}, "
                f"not {report.station.label}",
                code="report.monitor_mismatch",
                message_id=(
                    f"pemantau {report.monitor} tidak bertugas di TPS {report.station.label}"
                ),
            )
        verdict: Verdict | None = None
        if isinstance(report, TallyReport):
            contest = self._contest(report.contest)
            self._check_contest_region(contest, report.station)
            verdict = self.rules.check(
                report, station=station, contest=contest, settings=self.deployment.tally_settings
            )
        else:
            if report.contest is not None:
                self._check_contest_region(self._contest(report.contest), report.station)
            for incident in report.incidents:
                if incident.category not in self.incident_categories:
                    raise UnknownEntityError(
                        f"incident category {incident.category!r} is not in the catalogue "
                        f"(known: {sorted(self.incident_categories)})",
                        code="report.unknown_incident_category",
                        message_id=f"kategori kejadian {incident.category} tidak dikenal",
                    )
        raw_bytes = canonical_bytes(report)
        return _Prepared(
            report=report,
            payload=raw_bytes.decode("utf-8"),
            digest=hashlib.sha256(raw_bytes).hexdigest(),
            verdict=verdict,
            station=station,
            principal=principal,
        )

    def _check_submitter(self, report: Report, principal: Principal) -> None:
        authorize(principal, Action.SUBMIT, report.station)
        if principal.role is Role.MONITOR:
            monitor = self.deployment.monitors.get(principal.id)
            if monitor is None or monitor.station != principal.scope:
                raise PermissionDenied(
                    f"monitor {principal.id!r} is not enrolled at this desk for {principal.scope}",
                    code="access.unknown_principal",
                    message_id=f"pemantau {principal.id} tidak terdaftar untuk TPS ini",
                )
            if report.monitor != principal.id:
                raise PermissionDenied(
                    f"monitor {principal.id!r} may not send a report in another monitor's name",
                    code="access.wrong_monitor",
                    message_id=(
                        f"pemantau {principal.id} tidak boleh mengirim atas nama pemantau lain"
                    ),
                )

    @staticmethod
    def _check_contest_region(contest: Contest, station: StationCode) -> None:
        if contest.region is not None and not contest.region.contains(station):
            raise UnknownEntityError(
                f"TPS {station.label} does not vote in contest {contest.id} "
                f"(region {contest.region})",
                code="report.outside_contest",
                message_id=f"TPS {station.label} tidak ikut pemilihan {contest.id}",
            )

"""Queries: counts, reports, the state of each TPS, incidents and the audit history, each
read scoped by the access policy and recorded in the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from sipantau_core.access import Action, Principal, Role
from sipantau_core.desk._base import DeskBase
from sipantau_core.desk._records import (
    _visible,
)
from sipantau_core.domain import (
    RegionCode,
    Report,
    SecurityStatus,
    SituationReport,
    Stage,
    StationCode,
)
from sipantau_core.errors import (
    UnknownEntityError,
)
from sipantau_core.ports import (
    AuditRecord,
    ReportFilter,
    ReportStatus,
    StorageTx,
    StoredReport,
)
from sipantau_core.results import (
    IncidentView,
    StageState,
    StationStatus,
    Tally,
)
from sipantau_core.wire import parse_report


class Queries(DeskBase):
    """Reading the desk under the access policy, each read on record."""

    def tally(
        self,
        region: RegionCode | StationCode | str,
        *,
        principal: Principal,
        contest: str | None = None,
    ) -> Tally:
        """The counts of a region (TPS, village, district, city, province, or the nation,
        ``ID``: the sum of its provinces) for a contest.

        Readers: officers and coordinators within their region, a monitor for its own TPS,
        a viewer only where a coordinator released the region."""
        target = self._target(region)
        contest_id = self._default_contest(contest)
        options = self.deployment.contests[contest_id].options
        released = (
            principal.role is Role.VIEWER
            and isinstance(target, RegionCode)
            and self.is_released(target, contest_id)
        )
        self._guard(
            principal,
            Action.READ_TALLY,
            target,
            what=f"tally:{contest_id}:{target}",
            released=released,
        )
        key = target.compact if isinstance(target, StationCode) else target.value

        def read(tx: StorageTx) -> Mapping[str, int]:
            if isinstance(target, StationCode):
                state = tx.station_states([(contest_id, key)])[(contest_id, key)]
                return dict(state.counted.counters) if state.counted else {}
            if target.is_nation:  # the sum of the provinces' counts (no row of its own)
                total: dict[str, int] = {}
                for province in self._provinces:
                    for name, value in tx.aggregates(contest_id, province).items():
                        total[name] = total.get(name, 0) + value
                return total
            return tx.aggregates(contest_id, key)

        entry = self._audit_entry(
            principal, "read_tally", f"tally:{contest_id}:{key}", "ok", where=target
        )
        counters = self._read_audited(entry, read)
        if isinstance(target, StationCode):
            where = self.deployment.contests[contest_id].region
            inside = where is None or where.contains(target)
            expected = (1, self._stations[key].registered_voters) if inside else (0, 0)
        else:
            expected = self._expected_for(contest_id).get(key, (0, 0))
        return Tally(
            region=key,
            contest=contest_id,
            votes={n: counters.get(f"votes.{n}", 0) for n in options},
            valid=counters.get("valid", 0),
            invalid=counters.get("invalid", 0),
            total=counters.get("total", 0),
            stations_counted=counters.get("stations", 0),
            stations_expected=expected[0],
            registered_covered=counters.get("registered", 0),
            registered_expected=expected[1],
        )

    def reports(
        self,
        where: RegionCode | StationCode | str,
        *,
        principal: Principal,
        kind: str | None = None,
        contest: str | None = None,
        heads_only: bool = True,
    ) -> list[tuple[StoredReport, Report]]:
        """Reports (newest versions by default) within a region or TPS, with the desk's
        record of each (status, version, verdict)."""
        query = ReportFilter(
            region=self._prefix(where), kind=kind, contest=contest, heads_only=heads_only
        )
        return [
            (s, parse_report(s.payload))
            for s in self._read_reports(principal, Action.READ_REPORTS, where, query)
        ]

    def flagged(
        self,
        where: RegionCode | StationCode | str,
        *,
        principal: Principal,
        contest: str | None = None,
    ) -> list[StoredReport]:
        """The newest tallies within ``where`` that break a hard rule and wait for a
        correction or a decision (status ``flagged``), by TPS. Readers: as for
        :meth:`reports`; the desk's record only (its verdict names the rules), read without
        the payloads (``payload`` may be empty)."""
        query = ReportFilter(
            region=self._prefix(where),
            kind="tally",
            contest=contest,
            statuses=frozenset({ReportStatus.FLAGGED}),
            payload=False,
        )
        flagged = self._read_reports(principal, Action.READ_REPORTS, where, query)
        flagged.sort(key=lambda s: s.station)
        return flagged

    def station_status(
        self,
        where: RegionCode | StationCode | str,
        *,
        principal: Principal,
        now: datetime | None = None,
        contest: str | None = None,
    ) -> list[StationStatus]:
        """For every TPS within ``where``: each stage's report in, late, missing or
        pending against the schedule in the TPS's own time zone, and its tally status
        (that of its newest tally, of ``contest`` when one is named: an unknown one is
        ``report.unknown_contest``)."""
        at = now or self.clock()
        query = ReportFilter(region=self._prefix(where), heads_only=False)
        found = self._read_reports(principal, Action.READ_STATUS, where, query)
        if contest is not None:
            self._contest(contest)  # one the desk runs (after the access check, on record)
        first_in: dict[tuple[str, str], StoredReport] = {}
        tally_head: dict[str, StoredReport] = {}
        for s in found:
            if (
                s.kind == "tally"
                and (contest is None or s.contest == contest)
                and (s.station not in tally_head or s.version > tally_head[s.station].version)
            ):
                tally_head[s.station] = s
            if s.status is ReportStatus.REJECTED:
                continue
            if s.stage is not None:
                first_in.setdefault((s.station, s.stage), s)
        target = self._target(where)
        stations = (
            [self.deployment.stations[target]]
            if isinstance(target, StationCode)
            else list(self.deployment.stations_in(target))
        )
        schedule = self.deployment.schedule
        day = self.deployment.election_day
        # Deadlines depend on the stage and the TPS's time zone only, and a stage with
        # nothing in is the same value at every TPS of a zone: both made once per zone.
        plans: dict[str, list[tuple[Stage, str, datetime, StageState]]] = {}
        out: list[StationStatus] = []
        for station in sorted(stations, key=lambda s: s.code.compact):
            code = station.code.compact
            plan = plans.get(code[:2])
            if plan is None:
                zone = station.time_zone
                plan = plans[code[:2]] = []
                for stage in Stage:
                    deadline = schedule.deadline(stage, day, zone)
                    empty = StageState(stage, "missing" if at > deadline else "pending", deadline)
                    plan.append((stage, stage.value, deadline, empty))
            stages: list[StageState] = []
            for stage, value, deadline, empty in plan:
                got = first_in.get((code, value))
                if got is None:
                    stages.append(empty)
                    continue
                security = None
                if got.kind == "situation":
                    security = SecurityStatus(json.loads(got.payload)["status"])
                state: Literal["in", "late", "missing", "pending"] = (
                    "in" if got.received_at <= deadline else "late"
                )
                stages.append(StageState(stage, state, deadline, got.received_at, security))
            head = tally_head.get(code)
            out.append(StationStatus(code, tuple(stages), head.status.value if head else None))
        return out

    def incidents(
        self,
        where: RegionCode | StationCode | str,
        *,
        principal: Principal,
        stage: Stage | str | None = None,
        category: str | None = None,
        min_severity: int = 1,
    ) -> list[IncidentView]:
        """Incidents reported within ``where`` (newest version of each report), filtered by
        stage, category and severity, most severe first."""
        try:
            stage_value = Stage(stage).value if stage is not None else None
        except ValueError:
            raise UnknownEntityError(
                f"not a stage: one of {[x.value for x in Stage]}",
                code="stage.unknown",
                message_id="tahap tidak dikenal",
            ) from None
        query = ReportFilter(region=self._prefix(where), kind="situation", incidents=True)
        out: list[IncidentView] = []
        for stored in self._read_reports(principal, Action.READ_INCIDENTS, where, query):
            if stored.status is ReportStatus.REJECTED:
                continue
            if stage_value is not None and stored.stage != stage_value:
                continue
            report = parse_report(stored.payload)
            assert isinstance(report, SituationReport)
            for incident in report.incidents:
                if category is not None and incident.category != category:
                    continue
                if incident.severity < min_severity:
                    continue
                out.append(
                    IncidentView(
                        stored.station,
                        stored.report_id,
                        report.stage,
                        report.observed_at,
                        incident.category,
                        incident.severity,
                        incident.text,
                        incident.media_sha256,
                    )
                )
        out.sort(key=lambda i: (-i.severity, i.observed_at, i.station))
        return out

    def history(
        self,
        *,
        principal: Principal,
        after: int = 0,
        limit: int | None = None,
        region: RegionCode | StationCode | str | None = None,
    ) -> list[AuditRecord]:
        """The record of who did what (for auditors): actions and objects, never figures.
        Each batch of reports is its ``submit_batch`` entry followed by one ``submit``
        record per report (see :meth:`~sipantau_core.desk.audit_log.AuditLog.records`).

        The ``submit`` records are those of the principal's scope, and with ``region``
        (a region or a TPS) of that region only: only those reports are read, not every
        report of the log (a TPS's page on a national desk). The other entries are all
        there, as the principal may see them."""
        scope = principal.scope if isinstance(principal.scope, RegionCode) else None
        self._guard(principal, Action.READ_AUDIT, scope, what="audit", where=principal.scope)
        narrow = scope if region is None else self._target(region)
        found = self.audit.records(
            after=after, region=(narrow.compact or None) if narrow is not None else None
        )
        self._write_audit(self._audit_entry(principal, "read_audit", "audit", "ok", where=scope))
        visible = [e for e in found if _visible(principal, e)]
        return visible[:limit] if limit is not None else visible

    def sample_commitment(self, digest: str, *, principal: Principal) -> AuditRecord | None:
        """The audit entry that committed the sample with ``digest``, if any."""
        for entry in self.history(principal=principal):
            if entry.action == "commit_sample" and entry.object == f"sample:{digest}":
                return entry
        return None

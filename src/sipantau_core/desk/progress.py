"""Progress: the count of a region at every level with a projection, and the anomaly
screens (rule verdicts, turnout outliers, one-candidate TPS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from sipantau_core.access import Action, Principal, Role
from sipantau_core.anomalies import single_candidate_tps, turnout_outliers
from sipantau_core.desk._base import DeskBase
from sipantau_core.desk._records import (
    _violations_from,
)
from sipantau_core.domain import (
    NATION,
    PollingStation,
    RegionCode,
    Stage,
    TallyReport,
)
from sipantau_core.domain.regions import CHILD_DIGITS, dotted
from sipantau_core.errors import PermissionDenied, SipantauError
from sipantau_core.ports import (
    ReportFilter,
    ReportStatus,
    StationState,
)
from sipantau_core.quickcount import ProgressCount, TpsResult, progress_count
from sipantau_core.results import (
    StageProgress,
    TpsAnomaly,
)
from sipantau_core.wire import parse_report


class Progress(DeskBase):
    """The progress count with its projection, and the screens for anomalies."""

    def progress(
        self,
        region: RegionCode | str,
        *,
        principal: Principal,
        contest: str | None = None,
        confidence: float = 0.95,
    ) -> ProgressCount[int]:
        """The progress count of a region: every level with the share of TPS and voters
        counted, and a projection weighted by district with its uncertainty (or a plain
        note that too few districts have reported). Readers: as for :meth:`tally`."""
        target = self._region(region)
        contest_id = self._default_contest(contest)
        released = principal.role is Role.VIEWER and self.is_released(target, contest_id)
        what = f"progress:{contest_id}:{target}"
        self._guard(principal, Action.READ_TALLY, target, what=what, released=released)
        contest_region = self.deployment.contests[contest_id].region
        stations = [
            s
            for s in self.deployment.stations_in(target)
            if contest_region is None or contest_region.contains(s.code)
        ]
        keys = [(contest_id, s.code.compact) for s in stations]
        entry = self._audit_entry(principal, "read_tally", what, "ok", where=target)
        states = self._read_audited(entry, lambda tx: tx.station_states(keys) if keys else {})
        options = self.deployment.contests[contest_id].options
        result = _progress_of(stations, states, options, confidence)
        if principal.role is Role.VIEWER:
            # A release covers the region itself, never the levels below it.
            result = attrs.evolve(result, tables={})
        return result

    def progress_many(
        self,
        regions: Sequence[RegionCode | str],
        *,
        principal: Principal,
        contest: str | None = None,
        confidence: float = 0.95,
    ) -> dict[str, ProgressCount[int]]:
        """:meth:`progress` of several regions (by code) from one read of their TPS and
        one audit entry: what a screen of many regions at once needs. Desk staff only (a
        viewer asks :meth:`progress` region by region, each released on its own)."""
        targets = sorted({self._region(r) for r in regions}, key=lambda r: r.value)
        contest_id = self._default_contest(contest)
        if principal.role is Role.VIEWER:
            raise PermissionDenied(
                "a viewer reads the progress of each released region on its own",
                code="access.role",
                message_id="pengamat membaca tiap wilayah yang dirilis satu per satu",
            )
        what = f"progress:{contest_id}:{','.join(t.value for t in targets)}"
        for target in targets:
            self._guard(principal, Action.READ_TALLY, target, what=what)
        contest_region = self.deployment.contests[contest_id].region
        inside = {
            t.value: [
                s
                for s in self.deployment.stations_in(t)
                if contest_region is None or contest_region.contains(s.code)
            ]
            for t in targets
        }
        keys = sorted({(contest_id, s.code.compact) for found in inside.values() for s in found})
        where = targets[0] if len(targets) == 1 else self._common(targets)
        entry = self._audit_entry(principal, "read_tally", what, "ok", where=where)
        states = self._read_audited(entry, lambda tx: tx.station_states(keys) if keys else {})
        options = self.deployment.contests[contest_id].options
        results = _results(states, options)  # each TPS's once, shared by the regions
        out: dict[str, ProgressCount[int]] = {}
        for code, found in inside.items():
            frame = {s.code.compact: s.registered_voters for s in found}
            reported = [results[c] for c in frame if c in results]
            out[code] = progress_count(reported, frame, confidence=confidence)
        return out

    def _common(self, regions: Sequence[RegionCode]) -> RegionCode:
        """The smallest region holding all of ``regions`` (the nation, when no province
        does)."""
        parts = [r.segments for r in regions]
        shared: list[str] = []
        for segment in zip(*parts, strict=False):
            if len(set(segment)) != 1:
                break
            shared.append(segment[0])
        return RegionCode.parse(".".join(shared)) if shared else NATION

    def stage_progress(
        self,
        region: RegionCode | str,
        *,
        principal: Principal,
        now: datetime | None = None,
        level: str | None = None,
    ) -> list[StageProgress]:
        """Per region one level below ``region`` (per TPS below a village), or per region
        of ``level`` (``province``, ``city``, ``district``, ``village`` or ``tps``) within
        it, the stage reports counted against the schedule in each TPS's own time zone: what
        :meth:`station_status` says TPS by TPS, summed without building it (the
        overview of a province of 30,000 TPS). Readers: as for :meth:`station_status`."""
        at = now or self.clock()
        target = self._region(region)
        query = ReportFilter(region=self._within(target), heads_only=False, payload=False)
        found = self._read_reports(principal, Action.READ_STATUS, target, query)
        first_in: dict[tuple[str, str], datetime] = {}
        for s in found:
            if s.stage is None or s.status is ReportStatus.REJECTED:
                continue
            key = (s.station, s.stage)
            if key not in first_in:  # the reports come in the order they were received
                first_in[key] = s.received_at
        digits = len(target.compact)
        depth = CHILD_DIGITS[digits] if level is None else _DEPTH.get(level, 0)
        if depth <= digits:
            raise SipantauError(
                f"stage_progress: level must be below the region (one of {sorted(_DEPTH)})",
                code="desk.bad_call",
            )
        schedule, day = self.deployment.schedule, self.deployment.election_day
        stages = tuple(Stage)
        deadlines: dict[str, list[tuple[str, datetime]]] = {}
        stations: dict[str, int] = {}
        counts: dict[str, list[list[int]]] = {}
        for station in self.deployment.stations_in(target):
            code = station.code.compact
            child = code[:depth]
            plan = deadlines.get(code[:2])
            if plan is None:
                zone = station.time_zone
                plan = deadlines[code[:2]] = [
                    (stage.value, schedule.deadline(stage, day, zone)) for stage in Stage
                ]
            stations[child] = stations.get(child, 0) + 1
            per_stage = counts.get(child)
            if per_stage is None:
                per_stage = counts[child] = [[0, 0, 0] for _ in plan]
            for i, (value, deadline) in enumerate(plan):
                got = first_in.get((code, value))
                if got is not None:
                    per_stage[i][0 if got <= deadline else 1] += 1
                elif at > deadline:
                    per_stage[i][2] += 1
        return [
            StageProgress(
                region=dotted(child),
                stations=stations[child],
                stages=tuple(
                    _row(stage, counted)
                    for stage, counted in zip(stages, counts[child], strict=True)
                ),
            )
            for child in sorted(stations)
        ]

    def anomalies(
        self,
        region: RegionCode | str,
        *,
        principal: Principal,
        contest: str | None = None,
        turnout_threshold: float = 3.5,
    ) -> list[TpsAnomaly]:
        """Per TPS within ``region``: the tally rules' verdict of its newest tally (hard
        and soft codes), a turnout outlier against its own district (robust z-score), and
        one candidate with every valid vote. Only TPS with at least one finding, sorted by
        TPS. Readers: as for reports (the findings name TPS and figures)."""
        target = self._region(region)
        contest_id = self._default_contest(contest)
        found = self._read_reports(
            principal,
            Action.READ_REPORTS,
            target,
            ReportFilter(region=self._within(target), kind="tally", contest=contest_id),
        )
        codes: dict[str, list[str]] = {}
        turnout_rows: list[tuple[str, int | None, int | None]] = []
        vote_rows: list[tuple[str, Mapping[int, int]]] = []
        for stored in found:
            if stored.status is ReportStatus.REJECTED:
                continue
            codes[stored.station] = sorted(v.code for v in _violations_from(stored.verdict))
            report = parse_report(stored.payload)
            assert isinstance(report, TallyReport)
            station = self.deployment.stations[report.station]
            voted = report.voted.computed_total if report.voted is not None else report.total
            turnout_rows.append((stored.station, station.registered_voters, voted))
            vote_rows.append((stored.station, dict(report.votes)))
        outliers = {
            o.tps: o.robust_z for o in turnout_outliers(turnout_rows, threshold=turnout_threshold)
        }
        single = {
            s.tps: s.candidate
            for s in single_candidate_tps(
                vote_rows, min_votes=self.deployment.tally_settings.unanimous_min_voters
            )
        }
        out = [
            TpsAnomaly(
                station=code,
                rule_codes=tuple(codes.get(code, ())),
                turnout_z=outliers.get(code),
                single_candidate=single.get(code),
            )
            for code in sorted(set(codes) | set(outliers) | set(single))
        ]
        return [a for a in out if a.rule_codes or a.turnout_z is not None or a.single_candidate]


#: How many digits a region code of each level has.
_DEPTH = {"province": 2, "city": 4, "district": 6, "village": 10, "tps": 13}


def _row(stage: Stage, counted: list[int]) -> tuple[Stage, int, int, int]:
    return (stage, counted[0], counted[1], counted[2])


def _results(
    states: Mapping[tuple[str, str], StationState], options: Sequence[int]
) -> dict[str, TpsResult[int]]:
    """The counted TPS's results by their 13 digits."""
    names = [(n, f"votes.{n}") for n in options]
    out: dict[str, TpsResult[int]] = {}
    for key, state in states.items():
        if state.counted is None:
            continue
        counters = state.counted.counters
        out[key[1]] = TpsResult(
            key[1],
            {n: counters.get(name, 0) for n, name in names},
            counters.get("invalid"),
            counters.get("total"),
        )
    return out


def _progress_of(
    stations: Sequence[PollingStation],
    states: Mapping[tuple[str, str], StationState],
    options: Sequence[int],
    confidence: float,
) -> ProgressCount[int]:
    """The progress count of ``stations`` from their station states."""
    reported = list(_results(states, options).values())
    frame = {s.code.compact: s.registered_voters for s in stations}
    return progress_count(reported, frame, confidence=confidence)

"""Progress: the count of a region at every level with a projection, and the anomaly
screens (rule verdicts, turnout outliers, one-candidate TPS).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from sipantau_core.access import Action, Principal, Role
from sipantau_core.anomalies import single_candidate_tps, turnout_outliers
from sipantau_core.desk._base import DeskBase
from sipantau_core.desk._records import (
    _violations_from,
)
from sipantau_core.domain import (
    RegionCode,
    TallyReport,
)
from sipantau_core.ports import (
    ReportFilter,
    ReportStatus,
)
from sipantau_core.quickcount import ProgressCount, TpsResult, progress_count
from sipantau_core.results import (
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
        reported = [
            TpsResult(
                key[1],
                {n: state.counted.counters.get(f"votes.{n}", 0) for n in options},
                state.counted.counters.get("invalid"),
                state.counted.counters.get("total"),
            )
            for key, state in states.items()
            if state.counted is not None
        ]
        frame = {s.code.compact: s.registered_voters for s in stations}
        result = progress_count(reported, frame, confidence=confidence)
        if principal.role is Role.VIEWER:
            # A release covers the region itself, never the levels below it.
            result = attrs.evolve(result, tables={})
        return result

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
            ReportFilter(region=target.value, kind="tally", contest=contest_id),
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

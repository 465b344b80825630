"""Progress: the count of a region at every level with a projection, and the anomaly
screens (rule verdicts, turnout outliers, one-candidate TPS).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
import numpy as np

from sipantau_core.access import Action, Principal, Role
from sipantau_core.anomalies import single_candidate_tps, turnout_outliers
from sipantau_core.desk._base import DeskBase
from sipantau_core.desk._records import (
    CHANGES_KEY,
    _violations_from,
)
from sipantau_core.desk.stages import STAGES_KEY, counter
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
    StorageTx,
)
from sipantau_core.quickcount import (
    ProgressCount,
    TpsResult,
    progress_count,
    progress_count_arrays,
    tps_code_to_int,
)
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
        options = self.deployment.contests[contest_id].options

        def read(tx: StorageTx) -> ProgressCount[int]:
            version = self._versions(tx, contest_id, [target.value])[target.value]
            memo_key = ("progress", contest_id, target.value, confidence)
            found: ProgressCount[int] | None = self._memo.at(memo_key, version)
            if found is None:
                stations = self._in_contest(contest_id, target)
                results = self._tps_results(tx, contest_id, {target.value: stations}, options)
                found = self._count(contest_id, target.value, stations, results, confidence)
                self._memo.keep(memo_key, version, found)
            return found

        entry = self._audit_entry(principal, "read_tally", what, "ok", where=target)
        result = self._read_audited(entry, read)
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
        inside = {t.value: self._in_contest(contest_id, t) for t in targets}
        where = targets[0] if len(targets) == 1 else self._common(targets)
        options = self.deployment.contests[contest_id].options

        def read(tx: StorageTx) -> dict[str, ProgressCount[int]]:
            versions = self._versions(tx, contest_id, list(inside))
            out: dict[str, ProgressCount[int]] = {}
            todo: dict[str, tuple[tuple[Any, ...], int]] = {}
            for code in inside:
                memo_key = ("progress", contest_id, code, confidence)
                version = versions[code]
                found = self._memo.at(memo_key, version)
                if found is None:
                    todo[code] = (memo_key, version)
                else:
                    out[code] = found
            wanted = {code: inside[code] for code in todo}
            results = self._tps_results(tx, contest_id, wanted, options) if wanted else {}
            for code, (memo_key, version) in todo.items():
                out[code] = self._count(contest_id, code, inside[code], results, confidence)
                self._memo.keep(memo_key, version, out[code])
            return out

        entry = self._audit_entry(principal, "read_tally", what, "ok", where=where)
        return dict(sorted(self._read_audited(entry, read).items()))

    def _versions(self, tx: StorageTx, contest_id: str, codes: Sequence[str]) -> dict[str, int]:
        """Each region's counter of changes for the contest (read before what it
        versions); the nation's is the sum of its provinces' (it has no row of its own)."""
        provinces = [p.value for p in self.deployment.provinces()]
        wanted = [c for c in codes if c != NATION.value]
        if len(wanted) < len(codes):
            wanted += provinces
        found = tx.aggregates_many(CHANGES_KEY, wanted)
        out = {c: found.get(c, {}).get(contest_id, 0) for c in codes if c != NATION.value}
        if len(out) < len(codes):
            out[NATION.value] = sum(found.get(p, {}).get(contest_id, 0) for p in provinces)
        return out

    def _in_contest(self, contest_id: str, target: RegionCode) -> list[PollingStation]:
        """The TPS of ``target`` where the contest is held (kept: the deployment's)."""
        key = ("in_contest", contest_id, target.value)
        found: list[PollingStation] | None = self._memo.get(key)
        if found is None:
            region = self.deployment.contests[contest_id].region
            found = [
                s
                for s in self.deployment.stations_in(target)
                if region is None or region.contains(s.code)
            ]
            self._memo.put(key, found)
        return found

    def _count(
        self,
        contest_id: str,
        code: str,
        stations: Sequence[PollingStation],
        results: Mapping[str, TpsResult[int]],
        confidence: float,
    ) -> ProgressCount[int]:
        """:func:`~sipantau_core.quickcount.progress_count` of ``stations`` (the TPS of
        region ``code``) from their ``results``, with the frame's arrays made once."""
        key = ("frame", contest_id, code)
        frame: tuple[list[str], Any, Any] | None = self._memo.get(key)
        if frame is None:
            codes = [s.code.compact for s in stations]
            frame = (
                codes,
                tps_code_to_int(codes),
                np.asarray([s.registered_voters for s in stations], dtype=np.int64),
            )
            self._memo.put(key, frame)
        codes, frame_int, dpt = frame
        reported = [results[c] for c in codes if c in results]
        if not reported:  # as progress_count has it: no candidate named yet
            return progress_count(
                [], dict(zip(codes, dpt.tolist(), strict=True)), confidence=confidence
            )
        candidates = tuple(sorted(self.deployment.contests[contest_id].options))
        return progress_count_arrays(
            frame_int,
            dpt,
            tps_code_to_int([r.tps for r in reported]),
            np.array([[r.votes[n] for n in candidates] for r in reported], dtype=np.int64),
            candidates=candidates,
            invalid=np.asarray(
                [math.nan if r.invalid is None else r.invalid for r in reported], dtype=np.float64
            ),
            total=np.asarray(
                [math.nan if r.total is None else r.total for r in reported], dtype=np.float64
            ),
            confidence=confidence,
        )

    def _tps_results(
        self,
        tx: StorageTx,
        contest_id: str,
        regions: Mapping[str, Sequence[PollingStation]],
        options: Sequence[int],
    ) -> dict[str, TpsResult[int]]:
        """The counted results of the TPS of ``regions`` (by region code), by their 13
        digits. They are read by district (a village's by village) and each district's
        are kept while its counter of changes stays: after a tally changed, only its
        district is read again."""
        units: dict[str, list[PollingStation]] = {}
        for code, stations in regions.items():
            width = max(6, len(code.replace(".", "")))
            for station in stations:
                units.setdefault(station.code.compact[:width], []).append(station)
        names = {unit: dotted(unit) for unit in units}
        versions = tx.aggregates_many(CHANGES_KEY, list(names.values()))
        out: dict[str, TpsResult[int]] = {}
        todo: list[tuple[str, int]] = []
        for unit in units:
            version = versions.get(names[unit], {}).get(contest_id, 0)
            found: dict[str, TpsResult[int]] | None = self._memo.at(
                ("tps", contest_id, unit), version
            )
            if found is None:
                todo.append((unit, version))
            else:
                out.update(found)
        keys = sorted({(contest_id, s.code.compact) for unit, _ in todo for s in units[unit]})
        read = _results(tx.station_states(keys), options) if keys else {}
        for unit, version in todo:
            mine = {
                code: read[code] for code in (s.code.compact for s in units[unit]) if code in read
            }
            self._memo.keep(("tps", contest_id, unit), version, mine)
            out.update(mine)
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
        digits = len(target.compact)
        depth = CHILD_DIGITS[digits] if level is None else _DEPTH.get(level, 0)
        if depth <= digits:
            raise SipantauError(
                f"stage_progress: level must be below the region (one of {sorted(_DEPTH)})",
                code="desk.bad_call",
            )
        if depth == 13:
            return self._stage_progress_by_tps(target, principal, at)
        # Per region: the counters kept by region (see sipantau_core.desk.stages).
        stations = self._stations_below(target, depth)
        children = sorted(stations)
        what = f"{Action.READ_STATUS.value}:{target}"
        self._guard(principal, Action.READ_STATUS, target, what=what)
        entry = self._audit_entry(principal, Action.READ_STATUS.value, what, "ok", where=target)
        regions = [dotted(child) for child in children]
        found = self._read_audited(entry, lambda tx: tx.aggregates_many(STAGES_KEY, regions))
        out = []
        for child, code in zip(children, regions, strict=True):
            counters = found.get(code, {})
            deadlines = self._deadlines.of(child)
            n = stations[child]
            rows = []
            for stage in Stage:
                in_time = counters.get(counter(stage.value, late=False), 0)
                late = counters.get(counter(stage.value, late=True), 0)
                missing = n - in_time - late if at > deadlines[stage.value] else 0
                rows.append((stage, in_time, late, missing))
            out.append(StageProgress(region=code, stations=n, stages=tuple(rows)))
        return out

    def _stations_below(self, target: RegionCode, depth: int) -> dict[str, int]:
        """The number of TPS of each region of ``depth`` digits within ``target``."""
        key = ("below", target.value, depth)
        found: dict[str, int] | None = self._memo.get(key)
        if found is None:
            found = {}
            for station in self.deployment.stations_in(target):
                child = station.code.compact[:depth]
                found[child] = found.get(child, 0) + 1
            self._memo.put(key, found)
        return found

    def _stage_progress_by_tps(
        self, target: RegionCode, principal: Principal, at: datetime
    ) -> list[StageProgress]:
        """:meth:`stage_progress` per TPS, from the reports of ``target``."""
        query = ReportFilter(region=self._within(target), heads_only=False, payload=False)
        found = self._read_reports(principal, Action.READ_STATUS, target, query)
        first_in: dict[tuple[str, str], datetime] = {}
        for s in found:
            if s.stage is None or s.status is ReportStatus.REJECTED:
                continue
            key = (s.station, s.stage)
            if key not in first_in:  # the reports come in the order they were received
                first_in[key] = s.received_at
        out = []
        for station in self.deployment.stations_in(target):
            code = station.code.compact
            deadlines = self._deadlines.of(code)
            rows = []
            for stage in Stage:
                got = first_in.get((code, stage.value))
                deadline = deadlines[stage.value]
                rows.append(
                    (
                        stage,
                        int(got is not None and got <= deadline),
                        int(got is not None and got > deadline),
                        int(got is None and at > deadline),
                    )
                )
            out.append(StageProgress(region=code, stations=1, stages=tuple(rows)))
        return out

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

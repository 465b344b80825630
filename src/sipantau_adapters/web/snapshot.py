"""One read of the desk for every live overview of desk staff at once.

When reports arrive by the thousand, re-reading each watched region's panels through the
desk for each group of viewers costs as many reads as there are regions (the province,
its cities, their kecamatan: three times the province). The live hub instead reads, once
per update and as itself (``web-live``, on record in the audit log like any reader): the
stage reports of every TPS, the progress of every watched region (one read of their TPS),
the incidents and the flagged tallies of the desk's region. Each group's panels are then
cut from that snapshot by region.

This serves only groups of desk staff (officers, coordinators): their role may read
every panel of any region its scope covers, and each of them was allowed its region by
its own first render, through the desk, when it connected. Viewers, whose panels depend
on what was released, are rendered through the desk one group at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from sipantau_adapters.web.overview import (
    FEED_LIMIT,
    Overview,
    Panel,
    assemble,
    flagged_rows,
    heading,
    results_of,
    stage_rows,
)
from sipantau_core.access import Principal, Role
from sipantau_core.desk import Desk, IncidentView
from sipantau_core.domain import RegionCode, Stage
from sipantau_core.domain.regions import CHILD_DIGITS, dotted
from sipantau_core.ports import StoredReport
from sipantau_core.quickcount import ProgressCount
from sipantau_core.results import StageProgress

__all__ = ["HUB", "Snapshot", "overview_from", "read_snapshot"]

#: Who the live hub reads as.
HUB = Principal(id="web-live", role=Role.SYSTEM)


@attrs.frozen
class Snapshot:
    contest: str
    progress: Mapping[str, ProgressCount[int]]  # per watched region
    stages: tuple[StageProgress, ...]  # per village of the desk's region
    incidents: tuple[IncidentView, ...]  # most severe first
    flagged: tuple[StoredReport, ...]  # by TPS
    #: the stage rows summed per region of each size (4, 6 and 10 digits):
    #: {digits: (TPS, [[on_time, late, missing] per stage])}
    sums: Mapping[int, Mapping[str, tuple[int, list[list[int]]]]] = attrs.field(
        factory=dict, eq=False, repr=False
    )


def read_snapshot(desk: Desk, regions: Sequence[str], contest: str | None) -> Snapshot:
    """The snapshot for the overviews of ``regions`` (blocking: four reads)."""
    dep = desk.deployment
    codes = sorted({heading(dep, r, contest)[0].value for r in regions})
    contest_id = heading(dep, codes[0], contest)[1]
    top = dep.region
    stages = tuple(desk.stage_progress(top, principal=HUB, level="village"))
    return Snapshot(
        contest=contest_id,
        progress=desk.progress_many(codes, principal=HUB, contest=contest_id),
        stages=stages,
        incidents=tuple(desk.incidents(top, principal=HUB)),
        flagged=tuple(desk.flagged(top, principal=HUB, contest=contest_id)),
        sums=_sum_levels(stages),
    )


def _sum_levels(
    rows: Sequence[StageProgress],
) -> dict[int, dict[str, tuple[int, list[list[int]]]]]:
    """The per-village stage rows summed once per region of every level above (each group
    then takes its children from the level below its region)."""
    sums: dict[int, dict[str, tuple[int, list[list[int]]]]] = {2: {}, 4: {}, 6: {}, 10: {}}
    for row in rows:
        counts = [[on_time, late, missing] for _, on_time, late, missing in row.stages]
        digits = row.region.replace(".", "")
        for depth, level in sums.items():
            key = digits[:depth]
            found = level.get(key)
            if found is None:
                level[key] = (row.stations, [list(c) for c in counts])
                continue
            stations, acc = found
            for a, c in zip(acc, counts, strict=True):
                a[0] += c[0]
                a[1] += c[1]
                a[2] += c[2]
            level[key] = (stations + row.stations, acc)
    return sums


def _within(station: str, digits: str) -> bool:
    return station.startswith(digits)


def _stage_sums(desk: Desk, snapshot: Snapshot, region: str) -> list[StageProgress]:
    """The stage rows of the regions one level below ``region`` (of a village: its TPS,
    read for it alone)."""
    digits = RegionCode.parse(region).compact
    depth = CHILD_DIGITS[len(digits)]
    if depth == 13:
        return desk.stage_progress(region, principal=HUB)
    level = snapshot.sums[depth]
    return [
        StageProgress(
            region=dotted(child),
            stations=stations,
            stages=tuple(
                (stage, acc[0], acc[1], acc[2]) for stage, acc in zip(Stage, counted, strict=True)
            ),
        )
        for child, (stations, counted) in sorted(level.items())
        if child.startswith(digits)
    ]


def overview_from(desk: Desk, snapshot: Snapshot, region: str) -> Overview:
    """The overview of ``region`` for desk staff, cut from ``snapshot``."""
    dep = desk.deployment
    code, contest_id, options = heading(dep, region, snapshot.contest)
    digits = code.compact
    counted = dep.contests[contest_id].options
    results, quick = results_of(dep, code, snapshot.progress[code.value], counted)
    incidents = tuple(i for i in snapshot.incidents if _within(i.station, digits))
    flagged = [s for s in snapshot.flagged if _within(s.station, digits)]
    return assemble(
        dep,
        code,
        contest_id,
        options,
        stages=Panel(stage_rows(dep, _stage_sums(desk, snapshot, code.value))),
        results=Panel(results),
        quick_count=quick,
        incidents=Panel(incidents[:FEED_LIMIT]),
        flagged=Panel(flagged_rows(flagged)),
    )

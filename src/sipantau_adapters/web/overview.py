"""What the live overview shows, read from the desk under the signed-in principal.

Each panel is read with the desk's own queries and the principal of the page, so the
access policy decides what a page holds: a panel the principal may not read carries the
desk's refusal (its stable code) instead of data. Nothing here reads the storage
directly, and nothing here holds monitors' personal data or free text beyond what the
desk's queries return to that principal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs

from sipantau_core.access import Principal, Role
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk
from sipantau_core.domain import Contest, RegionCode, StationCode
from sipantau_core.errors import PermissionDenied, SipantauError
from sipantau_core.ports import StoredReport
from sipantau_core.quickcount import ProgressCount
from sipantau_core.results import StageProgress

__all__ = [
    "Overview",
    "Panel",
    "ResultRow",
    "StageRow",
    "child_level",
    "default_region",
    "overview",
]

T = TypeVar("T")

#: How many incidents and flagged tallies the feed shows (newest and most severe first).
FEED_LIMIT = 30


@attrs.frozen
class Panel:
    """A panel's data, or the reason it is empty (``refused``: a stable error code)."""

    data: Any = None
    refused: str | None = None


@attrs.frozen
class StageRow:
    """One region's stage reports: per stage the TPS in (on time or late) and expected."""

    code: str
    name: str
    expected: int
    reported: tuple[tuple[str, int, int], ...]  # (stage, in, late)


@attrs.frozen
class ResultRow:
    code: str
    name: str
    votes: tuple[int, ...]
    shares: tuple[float, ...]
    valid: int
    invalid: int
    total: int
    tps_counted: int
    tps_expected: int


@attrs.frozen
class FlaggedTally:
    station: str
    label: str
    report_id: str
    version: int
    codes: tuple[str, ...]


@attrs.frozen
class Overview:
    region: str
    region_name: str
    contest: str
    contest_name: str
    options: tuple[tuple[int, str], ...]  # (ballot number, name)
    stages: Panel  # tuple[StageRow, ...]
    results: Panel  # (overall ResultRow, tuple[ResultRow, ...] children)
    quick_count: Panel  # ShareEstimate | None, with the note
    incidents: Panel  # tuple[IncidentView, ...]
    flagged: Panel  # tuple[FlaggedTally, ...]


def default_region(desk: Desk, principal: Principal) -> str:
    """Where a principal's pages open: its own region, else the desk's."""
    scope = principal.scope
    if isinstance(scope, RegionCode):
        return scope.value
    return desk.deployment.region.value


def child_level(region: RegionCode) -> str:
    """The level below ``region`` whose rows the overview lists."""
    depth = len(region.segments)
    return {0: "province", 1: "city", 2: "district", 3: "village"}.get(depth, "village")


def _panel(read: Callable[[], T]) -> Panel:
    try:
        return Panel(read())
    except PermissionDenied as e:
        return Panel(refused=e.code)


def _children(dep: Deployment, region: RegionCode) -> list[str]:
    """The codes one level below ``region`` that hold TPS, sorted."""
    depth = len(region.segments)
    found = {
        ".".join(s.code.village.value.split(".")[: depth + 1]) for s in dep.stations_in(region)
    }
    return sorted(found)


def _row(dep: Deployment, code: str, count: Any, options: tuple[int, ...]) -> ResultRow:
    votes = tuple(int(count.votes.get(n, 0)) for n in options)
    valid = int(count.valid)
    return ResultRow(
        code=code,
        name=dep.region_name(code),
        votes=votes,
        shares=tuple(v / valid if valid else math.nan for v in votes),
        valid=valid,
        invalid=int(count.invalid),
        total=int(count.total),
        tps_counted=int(count.tps_counted),
        tps_expected=int(count.tps_expected),
    )


def _stages(desk: Desk, region: RegionCode, principal: Principal) -> tuple[StageRow, ...]:
    return stage_rows(desk.deployment, desk.stage_progress(region, principal=principal))


def _results(
    desk: Desk, region: RegionCode, principal: Principal, contest: str
) -> tuple[tuple[ResultRow, tuple[ResultRow, ...]], Panel]:
    dep = desk.deployment
    options = dep.contests[contest].options
    progress: ProgressCount[int] = desk.progress(region, principal=principal, contest=contest)
    (overall, from_tables), quick = results_of(dep, region, progress, options)
    children = list(from_tables)
    if not children and principal.role is Role.VIEWER:
        # A release covers a region itself: a viewer sees each released child on its own.
        for child in _children(dep, region):
            try:
                tally = desk.tally(child, principal=principal, contest=contest)
            except PermissionDenied:
                continue
            children.append(
                ResultRow(
                    code=child,
                    name=dep.region_name(child),
                    votes=tuple(tally.votes.get(n, 0) for n in options),
                    shares=tuple(tally.share.get(n, math.nan) for n in options),
                    valid=tally.valid,
                    invalid=tally.invalid,
                    total=tally.total,
                    tps_counted=tally.stations_counted,
                    tps_expected=tally.stations_expected,
                )
            )
    return (overall, tuple(children)), quick


def results_of(
    dep: Deployment, region: RegionCode, progress: ProgressCount[int], options: tuple[int, ...]
) -> tuple[tuple[ResultRow, tuple[ResultRow, ...]], Panel]:
    """The results panel (the region, its children) and the quick-count panel of a
    progress count."""
    overall = _row(dep, region.value, progress.overall, options)
    level = child_level(region)
    children: list[ResultRow] = []
    if level in progress.tables:
        prefix = "" if region.is_nation else region.value + "."
        for count in progress.regions(level):
            if count.code.startswith(prefix):
                children.append(_row(dep, count.code, count, options))
    quick = Panel((progress.projection, progress.projection_note, progress.coverage))
    return (overall, tuple(children)), quick


def flagged_rows(found: Sequence[StoredReport]) -> tuple[FlaggedTally, ...]:
    """The flagged-tallies feed of the newest flagged tallies ``found`` (by TPS)."""
    return tuple(
        FlaggedTally(
            station=stored.station,
            label=StationCode.parse(stored.station).label,
            report_id=str(stored.report_id),
            version=stored.version,
            codes=tuple(sorted({v["code"] for v in _verdict(stored.verdict)})),
        )
        for stored in found[:FEED_LIMIT]
    )


def stage_rows(dep: Deployment, rows: Sequence[StageProgress]) -> tuple[StageRow, ...]:
    return tuple(
        StageRow(
            row.region,
            _name(dep, row.region),
            row.stations,
            tuple((stage.value, on_time, late) for stage, on_time, late, _ in row.stages),
        )
        for row in rows
    )


def _name(dep: Deployment, code: str) -> str:
    """A region's name, or a TPS's label (13 digits)."""
    if len(code) == 13 and code.isdigit():
        return StationCode.parse(code).label
    return dep.region_name(code)


def heading(
    dep: Deployment, region: str, contest: str | None
) -> tuple[RegionCode, str, tuple[tuple[int, str], ...]]:
    """The region, the contest's id and its options (number, name) of an overview."""
    try:
        code = RegionCode.parse(region)
    except ValueError:
        raise SipantauError(
            "not a region code such as 16.73 or 16.73.01",
            code="region.unknown",
            message_id="kode wilayah tidak dikenal",
        ) from None
    contest_id = contest or sorted(dep.contests)[0]
    chosen = dep.contests.get(contest_id)
    if chosen is None:
        raise SipantauError(
            f"no contest {contest_id!r} at this desk",
            code="report.unknown_contest",
            message_id="pemilihan tidak dikenal",
        )
    return code, contest_id, tuple((n, chosen.label(n)) for n in chosen.options)


def _flagged(
    desk: Desk, region: RegionCode, principal: Principal, contest: str
) -> tuple[FlaggedTally, ...]:
    return flagged_rows(desk.flagged(region, principal=principal, contest=contest))


def _verdict(text: str) -> list[dict[str, Any]]:
    parsed: list[dict[str, Any]] = json.loads(text) if text and text != "[]" else []
    return parsed


def overview(
    desk: Desk, region: str, *, principal: Principal, contest: str | None = None
) -> Overview:
    """The overview of ``region`` as ``principal`` may see it. Raises the desk's
    :class:`~sipantau_core.errors.PermissionDenied` when the principal may not read the
    region's count at all (as ``GET /v1/tally`` would), and its
    :class:`~sipantau_core.errors.UnknownEntityError` for a region the desk lacks; a
    panel the principal may not read is empty with the refusal's code."""
    dep = desk.deployment
    code, contest_id, options = heading(dep, region, contest)
    # The gate: the region's count as the API reads it (a refusal is the desk's, on record).
    desk.tally(code, principal=principal, contest=contest_id)
    results = _panel(lambda: _results(desk, code, principal, contest_id))
    quick = results.data[1] if results.data is not None else Panel(refused=results.refused)
    incidents: Panel = _panel(lambda: tuple(desk.incidents(code, principal=principal)[:FEED_LIMIT]))
    return assemble(
        dep,
        code,
        contest_id,
        options,
        stages=_panel(lambda: _stages(desk, code, principal)),
        results=Panel(results.data[0]) if results.data is not None else results,
        quick_count=quick,
        incidents=incidents,
        flagged=_panel(lambda: _flagged(desk, code, principal, contest_id)),
    )


def assemble(
    dep: Deployment,
    code: RegionCode,
    contest: str,
    options: tuple[tuple[int, str], ...],
    **panels: Panel,
) -> Overview:
    """An overview of ``code`` from its panels (``stages``, ``results``, ``quick_count``,
    ``incidents``, ``flagged``)."""
    return Overview(
        region=code.value,
        region_name=dep.region_name(code),
        contest=contest,
        contest_name=dep.contests[contest].name or contest,
        options=options,
        **panels,
    )


def station_contest(dep: Deployment, station: StationCode) -> Contest | None:
    """The contest a TPS votes in (the first by id whose region holds it)."""
    return next(
        (
            c
            for c in sorted(dep.contests.values(), key=lambda c: c.id)
            if c.region is None or c.region.contains(station)
        ),
        None,
    )

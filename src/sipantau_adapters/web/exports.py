"""Exports of a desk's results for the web page: a CSV per TPS, a CSV per district (or
village), the NIST SP 1500-100 election results document, and the value of a printable
summary page.

Each is a pure function of a running :class:`~sipantau_core.Desk` and a
:class:`~sipantau_core.Principal`. The figures come from the desk's own queries
(``tally``, ``reports``, ``station_status``, ``incidents``, ``progress``) called as that
principal, so an export is scoped exactly like those queries: what the principal may not
read raises the desk's :class:`~sipantau_core.PermissionDenied` (``access.role``,
``access.out_of_scope``, ``access.not_released``) and is on record in the audit log.
Monitors' personal data is never read. See ``docs/_exports_section.md``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

import attrs

from sipantau_adapters.web._err import election_results_report
from sipantau_adapters.web._reading import (
    CONFIDENTIAL_NOTICE,
    city_parts,
    contest_of,
    contest_region,
    read_breakdown,
)
from sipantau_core import (
    Contest,
    Desk,
    Principal,
    RegionCode,
    Stage,
    StationCode,
    Tally,
    TallyReport,
)
from sipantau_core.quickcount import ShareEstimate

__all__ = [
    "CONFIDENTIAL_NOTICE",
    "RegionSummary",
    "SummaryRow",
    "district_csv",
    "election_results_report",
    "iter_tps_csv",
    "safe_cell",
    "summary",
    "tps_csv",
]

#: The first characters that make a spreadsheet read a cell as a formula (or, for tab
#: and carriage return, hide one behind them).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_COUNTED = frozenset({"accepted", "overridden"})

Cell = str | int | float | None


def safe_cell(value: Cell) -> str | int | float:
    """A CSV cell that no spreadsheet runs as a formula: text that starts with ``=``,
    ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``; numbers stay
    numbers and ``None`` is an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(header: Sequence[str] | None, rows: Iterable[Sequence[Cell]]) -> str:
    """RFC 4180 text (CRLF line ends, quoted where needed), with a header row unless
    ``header`` is ``None``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header is not None:
        writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(c) for c in row])
    return out.getvalue()


def _option_names(contest: Contest) -> list[tuple[int, str]]:
    return [(n, contest.label(n)) for n in contest.options]


# ---------------------------------------------------------------------------------------
# One row per TPS
# ---------------------------------------------------------------------------------------


def _rule_codes(verdict: str) -> str:
    """The codes of a stored verdict (the port's JSON list of violations), sorted."""
    return ";".join(sorted({str(v["code"]) for v in json.loads(verdict)}))


def tps_csv(
    desk: Desk,
    region: RegionCode | StationCode | str,
    *,
    principal: Principal,
    contest: str | None = None,
    now: datetime | None = None,
) -> str:
    """One row per TPS of ``contest`` within ``region`` (a region code, or one TPS): its
    code, label and name, village, district, DPT, the status of its newest tally
    (``accepted``, ``flagged``, ``overridden``, ``rejected`` or ``none``), whether that
    tally counts, its votes per option, valid, invalid, total and rule codes, each
    stage's report (``in``, ``late``, ``missing``, ``pending`` at ``now``) and its
    incidents (how many; categories with the highest severity, never their text).

    Readers: as for ``desk.reports`` (officers and coordinators within their region, a
    monitor for its own TPS); a viewer is refused with ``access.role``. The text of
    :func:`iter_tps_csv` in one string."""
    return "".join(iter_tps_csv(desk, region, principal=principal, contest=contest, now=now))


def iter_tps_csv(
    desk: Desk,
    region: RegionCode | StationCode | str,
    *,
    principal: Principal,
    contest: str | None = None,
    now: datetime | None = None,
) -> Iterator[str]:
    """:func:`tps_csv`'s text a part at a time: a province's or the nation's TPS are read
    city by city (each city's reads on record as usual), so that an export of the whole
    country never holds its 823,236 TPS's reports at once. The first part is read before
    this returns: a refusal is raised here, never after the first line went out."""
    at = now or desk.clock()  # one moment for every part
    parts = iter(city_parts(desk, region, principal))
    head = _tps_rows(desk, next(parts, region), principal, contest, at, header=True)
    rest = (_tps_rows(desk, part, principal, contest, at) for part in parts)
    return itertools.chain([head], rest)


def _tps_header(contest: Contest) -> list[str]:
    return [
        "tps_code",
        "tps",
        "tps_name",
        "village",
        "district",
        "dpt",
        "tally_status",
        "counted",
        *(f"votes {n} {name}" for n, name in _option_names(contest)),
        "valid",
        "invalid",
        "total",
        "rule_codes",
        *(stage.value for stage in Stage),
        "incidents",
        "incident_categories",
    ]


def _tps_rows(
    desk: Desk,
    region: RegionCode | StationCode | str,
    principal: Principal,
    contest: str | None,
    now: datetime,
    *,
    header: bool = False,
) -> str:
    """The CSV rows of the TPS of ``region`` (after the header row, with ``header``)."""
    statuses = desk.station_status(region, principal=principal, now=now)  # access first
    chosen = contest_of(desk, contest)
    heads = {
        stored.station: (stored, report)
        for stored, report in desk.reports(
            region, principal=principal, kind="tally", contest=chosen.id
        )
    }
    incidents: dict[str, dict[str, int]] = defaultdict(dict)
    counts: dict[str, int] = defaultdict(int)
    for incident in desk.incidents(region, principal=principal):
        seen = incidents[incident.station]
        seen[incident.category] = max(seen.get(incident.category, 0), incident.severity)
        counts[incident.station] += 1
    where = contest_region(desk, chosen)
    options = _option_names(chosen)
    rows: list[list[Cell]] = []
    for state in statuses:
        code = StationCode.parse(state.station)
        if not where.contains(code):
            continue
        station = desk.deployment.stations[code]
        head = heads.get(code.compact)
        figures: list[Cell]
        if head is None:
            status, counted, rules = "none", 0, ""
            figures = [None] * (len(options) + 3)
        else:
            stored, report = head
            assert isinstance(report, TallyReport)
            status = stored.status.value
            counted = int(status in _COUNTED)
            rules = _rule_codes(stored.verdict)
            figures = [report.votes.get(n) for n, _ in options]  # blank: not on the sheet
            figures += [report.valid, report.invalid, report.total]
        stages: list[Cell] = [state.stage(stage).state for stage in Stage]
        found = incidents.get(code.compact, {})
        categories = ";".join(
            f"{c}:{s}" for c, s in sorted(found.items(), key=lambda cs: (-cs[1], cs[0]))
        )
        rows.append(
            [
                code.compact,
                code.label,
                station.name,
                desk.deployment.region_name(code.village),
                desk.deployment.region_name(code.district),
                station.registered_voters,
                status,
                counted,
                *figures,
                rules,
                *stages,
                counts.get(code.compact, 0),
                categories,
            ]
        )
    return _csv(_tps_header(chosen) if header else None, rows)


# ---------------------------------------------------------------------------------------
# One row per district (or village)
# ---------------------------------------------------------------------------------------


def district_csv(
    desk: Desk,
    region: RegionCode | StationCode | str,
    *,
    principal: Principal,
    contest: str | None = None,
) -> str:
    """One row per place one level below ``region`` (the districts of a city, the
    villages of a district, the TPS of a village): votes per option, valid, invalid,
    total, each option's share of the valid votes, TPS counted and expected, registered
    voters covered and expected. Only counted tallies are in it (those ``desk.tally``
    counts).

    Readers: as for ``desk.tally`` of the region and of every row; a viewer needs the
    region and each row's region released (``access.not_released`` otherwise)."""
    found = read_breakdown(desk, region, principal=principal, contest=contest)
    options = _option_names(found.contest)
    header = [
        "code",
        "name",
        "kind",
        *(f"votes {n} {name}" for n, name in options),
        "valid",
        "invalid",
        "total",
        *(f"share {n} {name}" for n, name in options),
        "tps_counted",
        "tps_expected",
        "registered_covered",
        "registered_expected",
    ]
    rows: list[list[Cell]] = []
    for _, unit, tally in found.rows:
        share = tally.share
        rows.append(
            [
                unit.code,
                unit.name,
                unit.kind,
                *(tally.votes.get(n, 0) for n, _ in options),
                tally.valid,
                tally.invalid,
                tally.total,
                *(round(share.get(n, 0.0), 6) for n, _ in options),
                tally.stations_counted,
                tally.stations_expected,
                tally.registered_covered,
                tally.registered_expected,
            ]
        )
    return _csv(header, rows)


# ---------------------------------------------------------------------------------------
# The printable summary
# ---------------------------------------------------------------------------------------


@attrs.frozen
class SummaryRow:
    """One place below the summarised region, with its count."""

    code: str
    name: str
    kind: str
    tally: Tally


@attrs.frozen
class RegionSummary:
    """What a printable summary page of a region's count shows.

    ``options`` are the contest's options in ballot order (number, label; the empty box
    is 0). ``projection`` is the progress count's projection by district with its
    margins (``ShareEstimate.share``, ``.margin``, ``.low``, ``.high`` at
    ``.confidence``), or ``None`` with ``projection_note`` saying why. ``notice`` is the
    desk's confidentiality wording, to print on every page."""

    region: str
    name: str
    kind: str
    contest: str
    contest_name: str
    options: tuple[tuple[int, str], ...]
    generated_at: datetime
    tally: Tally
    rows: tuple[SummaryRow, ...]
    projection: ShareEstimate[int] | None
    projection_note: str
    notice: str = CONFIDENTIAL_NOTICE

    @property
    def complete(self) -> bool:
        """Every expected TPS is counted."""
        return self.tally.stations_counted >= self.tally.stations_expected

    def label(self, option: int) -> str:
        return dict(self.options)[option]


def summary(
    desk: Desk,
    region: RegionCode | StationCode | str,
    *,
    principal: Principal,
    contest: str | None = None,
    generated_at: datetime | None = None,
) -> RegionSummary:
    """The summary of a region's count: its tally, a row per place one level below it,
    and the projection of ``desk.progress`` (not for a single TPS).

    Readers: as for :func:`district_csv` (``desk.progress`` needs what ``desk.tally``
    of the region needs)."""
    found = read_breakdown(desk, region, principal=principal, contest=contest)
    projection: ShareEstimate[int] | None = None
    note = ""
    if isinstance(found.place, RegionCode):
        progress = desk.progress(found.place, principal=principal, contest=found.contest.id)
        projection, note = progress.projection, progress.projection_note
    return RegionSummary(
        region=found.unit.code,
        name=found.unit.name,
        kind=found.unit.kind,
        contest=found.contest.id,
        contest_name=found.contest.name or found.contest.id,
        options=tuple(_option_names(found.contest)),
        generated_at=generated_at or desk.clock(),
        tally=found.tally,
        rows=tuple(SummaryRow(u.code, u.name, u.kind, t) for _, u, t in found.rows),
        projection=projection,
        projection_note=note,
    )

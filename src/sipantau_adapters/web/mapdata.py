"""The desk's map as JSON for ``static/map.js``: each TPS where it stands, how far it has
reported, its risk mapping (TPS rawan) and its incidents; the kecamatan outlines; and the
table that asks whether the risky TPS really report more trouble.

Everything is read through the desk's own queries with the caller's principal
(``station_status``, with the tally status of the contest asked, and ``incidents``), so
the map shows exactly what the principal may read, each read is on record, and a refusal
is the desk's :class:`~sipantau_core.PermissionDenied`. Free text (an incident's words, a
monitor's name) is never in it: only counts, codes and the deployment's master data.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from sipantau_adapters.web._reading import city_parts
from sipantau_core import (
    Deployment,
    Desk,
    PollingStation,
    Principal,
    RegionCode,
    RegionLevel,
    RiskLevel,
    SipantauError,
    StationCode,
    UnknownEntityError,
)
from sipantau_core.errors import DeploymentError
from sipantau_core.ports import COUNTED_STATUSES, ReportStatus

__all__ = [
    "HULL_BUFFER_M",
    "MAP_POINTS",
    "REGIONS_FILE",
    "SCHEMA",
    "STATUSES",
    "convex_hull",
    "map_data",
]

SCHEMA = "sipantau.map/1"

#: A TPS on the map: ``silent`` (no report at all), ``reported`` (a stage report in, no
#: counted tally), ``flagged`` (its newest tally breaks a hard rule), ``counted`` (its
#: newest tally is accepted or overridden).
STATUSES = ("silent", "reported", "flagged", "counted")

#: How far (metres) a kecamatan outline drawn from its TPS reaches beyond the outermost TPS.
HULL_BUFFER_M = 150.0

#: The kecamatan outlines a deployment directory may ship (GeoJSON, WGS84): a
#: FeatureCollection of Polygon or MultiPolygon features with a region ``code`` property.
REGIONS_FILE = "regions.geojson"

_METRES_PER_DEGREE = 111_320.0
_BUFFER_STEPS = 16
Point = tuple[float, float]  # (longitude, latitude), GeoJSON's order


def map_data(
    desk: Desk,
    region: RegionCode | StationCode | str,
    *,
    principal: Principal,
    contest: str | None = None,
) -> dict[str, Any]:
    """The map of ``region`` as ``principal`` may see it, ready for ``json.dumps``.

    Keys: ``stations`` (a GeoJSON FeatureCollection, a Point per TPS with a position),
    ``outlines`` (a Polygon per kecamatan), ``risk_summary`` (a row per risk level),
    ``bounds`` (``[[south, west], [north, east]]``, ``None`` when nothing is placed),
    ``totals`` (TPS per status, ``unplaced`` the TPS without a position, ``omitted`` those
    not drawn), ``region``, ``region_name``, ``contest`` and ``schema``. The tally status
    is that of ``contest`` (the desk's only contest by default).

    A province or the nation is read city by city, and past :data:`MAP_POINTS` TPS the
    points are left out (``omitted``): the counts, the table and the outlines are all
    there, and a city's map draws its TPS."""
    parts = city_parts(desk, region, principal)
    drawn = sum(_stations_in(desk, part) for part in parts) <= MAP_POINTS
    seen = _Seen()
    for part in parts:
        _read_part(desk, part, principal, contest, seen, drawn)
    contest_id = _contest(desk.deployment, contest)
    deployment = desk.deployment
    outlines = _deployment_outlines(deployment, seen.villages)
    if outlines is None:
        outlines = seen.hulls
    target = _target_code(region)
    return {
        "schema": SCHEMA,
        "region": target,
        "region_name": _region_name(deployment, target),
        "contest": contest_id,
        "stations": {"type": "FeatureCollection", "features": seen.features},
        "outlines": {"type": "FeatureCollection", "features": outlines},
        "risk_summary": [{"level": level.value, **_row(seen.rows[level])} for level in RiskLevel],
        "totals": {
            "stations": seen.stations,
            "unplaced": seen.unplaced,
            "omitted": 0 if drawn else seen.stations - seen.unplaced,
            **seen.totals,
        },
        "bounds": _bounds(
            seen.corners + [p for f in outlines for p in _coordinates(f["geometry"])]
        ),
    }


#: The most TPS a map draws as points (a city's; a province's or the country's are
#: counted, not drawn: a browser draws no 823,236 markers).
MAP_POINTS = 20_000


@attrs.define
class _Seen:
    """What the parts of a map add up to."""

    features: list[dict[str, Any]] = attrs.Factory(list)
    hulls: list[dict[str, Any]] = attrs.Factory(list)
    rows: dict[RiskLevel, Counter[str]] = attrs.Factory(
        lambda: {level: Counter[str]() for level in RiskLevel}
    )
    totals: Counter[str] = attrs.Factory(lambda: Counter(dict.fromkeys(STATUSES, 0)))
    villages: Counter[str] = attrs.Factory(Counter)  # TPS a village, for outlines
    corners: list[Point] = attrs.Factory(list)  # each part's placed TPS's box
    stations: int = 0
    unplaced: int = 0


def _stations_in(desk: Desk, part: RegionCode | StationCode | str) -> int:
    """How many of the deployment's TPS ``part`` holds (0 for what is not a region of it:
    the desk's read then says what it is)."""
    if isinstance(part, StationCode):
        return int(part in desk.deployment.stations)
    try:
        return sum(1 for _ in desk.deployment.stations_in(str(part)))
    except ValueError:
        return 0


def _read_part(
    desk: Desk,
    part: RegionCode | StationCode | str,
    principal: Principal,
    contest: str | None,
    seen: _Seen,
    drawn: bool,
) -> None:
    """Read one part of the map (a city, or the whole region) and add it to ``seen``."""
    # the access check comes first; the tally status is that of the contest asked (the
    # only one, when none is named: several make the name required, checked next)
    states = desk.station_status(part, principal=principal, contest=contest)
    _contest(desk.deployment, contest)
    incidents = Counter(i.station for i in desk.incidents(part, principal=principal))
    deployment = desk.deployment
    placed: dict[RegionCode, list[Point]] = {}
    for state in states:
        station = deployment.stations[StationCode.parse(state.station)]
        reported = any(s.state in ("in", "late") for s in state.stages)
        status = _status(reported, None if state.tally is None else ReportStatus(state.tally))
        seen.stations += 1
        seen.totals[status] += 1
        seen.villages[station.code.village.value] += 1
        _count(seen.rows[station.risk.level], status, incidents[state.station])
        if station.position is None:
            seen.unplaced += 1
            continue
        point = (round(station.position.longitude, 6), round(station.position.latitude, 6))
        placed.setdefault(station.code.district, []).append(point)
        if drawn:
            seen.features.append(
                _station_feature(deployment, station, point, status, incidents[state.station])
            )
    seen.hulls += [_hull_feature(deployment, d, pts) for d, pts in sorted(placed.items())]
    box = _bounds([p for pts in placed.values() for p in pts])
    if box is not None:
        seen.corners += [(box[0][1], box[0][0]), (box[1][1], box[1][0])]


# -- one TPS ------------------------------------------------------------------------------


def _status(reported: bool, tally: ReportStatus | None) -> str:
    if tally in COUNTED_STATUSES:
        return "counted"
    if tally is ReportStatus.FLAGGED:
        return "flagged"
    if reported or tally is not None:
        return "reported"
    return "silent"


def _station_feature(
    deployment: Deployment, station: PollingStation, point: Point, status: str, incidents: int
) -> dict[str, Any]:
    code = station.code
    return {
        "type": "Feature",
        "id": code.compact,
        "geometry": {"type": "Point", "coordinates": list(point)},
        "properties": {
            "code": code.compact,
            "label": code.label,
            "name": station.name,
            "village": code.village.value,
            "village_name": deployment.region_names.get(code.village),
            "district": code.district.value,
            "district_name": deployment.region_names.get(code.district),
            "status": status,
            "risk_level": station.risk.level.value,
            "risk_indicators": sorted(station.risk.indicators),
            "incidents": incidents,
        },
    }


def _count(row: Counter[str], status: str, incidents: int) -> None:
    row["stations"] += 1
    row["stations_with_incidents"] += incidents > 0
    row["incidents"] += incidents
    row[status] += 1


def _row(row: Counter[str]) -> dict[str, int]:
    keys = ("stations", "stations_with_incidents", "incidents", "flagged", "counted", "silent")
    return {key: row[key] for key in keys}


# -- outlines -----------------------------------------------------------------------------


def convex_hull(points: Iterable[Point]) -> list[Point]:
    """The convex hull of ``points`` (Andrew's monotone chain), counter-clockwise, without
    repeating the first point; fewer than three distinct points come back as they are."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o: Point, a: Point, b: Point) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Point] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[Point] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def _buffered_hull(points: Sequence[Point], metres: float) -> list[Point]:
    """The hull of a small circle of ``metres`` around each point: the points' hull grown
    by that much, a polygon even for one or two points."""
    grown: list[Point] = []
    for lon, lat in points:
        dlat = metres / _METRES_PER_DEGREE
        dlon = metres / (_METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 1e-6))
        for k in range(_BUFFER_STEPS):
            a = 2 * math.pi * k / _BUFFER_STEPS
            grown.append((round(lon + dlon * math.cos(a), 6), round(lat + dlat * math.sin(a), 6)))
    return convex_hull(grown)


def _hull_feature(
    deployment: Deployment, district: RegionCode, points: list[Point]
) -> dict[str, Any]:
    ring = _buffered_hull(points, HULL_BUFFER_M)
    return {
        "type": "Feature",
        "id": district.value,
        "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in [*ring, ring[0]]]]},
        "properties": {
            "code": district.value,
            "name": deployment.region_names.get(district),
            "source": "tps-hull",
            "stations": len(points),
        },
    }


def _deployment_outlines(
    deployment: Deployment, villages: Counter[str]
) -> list[dict[str, Any]] | None:
    """The features of the deployment's ``regions.geojson`` whose region holds a TPS in
    view (``villages``: TPS in view by village code), or ``None`` when the deployment
    ships no such file."""
    if deployment.path is None:
        return None
    path = Path(deployment.path) / REGIONS_FILE
    if not path.is_file():
        return None
    try:
        collection = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DeploymentError(f"not readable GeoJSON ({e})", file=str(path)) from None
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise DeploymentError("must be a GeoJSON FeatureCollection", file=str(path))
    ordered = sorted(villages)
    counts = [villages[v] for v in ordered]
    out: list[dict[str, Any]] = []
    for i, feature in enumerate(collection.get("features") or []):
        where = f"features[{i}]"
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") not in (
            "Polygon",
            "MultiPolygon",
        ):
            raise DeploymentError(
                "needs a Polygon or MultiPolygon geometry", file=str(path), field=where
            )
        try:
            code = RegionCode.parse(str((props or {})["code"]))
        except (KeyError, ValueError):
            raise DeploymentError(
                'needs a region code property, e.g. "code": "16.73.01"',
                file=str(path),
                field=where,
            ) from None
        stations = _within(code, ordered, counts)
        if not stations:
            continue
        name = (props or {}).get("name") or deployment.region_names.get(code)
        out.append(
            {
                "type": "Feature",
                "id": code.value,
                "geometry": {"type": geometry["type"], "coordinates": geometry["coordinates"]},
                "properties": {
                    "code": code.value,
                    "name": str(name) if name else None,
                    "source": "deployment",
                    "stations": stations,
                },
            }
        )
    return out


def _within(code: RegionCode, villages: list[str], counts: list[int]) -> int:
    """The TPS in view within ``code``, from the sorted village codes and their counts (a
    bisect, not a scan: a country has 83,000 villages and thousands of outlines)."""
    if code.is_nation:
        return sum(counts)
    if code.level >= RegionLevel.VILLAGE:
        i = bisect.bisect_left(villages, code.value)
        return counts[i] if i < len(villages) and villages[i] == code.value else 0
    prefix = code.value + "."
    lo = bisect.bisect_left(villages, prefix)
    hi = bisect.bisect_left(villages, prefix + "\uffff")
    return sum(counts[lo:hi])


def _coordinates(geometry: dict[str, Any]) -> list[Point]:
    def walk(value: Any) -> Iterable[Point]:
        if (
            isinstance(value, list)
            and len(value) >= 2
            and all(isinstance(x, int | float) for x in value[:2])
        ):
            yield (float(value[0]), float(value[1]))
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)

    return list(walk(geometry.get("coordinates")))


def _bounds(points: Sequence[Point]) -> list[list[float]] | None:
    if not points:
        return None
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    return [[min(lats), min(lons)], [max(lats), max(lons)]]


# -- names --------------------------------------------------------------------------------


def _contest(deployment: Deployment, contest: str | None) -> str:
    """The contest named (it must exist), or the deployment's only one; the desk's errors."""
    if contest is not None:
        if contest not in deployment.contests:
            raise UnknownEntityError(
                "the contest named is not in the deployment "
                f"(known: {sorted(deployment.contests)})",
                code="report.unknown_contest",
                message_id="pemilihan yang disebut tidak dikenal",
            )
        return contest
    if len(deployment.contests) == 1:
        return next(iter(deployment.contests))
    raise SipantauError(
        f"this desk runs several contests; name one of {sorted(deployment.contests)}",
        code="contest.ambiguous",
    )


def _target_code(region: RegionCode | StationCode | str) -> str:
    if isinstance(region, StationCode):
        return region.compact
    if isinstance(region, RegionCode):
        return region.value
    text = str(region).strip()
    try:
        return RegionCode.parse(text).value
    except ValueError:
        return StationCode.parse(text).compact


def _region_name(deployment: Deployment, code: str) -> str | None:
    try:
        region = RegionCode.parse(code)
    except ValueError:
        return deployment.stations[StationCode.parse(code)].name or None
    return deployment.region_names.get(region)

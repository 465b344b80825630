"""The map's data (``sipantau_adapters.web.mapdata``) on the Lubuklinggau reference
deployment (326 TPS with positions and risk levels) and on ``memory://``: the status of
each TPS after real reports, the kecamatan outlines, the risk table, and the scope: a
principal reads exactly what the desk's own queries let it read."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest

from mapdesk import (
    COORDINATOR,
    DAY,
    EXAMPLE,
    EXPECTED_STATUS,
    SECRET_TEXT,
    SYSTEM,
    day_desk,
    example_desk,
    situation,
    tally,
)
from sipantau_adapters.web._reading import city_parts as real_city_parts
from sipantau_adapters.web.mapdata import STATUSES, convex_hull, map_data
from sipantau_core import (
    Candidate,
    Contest,
    Desk,
    Incident,
    PermissionDenied,
    PollingStation,
    Position,
    Principal,
    RegionLevel,
    RiskProfile,
    Role,
    SipantauError,
    UnknownEntityError,
)
from sipantau_core.errors import DeploymentError
from sipantau_core.testing.contracts import build_deployment, small_deployment
from together import regions_read

Point = tuple[float, float]


def stations_csv() -> list[dict[str, str]]:
    with (EXAMPLE / "stations.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def by_code(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["properties"]["code"]: f["properties"] for f in data["stations"]["features"]}


def inside_convex(ring: list[list[float]], point: Point) -> bool:
    """True when ``point`` lies within (or on) the closed, counter-clockwise ``ring``."""
    for (ax, ay), (bx, by) in itertools.pairwise(ring):
        if (bx - ax) * (point[1] - ay) - (by - ay) * (point[0] - ax) < -1e-12:
            return False
    return True


@pytest.fixture(scope="module")
def day() -> Desk:
    return day_desk()


# -- the reference deployment, nothing reported yet --------------------------------------


def test_every_tps_of_lubuklinggau_is_a_point_with_its_master_data() -> None:
    data = map_data(example_desk(), "16.73", principal=COORDINATOR)
    rows = stations_csv()
    features = data["stations"]["features"]
    assert len(features) == len(rows) == 326
    assert data["totals"] == {
        "stations": 326,
        "unplaced": 0,
        "omitted": 0,
        "silent": 326,
        "reported": 0,
        "flagged": 0,
        "counted": 0,
    }
    props = by_code(data)
    for row in rows:
        p = props[row["code"]]
        assert p["name"] == row["name"]
        assert p["risk_level"] == row["risk_level"]
        assert p["risk_indicators"] == sorted(x for x in row["risk_indicators"].split(";") if x)
        assert p["status"] == "silent" and p["incidents"] == 0
    first = features[0]
    assert first["geometry"] == {"type": "Point", "coordinates": [102.845529, -3.284706]}
    assert first["properties"]["label"] == "16.73.01.1001 TPS 001"
    assert first["properties"]["district"] == "16.73.01"
    assert first["properties"]["district_name"] == "Lubuklinggau Barat I"
    assert data["region"] == "16.73" and data["region_name"] == "Kota Lubuklinggau"
    assert data["contest"] == "walikota"
    json.dumps(data)  # JSON-ready as it is


def test_each_kecamatan_outline_is_a_hull_around_its_tps() -> None:
    data = map_data(example_desk(), "16.73", principal=COORDINATOR)
    outlines = data["outlines"]["features"]
    assert [f["properties"]["code"] for f in outlines] == [f"16.73.0{i}" for i in range(1, 9)]
    points: dict[str, list[Point]] = {}
    for f in data["stations"]["features"]:
        lon, lat = f["geometry"]["coordinates"]
        points.setdefault(f["properties"]["district"], []).append((lon, lat))
    for outline in outlines:
        props = outline["properties"]
        assert props["source"] == "tps-hull"
        assert props["name"]  # from the deployment's region names
        assert props["stations"] == len(points[props["code"]])
        assert outline["geometry"]["type"] == "Polygon"
        ring = outline["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) >= 4
        assert all(inside_convex(ring, p) for p in points[props["code"]])
        # buffered: no TPS lies on the outline itself
        hull = convex_hull(points[props["code"]])
        assert not any(list(p) in ring for p in hull)
    (south, west), (north, east) = data["bounds"]
    for f in data["stations"]["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert south < lat < north and west < lon < east


def test_convex_hull() -> None:
    square = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
    inner = [(1.0, 1.0), (0.5, 1.5), (1.0, 0.0)]  # one on an edge
    assert convex_hull(square + inner + square) == [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
    assert convex_hull([(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)]) == [(0.0, 0.0), (2.0, 2.0)]
    assert convex_hull([(1.0, 1.0)]) == [(1.0, 1.0)]
    assert convex_hull([]) == []


# -- after a day of reports ---------------------------------------------------------------


def test_the_status_of_each_tps_follows_its_reports(day: Desk) -> None:
    data = map_data(day, "16.73", principal=COORDINATOR)
    props = by_code(data)
    for station, what in DAY.items():
        assert props[station]["status"] == EXPECTED_STATUS[what], (station, what)
    others = [p for code, p in props.items() if code not in DAY]
    assert {p["status"] for p in others} == {"silent"}
    expected = Counter(EXPECTED_STATUS[w] for w in DAY.values())
    assert data["totals"] == {
        "stations": 326,
        "unplaced": 0,
        "omitted": 0,
        "silent": 326 - len(DAY),
        **{s: expected[s] for s in STATUSES if s != "silent"},
    }
    assert [props[s]["incidents"] for s in DAY if DAY[s] == "incidents"] == [2, 2]


def test_the_risk_summary_counts_add_up(day: Desk) -> None:
    data = map_data(day, "16.73", principal=COORDINATOR)
    rows = {row["level"]: row for row in data["risk_summary"]}
    assert list(rows) == ["low", "medium", "high"]
    risk = {r["code"]: r["risk_level"] for r in stations_csv()}
    for level, row in rows.items():
        mine = [code for code, lvl in risk.items() if lvl == level]
        here = {s: w for s, w in DAY.items() if risk[s] == level}
        assert row == {
            "level": level,
            "stations": len(mine),
            "stations_with_incidents": sum(w == "incidents" for w in here.values()),
            "incidents": 2 * sum(w == "incidents" for w in here.values()),
            "flagged": sum(EXPECTED_STATUS[w] == "flagged" for w in here.values()),
            "counted": sum(EXPECTED_STATUS[w] == "counted" for w in here.values()),
            "silent": len(mine) - len(here),
        }, level
    assert sum(r["stations"] for r in rows.values()) == 326
    assert rows["high"]["stations"] == 26 and rows["medium"]["stations"] == 72


def test_the_sample_tallies_are_counted_or_flagged_as_the_desk_decided() -> None:
    desk = example_desk()
    lines = (EXAMPLE / "sample_tallies.jsonl").read_text(encoding="utf-8").splitlines()
    result = desk.submit_many(lines, principal=SYSTEM)
    assert not result.errors
    decided = {r.station: r.status for r in result.receipts}
    props = by_code(map_data(desk, "16.73", principal=COORDINATOR))
    assert {code: props[code]["status"] for code in decided} == {
        code: {"accepted": "counted", "flagged": "flagged"}[s] for code, s in decided.items()
    }
    assert "flagged" in decided.values()


def test_no_free_text_and_no_personal_data_reach_the_map(day: Desk) -> None:
    text = json.dumps(map_data(day, "16.73", principal=COORDINATOR))
    assert SECRET_TEXT not in text and "amplop" not in text
    assert "politik_uang" not in text  # counts only, not even the categories
    for monitor in day.deployment.monitors.values():
        assert monitor.id not in text
    with (EXAMPLE / "monitors.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            assert row["name"] not in text and row["phone"] not in text


# -- scope --------------------------------------------------------------------------------


def test_an_officer_of_one_kecamatan_sees_only_its_tps(day: Desk) -> None:
    officer = Principal(id="officer-2", role=Role.OFFICER, scope="16.73.02")
    data = map_data(day, "16.73.02", principal=officer)
    codes = set(by_code(data))
    expected = {s.code.compact for s in day.deployment.stations_in("16.73.02")}
    assert codes == expected and len(codes) == data["totals"]["stations"]
    assert [f["properties"]["code"] for f in data["outlines"]["features"]] == ["16.73.02"]
    assert sum(r["stations"] for r in data["risk_summary"]) == len(expected)
    assert sum(r["incidents"] for r in data["risk_summary"]) == 2  # 1673021001002's only
    assert data["region_name"] == "Lubuklinggau Timur I"
    for elsewhere in ("16.73.01", "16.73", "16.73.01.1001", "1673011001001"):
        with pytest.raises(PermissionDenied) as e:
            map_data(day, elsewhere, principal=officer)
        assert e.value.code == "access.out_of_scope"


@pytest.mark.parametrize(
    ("role", "scope"), [(Role.VIEWER, "16.73"), (Role.AUDITOR, "16.73"), (Role.VIEWER, "16.73.01")]
)
def test_who_may_not_read_the_status_is_refused_and_it_is_on_record(role: Role, scope: str) -> None:
    desk = day_desk()
    desk.release("16.73", principal=COORDINATOR)  # a release opens the tally, not the map
    who = Principal(id="kantor-walikota", role=role, scope=scope)
    with pytest.raises(PermissionDenied) as e:
        map_data(desk, scope, principal=who)
    assert e.value.code == "access.role"
    auditor = Principal(id="audit-1", role=Role.AUDITOR, scope="16.73")
    denied = [x for x in desk.history(principal=auditor) if x.principal == "kantor-walikota"]
    assert [x.outcome for x in denied][-1] == "denied:access.role"


def test_a_monitor_maps_its_own_tps_only(day: Desk) -> None:
    monitor = Principal(id="LLG-0001", role=Role.MONITOR, scope="1673011001001")
    data = map_data(day, "1673011001001", principal=monitor)
    assert list(by_code(data)) == ["1673011001001"]
    assert data["region"] == "1673011001001"
    assert data["region_name"] == "TPS 001 Kel. Kayu Ara"
    with pytest.raises(PermissionDenied) as e:
        map_data(day, "1673011001002", principal=monitor)
    assert e.value.code == "access.out_of_scope"


def test_an_unknown_region_is_the_desks_error() -> None:
    with pytest.raises(UnknownEntityError) as e:
        map_data(example_desk(), "16.74", principal=SYSTEM)
    assert e.value.code == "region.unknown"


# -- deployments without positions, with outlines, with several contests -------------------


def test_tps_without_a_position_are_counted_not_drawn() -> None:
    desk = Desk.open(small_deployment(), storage="memory://")
    data = map_data(desk, "16.73", principal=COORDINATOR)
    assert data["stations"]["features"] == [] and data["outlines"]["features"] == []
    assert data["totals"]["unplaced"] == data["totals"]["stations"] == 3
    assert data["bounds"] is None
    assert [r["stations"] for r in data["risk_summary"]] == [3, 0, 0]
    assert data["region_name"] is None  # no region names in this deployment


def test_a_partly_placed_deployment() -> None:
    stations = [
        PollingStation(
            code="1673011001001",
            registered_voters=300,
            position=Position(-3.28, 102.84),
            risk=RiskProfile("high", "keamanan;jaringan"),
        ),
        PollingStation(code="1673011001002", registered_voters=300),
        PollingStation(
            code="1673021001001", registered_voters=300, position=Position(-3.29, 102.87)
        ),
    ]
    desk = Desk.open(build_deployment(stations), storage="memory://")
    desk.submit(
        situation(desk, "1673011001002", [Incident("intimidasi", 2, SECRET_TEXT)]),
        principal=SYSTEM,
    )
    data = map_data(desk, "16.73", principal=COORDINATOR)
    assert list(by_code(data)) == ["1673011001001", "1673021001001"]
    assert data["totals"]["unplaced"] == 1 and data["totals"]["reported"] == 1
    assert by_code(data)["1673011001001"]["risk_indicators"] == ["jaringan", "keamanan"]
    low = data["risk_summary"][0]
    assert (low["stations"], low["incidents"], low["stations_with_incidents"]) == (2, 1, 1)
    # one TPS still makes an outline: a small polygon around it
    outlines = data["outlines"]["features"]
    assert [o["properties"]["stations"] for o in outlines] == [1, 1]
    ring = outlines[0]["geometry"]["coordinates"][0]
    assert len(ring) > 4 and inside_convex(ring, (102.84, -3.28))


def test_a_deployment_with_regions_geojson_draws_its_outlines(tmp_path: Path) -> None:
    deployment = tmp_path / "lubuklinggau"
    shutil.copytree(EXAMPLE, deployment)
    square = [[102.80, -3.34], [102.90, -3.34], [102.90, -3.24], [102.80, -3.24], [102.80, -3.34]]
    features = [
        {
            "type": "Feature",
            "properties": {"code": code, **({"name": "Barat Satu"} if code == "16.73.01" else {})},
            "geometry": {"type": "Polygon", "coordinates": [square]},
        }
        for code in ("16.73.01", "16.73.02", "16.73.09")  # 16.73.09 has no TPS
    ]
    (deployment / "regions.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8"
    )
    desk = Desk.open(deployment, storage="memory://")
    data = map_data(desk, "16.73", principal=COORDINATOR)
    outlines = data["outlines"]["features"]
    assert [(o["properties"]["code"], o["properties"]["source"]) for o in outlines] == [
        ("16.73.01", "deployment"),
        ("16.73.02", "deployment"),
    ]
    assert [o["properties"]["name"] for o in outlines] == ["Barat Satu", "Lubuklinggau Timur I"]
    assert outlines[0]["geometry"]["coordinates"] == [square]
    assert data["bounds"] == [[-3.34, 102.80], [-3.24, 102.90]]
    officer = Principal(id="officer-2", role=Role.OFFICER, scope="16.73.02")
    mine = map_data(desk, "16.73.02", principal=officer)["outlines"]["features"]
    assert [o["properties"]["code"] for o in mine] == ["16.73.02"]

    (deployment / "regions.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature"}]}),
        encoding="utf-8",
    )
    with pytest.raises(DeploymentError) as e:
        map_data(desk, "16.73", principal=COORDINATOR)
    assert "regions.geojson [features[0]]" in str(e.value)


def test_the_tally_status_is_that_of_the_contest_asked() -> None:
    base = example_desk().deployment
    governor = Contest(
        id="gubernur", region="16", candidates=[Candidate(1, "A"), Candidate(2, "B")]
    )
    both = attrs.evolve(base, contests={**base.contests, "gubernur": governor})
    desk = Desk.open(both, storage="memory://")
    desk.submit(tally(desk, "1673011001001"), principal=SYSTEM)  # walikota
    with pytest.raises(SipantauError) as e:
        map_data(desk, "16.73", principal=COORDINATOR)
    assert e.value.code == "contest.ambiguous"
    with pytest.raises(UnknownEntityError) as unknown:
        map_data(desk, "16.73", principal=COORDINATOR, contest="bupati")
    assert unknown.value.code == "report.unknown_contest"
    mayor = by_code(map_data(desk, "16.73", principal=COORDINATOR, contest="walikota"))
    gov = by_code(map_data(desk, "16.73", principal=COORDINATOR, contest="gubernur"))
    assert mayor["1673011001001"]["status"] == "counted"
    assert gov["1673011001001"]["status"] == "reported"  # a report is in, not its tally
    # what the map reads: the desk's station status, the tally of the contest asked
    [one] = desk.station_status("1673011001001", principal=COORDINATOR, contest="gubernur")
    [any_contest] = desk.station_status("1673011001001", principal=COORDINATOR)
    assert (one.tally, any_contest.tally) == (None, "accepted")
    with pytest.raises(UnknownEntityError) as nope:
        desk.station_status("16.73", principal=COORDINATOR, contest="bupati")
    assert nope.value.code == "report.unknown_contest"


# -- a province or the nation: read city by city, counted but not drawn past MAP_POINTS --


def _placed_national() -> Any:
    """A small national layout (two provinces, five cities), every TPS placed."""
    from sipantau_core.domain.stations import Position
    from sipantau_core.testing.national import national_deployment

    dep = national_deployment(tps=600, provinces=2, cities=5, villages=60)
    placed = {}
    for i, (code, station) in enumerate(sorted(dep.stations.items())):
        where = Position(latitude=-2.0 - (i % 37) / 100, longitude=102.0 + (i // 37) / 50)
        placed[code] = attrs.evolve(station, position=where)
    return attrs.evolve(dep, stations=placed)


@pytest.mark.parametrize("region", ["ID", "12"])
def test_a_province_or_the_nation_is_read_city_by_city_and_drawn_up_to_map_points(
    region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sipantau_adapters.web import mapdata as mapdata_module
    from sipantau_core.testing.national import national_tallies

    dep = _placed_national()
    system = Principal(id="import", role=Role.SYSTEM)
    desk = Desk.open(dep, storage="memory://")
    try:
        assert not desk.submit_many(list(national_tallies(dep, share=0.6)), principal=system).errors
        read = regions_read(monkeypatch)
        by_city = map_data(desk, region, principal=system)
        cities = sorted({c.village.at_level(RegionLevel.CITY).value for c in dep.stations})
        assert read == [c for c in cities if region == "ID" or c.startswith(region + ".")]
        # the same map as one read of the whole region
        monkeypatch.setattr(mapdata_module, "city_parts", lambda desk, region, who: [region])
        at_once = map_data(desk, region, principal=system)
        assert by_city == at_once
        assert len(by_city["stations"]["features"]) == by_city["totals"]["stations"] > 100
        assert by_city["totals"]["omitted"] == 0
        # past MAP_POINTS: counted, outlined, bounded, not drawn
        monkeypatch.setattr(mapdata_module, "MAP_POINTS", 100)
        monkeypatch.setattr(mapdata_module, "city_parts", real_city_parts)
        counted = map_data(desk, region, principal=system)
        assert counted["stations"]["features"] == []
        assert counted["totals"]["omitted"] == counted["totals"]["stations"]
        assert {k: v for k, v in counted.items() if k != "stations"} == {
            k: v if k != "totals" else {**v, "omitted": v["stations"]}
            for k, v in at_once.items()
            if k != "stations"
        }
    finally:
        desk.close()

"""The synthetic national deployment: its layout, its tallies, and a desk counting them."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from sipantau_core import Principal, Role, check_tally
from sipantau_core.desk import Desk
from sipantau_core.domain import RegionLevel
from sipantau_core.testing import (
    expected_counts,
    national_deployment,
    national_stations,
    national_tallies,
)
from sipantau_core.testing.national import CAPACITY, PROVINCE_CODES, Election

SMALL: dict[str, Any] = {"tps": 5_000, "villages": 1_500}
SYSTEM = Principal(id="import", role=Role.SYSTEM)


def test_the_counts_asked_for_are_exact() -> None:
    stations = national_stations(**SMALL)
    codes = [s.code for s in stations]
    assert len(codes) == len(set(codes)) == 5_000
    assert codes == sorted(codes)
    provinces = Counter(c.village.segments[0] for c in codes)
    assert set(provinces) == set(PROVINCE_CODES) and len(provinces) == 38
    assert len({c.village.at_level(RegionLevel.CITY) for c in codes}) == 514
    assert 0.9 * 1_500 <= len({c.village for c in codes}) <= 1_500
    # uneven like the real country: West, Central and East Java lead
    assert {p for p, _ in provinces.most_common(3)} == {"32", "33", "35"}
    for c in codes:
        district, village = c.village.segments[2:]
        assert 1 <= int(district) <= 99 and 1001 <= int(village) <= 9999 and 1 <= c.number <= 999


@pytest.mark.parametrize("election", ["pilkada", "general"])
def test_dpt_stays_under_the_cap_of_the_election(election: Election) -> None:
    cap = CAPACITY[election]
    dep = national_deployment(**SMALL, election=election, region="33")
    dpt = [s.registered_voters for s in dep.stations.values()]
    assert max(dpt) <= cap and min(dpt) >= 40
    assert 0.7 * cap <= sum(dpt) / len(dpt) <= 0.9 * cap
    assert dep.station_capacity == cap
    assert dep.election_day.year == 2024


def test_the_same_seed_gives_the_same_country() -> None:
    a = national_stations(**SMALL)
    assert a[:500] == national_stations(**SMALL)[:500]
    assert a[:500] != national_stations(**SMALL, seed=7)[:500]
    dep = national_deployment(**SMALL, region="32.01")
    first = list(itertools.islice(national_tallies(dep), 50))
    assert first == list(itertools.islice(national_tallies(dep), 50))
    assert first != list(itertools.islice(national_tallies(dep, seed=7), 50))


def test_a_region_is_its_part_of_the_whole_country() -> None:
    everything = national_stations(**SMALL)
    jabar = national_deployment(**SMALL, region="32")
    assert str(jabar.region) == "32"
    assert list(jabar.stations.values()) == [s for s in everything if s.code.compact[:2] == "32"]
    city = national_deployment(**SMALL, region="32.01")
    assert set(city.stations) == {c for c in jabar.stations if c.compact[:4] == "3201"}
    assert len(jabar.monitors) == len(jabar.stations)
    assert {m.station for m in jabar.monitors.values()} == set(jabar.stations)
    assert all(m.personal is None for m in jabar.monitors.values())
    assert jabar.region_name("32") == "Provinsi 32"
    assert jabar.region_name("32.01") == "Kota/Kabupaten 32.01"
    assert jabar.region_name("32.01.01") == "Kecamatan 32.01.01"
    assert jabar.region_name("32.01.01.1001") == "Desa/Kelurahan 32.01.01.1001"
    (contest,) = jabar.contests.values()
    assert contest.region is None and contest.options == (1, 2, 3)


def test_without_a_region_the_deployment_is_the_country() -> None:
    dep = national_deployment(tps=300, provinces=1, cities=3, villages=30)
    assert str(dep.region) == "ID" and len(dep.stations) == 300
    assert {c.compact[:2] for c in dep.stations} == {PROVINCE_CODES[0]}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"provinces": 39},
        {"provinces": 2, "cities": 1},
        {"tps": 100, "villages": 200},
        {"tps": 1_000, "villages": 100, "cities": 514},
        {"region": "32.01.01"},
    ],
)
def test_impossible_layouts_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        national_stations(**kwargs)


def test_several_provinces_are_one_national_deployment() -> None:
    dep = national_deployment(**SMALL)
    assert str(dep.region) == "ID" and len(dep.stations) == 5_000
    assert list(dep.stations.values()) == national_stations(**SMALL)


def test_tallies_pass_the_rules_but_for_the_misread_ones() -> None:
    dep = national_deployment(**SMALL, region="35")
    (contest,) = dep.contests.values()
    expected = expected_counts(dep, share=0.9, ocr_errors=0.1)
    broken = 0
    reports = list(national_tallies(dep, share=0.9, ocr_errors=0.1))
    for report in reports:
        verdict = check_tally(report, station=dep.station(report.station), contest=contest)
        if not verdict.ok:
            assert {v.code for v in verdict.hard} == {"votes.sum_mismatch"}
            broken += 1
    assert broken == expected["misread"]
    assert len(reports) == expected["stations"] + expected["misread"]
    assert 0.85 * len(dep.stations) <= len(reports) <= 0.95 * len(dep.stations)
    assert 0.05 * len(reports) <= broken <= 0.15 * len(reports)


def test_a_desk_counts_what_is_expected() -> None:
    dep = national_deployment(**SMALL, region="32")
    expected = expected_counts(dep, share=0.8, ocr_errors=0.05)
    evening = datetime(2024, 11, 27, 13, 0, tzinfo=UTC)  # 20:00 WIB
    with Desk.open(dep, storage="memory://", clock=lambda: evening) as desk:
        result = desk.submit_many(
            national_tallies(dep, share=0.8, ocr_errors=0.05), principal=SYSTEM
        )
        assert not result.errors
        assert result.count("accepted") == expected["stations"]
        assert result.count("flagged") == expected["misread"] > 0
        tally = desk.tally("32", principal=SYSTEM)
    assert dict(tally.votes) == {n: expected[f"votes.{n}"] for n in (1, 2, 3)}
    assert (tally.valid, tally.invalid, tally.total) == (
        expected["valid"],
        expected["invalid"],
        expected["total"],
    )
    assert tally.stations_counted == expected["stations"]
    assert tally.stations_expected == len(dep.stations)


@pytest.mark.slow
def test_the_whole_country() -> None:
    stations = national_stations()
    assert len(stations) == 823_236
    codes = {s.code.village for s in stations}
    assert len({c.province for c in codes}) == 38
    assert len({c.at_level(RegionLevel.CITY) for c in codes}) == 514
    assert 82_000 <= len(codes) <= 83_000
    assert max(s.registered_voters for s in stations) <= 600

"""A desk over the whole country: the nation (``ID``) as a region, a deployment of every
province, its counts, progress, releases and staff scopes, on memory and PostgreSQL, through
the HTTP API, the web overview and the command line; and the province and city desks as
before."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pg import pg_url  # noqa: F401 - a fixture
from sipantau_adapters.cli import main as cli
from sipantau_adapters.http.server import create_app, running
from sipantau_adapters.web._err import election_results_report
from sipantau_adapters.web.exports import district_csv, summary
from sipantau_adapters.web.overview import overview
from sipantau_adapters.web.snapshot import overview_from, read_snapshot
from sipantau_core import NATION, Deployment, Desk, Principal, RegionCode, Role, dump_report
from sipantau_core.domain import RegionLevel, StationCode, time_zone_of_province
from sipantau_core.domain.regions import CHILD_DIGITS, TimeZone, dotted
from sipantau_core.errors import PermissionDenied, UnknownEntityError
from sipantau_core.testing import expected_counts, national_deployment, national_tallies
from sipantau_core.testing.national import PROVINCE_CODES, write_deployment
from web_helpers import sign_in

SMALL = {"tps": 3_000, "villages": 900}
SHARE, OCR = 0.8, 0.05
SYSTEM = Principal(id="import", role=Role.SYSTEM)
NATIONAL = Principal(id="koordinator-nasional", role=Role.COORDINATOR, scope="ID")
JABAR = Principal(id="koordinator-jabar", role=Role.COORDINATOR, scope="32")
EVENING = datetime(2024, 11, 27, 13, 0, tzinfo=UTC)  # 20:00 WIB


@pytest.fixture(scope="module")
def country() -> Deployment:
    return national_deployment(**SMALL)


def test_the_nation_is_a_region_that_holds_every_other() -> None:
    assert RegionCode.parse("ID") is NATION and RegionCode.parse(" id ") is NATION
    assert RegionCode("ID") == NATION and str(NATION) == "ID"
    assert NATION.level is RegionLevel.NATION and NATION.is_nation
    assert not RegionCode("16").is_nation
    assert (NATION.segments, NATION.compact, NATION.parent) == ((), "", None)
    assert RegionCode("16").parent is None  # the Kemendagri hierarchy starts at provinces
    assert NATION.contains(RegionCode("16.73.01.1001"))
    assert NATION.contains(StationCode.parse("1673011001001")) and NATION.contains(NATION)
    assert not RegionCode("16").contains(NATION)
    assert NATION.child(16) == RegionCode("16") and NATION.child("32") == RegionCode("32")
    assert RegionCode("16.73.01").at_level(RegionLevel.NATION) is NATION
    assert sorted([RegionCode("11"), NATION, RegionCode("16.73")])[0] is NATION
    assert time_zone_of_province(NATION) is TimeZone.WIB  # the capital's clock
    assert (dotted(""), CHILD_DIGITS[0]) == ("ID", 2)
    with pytest.raises(ValueError, match="not within a province"):
        _ = NATION.province
    for bad in ("IDN", "I", "ID.16", "16.ID"):
        with pytest.raises(ValueError, match="whole country"):
            RegionCode.parse(bad)
    # a staff scope of the whole country, distinct from the system's "no scope"
    assert NATIONAL.scope is NATION and NATIONAL.covers(StationCode.parse("9401011001001"))
    assert not JABAR.covers(NATION)


def test_national_deployment_builds_the_country_and_loads_from_its_directory(
    country: Deployment, tmp_path: Path
) -> None:
    assert country.region is NATION and country.id == "nasional"
    assert len(country.stations) == len(country.monitors) == 3_000
    assert {c.compact[:2] for c in country.stations} == set(PROVINCE_CODES)
    assert country.region_name("ID") == "Indonesia"
    assert sum(1 for _ in country.stations_in("ID")) == 3_000
    jabar = national_deployment(**SMALL, region="32")
    assert list(country.stations_in("32")) == list(jabar.stations_in("32"))
    # the deployment directory that `sipantau serve` reads
    write_deployment(country, tmp_path / "dep")
    assert 'region = "ID"' in (tmp_path / "dep" / "deployment.toml").read_text()
    loaded = Deployment.load(tmp_path / "dep")
    assert loaded.region is NATION
    assert loaded.stations == country.stations and loaded.monitors == country.monitors
    assert dict(loaded.region_names) == dict(country.region_names)
    assert loaded.contests == country.contests
    assert loaded.station_capacity == country.station_capacity
    # a monitor shares its TPS's code object, a village's TPS their village's code
    codes = {code.compact: code for code in loaded.stations}
    assert all(m.station is codes[m.station.compact] for m in loaded.monitors.values())
    busy = max({c.village for c in loaded.stations}, key=lambda v: len(list(loaded.stations_in(v))))
    first, second, *_ = (s.code for s in loaded.stations_in(busy))
    assert first.village is second.village


@pytest.fixture(params=["memory", "postgresql"])
def storage_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def national_desk(country: Deployment, storage_url: str) -> Iterator[Desk]:
    with Desk.open(country, storage=storage_url, clock=lambda: EVENING) as desk:
        result = desk.submit_many(
            national_tallies(country, share=SHARE, ocr_errors=OCR), principal=SYSTEM
        )
        assert not result.errors
        yield desk


def test_a_national_desk_counts_the_country_and_each_province(
    country: Deployment, national_desk: Desk
) -> None:
    desk = national_desk
    expected = expected_counts(country, share=SHARE, ocr_errors=OCR)
    nation = desk.tally("ID", principal=NATIONAL)
    assert nation.region == "ID"
    assert dict(nation.votes) == {n: expected[f"votes.{n}"] for n in (1, 2, 3)}
    assert (nation.valid, nation.invalid, nation.total) == (
        expected["valid"],
        expected["invalid"],
        expected["total"],
    )
    assert nation.stations_counted == expected["stations"]
    assert nation.stations_expected == 3_000
    assert nation.registered_expected == country.registered_voters
    provinces = [desk.tally(p, principal=NATIONAL) for p in PROVINCE_CODES]
    assert sum(t.total for t in provinces) == nation.total
    assert sum(t.stations_expected for t in provinces) == 3_000
    station = next(iter(country.stations))
    own = desk.tally(station.compact, principal=NATIONAL)
    assert (own.stations_expected, own.registered_expected) == (
        1,
        country.stations[station].registered_voters,
    )
    # progress with its projection, at every level from the provinces down
    count = desk.progress("ID", principal=NATIONAL)
    assert count.overall.tps_counted == expected["stations"]
    assert count.overall.tps_expected == 3_000
    assert {c.code for c in count.regions("province")} == set(PROVINCE_CODES)
    assert count.projection is not None
    many = desk.progress_many(["ID", "32", "94"], principal=NATIONAL)
    assert many["ID"].overall.tps_counted == expected["stations"]
    assert many["32"].overall.tps_counted == desk.tally("32", principal=NATIONAL).stations_counted
    # stage reports by province, the flagged tallies and the anomalies of the whole country
    rows = desk.stage_progress("ID", principal=NATIONAL, now=EVENING)
    assert [r.region for r in rows] == sorted(PROVINCE_CODES)
    assert sum(r.stations for r in rows) == 3_000
    assert desk.stage_progress("ID", principal=NATIONAL, level="province") == rows
    assert len(desk.flagged("ID", principal=NATIONAL)) == expected["misread"]
    assert {a.station for a in desk.anomalies("ID", principal=NATIONAL) if a.rule_codes} == {
        s.station for s in desk.flagged("ID", principal=NATIONAL)
    }
    assert len(desk.reports("ID", principal=NATIONAL, kind="tally")) == (
        expected["stations"] + expected["misread"]
    )
    assert desk.audit.verify().ok


def test_staff_scopes_and_releases_on_a_national_desk(national_desk: Desk) -> None:
    desk = national_desk
    jabar = desk.tally("32", principal=JABAR)
    assert jabar.stations_counted > 0
    for region in ("ID", "33"):
        with pytest.raises(PermissionDenied) as denied:
            desk.tally(region, principal=JABAR)
        assert denied.value.code == "access.out_of_scope"
    with pytest.raises(PermissionDenied):
        desk.release("ID", principal=JABAR)
    # a national coordinator releases a province; its governor's office then reads it
    governor = Principal(id="kantor-gubernur", role=Role.VIEWER, scope="32")
    public = Principal(id="publik", role=Role.VIEWER, scope="ID")
    with pytest.raises(PermissionDenied) as denied:
        desk.tally("32", principal=governor)
    assert denied.value.code == "access.not_released"
    desk.release("32", principal=NATIONAL)
    assert desk.tally("32", principal=governor) == jabar
    assert desk.tally("32", principal=public) == jabar  # a viewer of the country, too
    with pytest.raises(PermissionDenied) as denied:
        desk.tally("ID", principal=public)
    assert denied.value.code == "access.not_released"
    desk.release("ID", principal=NATIONAL)
    assert desk.tally("ID", principal=public).total == desk.tally("ID", principal=SYSTEM).total
    # the audit log: a national auditor sees the national entries, a province's only its own
    national_auditor = Principal(id="auditor", role=Role.AUDITOR, scope="ID")
    jabar_auditor = Principal(id="auditor-32", role=Role.AUDITOR, scope="32")
    seen = {e.region for e in desk.history(principal=national_auditor)}
    assert "ID" in seen and "32" in seen
    assert {e.region for e in desk.history(principal=jabar_auditor)} <= {"32"} | {
        r for r in seen if r.startswith("32")
    }
    with pytest.raises(UnknownEntityError) as unknown:
        desk.tally("32.99", principal=NATIONAL)
    assert unknown.value.code == "region.unknown"


def test_the_api_and_the_web_overview_of_a_national_desk(country: Deployment) -> None:
    with Desk.open(country, storage="memory://", clock=lambda: EVENING) as desk:
        desk.submit_many(national_tallies(country, share=0.5, ocr_errors=0), principal=SYSTEM)
        token = desk.issue_token(NATIONAL, principal=SYSTEM)
        with running(create_app(desk)) as url, httpx.Client(base_url=url) as http:
            answer = http.get("/v1/tally/ID", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["region"] == "ID"
            assert body["total"] == desk.tally("ID", principal=SYSTEM).total
            assert body["stations_expected"] == 3_000
            # the web page: signed in, the national coordinator's overview of the country
            with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as browser:
                sign_in(browser, token)
                page = browser.get("/")
                assert page.status_code == 200, page.text
                assert "Indonesia" in page.text and 'value="32"' in page.text
                assert browser.get("/?region=32").status_code == 200
        view = overview(desk, "ID", principal=NATIONAL)
        assert view.region == "ID" and view.region_name == "Indonesia"
        overall, children = view.results.data
        assert overall.tps_counted == desk.tally("ID", principal=SYSTEM).stations_counted
        assert [row.code for row in children] == sorted(PROVINCE_CODES)
        assert sum(row.total for row in children) == overall.total
        assert [row.code for row in view.stages.data] == sorted(PROVINCE_CODES)
        # the exports of the country: a row per province, and NIST's ReportingUnits
        rows = district_csv(desk, "ID", principal=NATIONAL).splitlines()
        assert len(rows) == 1 + 38
        report = election_results_report(desk, "ID", principal=NATIONAL)
        kinds = {u.get("Type") for u in report["GpUnit"]}
        assert {"country", "state"} <= kinds
        assert summary(desk, "ID", principal=NATIONAL).tally.total == overall.total
        # the live overview's snapshot cuts the same panels for the nation and a province
        snapshot = read_snapshot(desk, ["ID", "32"], None)
        for region in ("ID", "32"):
            assert overview_from(desk, snapshot, region) == overview(
                desk, region, principal=NATIONAL
            )


def test_sipantau_desk_lists_a_national_desk_by_province(
    country: Deployment, tmp_path: Path
) -> None:
    root = write_deployment(country, tmp_path / "nasional")
    tallies = list(national_tallies(country, share=0.1, ocr_errors=0))
    (root / "sample_tallies.jsonl").write_text(
        "".join(json.dumps(dump_report(t)) + "\n" for t in tallies), encoding="utf-8"
    )
    out = io.StringIO()
    code = cli(["desk", str(root), "--storage", f"sqlite:///{tmp_path}/desk.db"], out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "Provinsi" in text and "Kecamatan" not in text
    rows = [line for line in text.splitlines() if line.startswith("Provinsi ")]
    assert len(rows) == 1 + 38  # the header, then each province
    assert "Indonesia" in text


def test_province_and_city_desks_read_the_nation_as_their_own_region() -> None:
    """A region above a desk's own counts what the desk holds (as a province above a city
    desk always did); nothing else changes for them."""
    city = national_deployment(**SMALL, region="32.01")
    with Desk.open(city, storage="memory://", clock=lambda: EVENING) as desk:
        desk.submit_many(national_tallies(city, ocr_errors=0), principal=SYSTEM)
        own = desk.tally("32.01", principal=SYSTEM)
        assert desk.tally("32", principal=SYSTEM).total == own.total
        assert desk.tally("ID", principal=SYSTEM).total == own.total
        assert desk.tally("ID", principal=SYSTEM).stations_expected == own.stations_expected
        with pytest.raises(UnknownEntityError):
            desk.tally("33", principal=SYSTEM)
        # its staff: a coordinator of the city cannot read the nation
        with pytest.raises(PermissionDenied):
            desk.tally("ID", principal=Principal(id="c", role=Role.COORDINATOR, scope="32.01"))


def test_the_nations_progress_is_never_stale(country: Deployment, pg_url: str) -> None:  # noqa: F811
    """The nation has no counter of changes of its own: a desk keeps the nation's progress
    count under the sum of its provinces' counters, so another desk's tally shows."""
    tallies = list(national_tallies(country, share=0.4, ocr_errors=0))
    first, later = tallies[: len(tallies) // 2], tallies[len(tallies) // 2 :]
    a = Desk.open(country, storage=pg_url, clock=lambda: EVENING)
    b = Desk.open(country, storage=pg_url, clock=lambda: EVENING)
    try:
        b.submit_many(first, principal=SYSTEM)
        before = a.progress(NATION, principal=SYSTEM)
        assert before.overall.tps_counted == len(first)
        b.submit_many(later, principal=SYSTEM)
        after = a.progress(NATION, principal=SYSTEM)
        assert after.overall.tps_counted == len(tallies)
        assert a.progress_many([NATION, "32"], principal=SYSTEM)["ID"].overall.tps_counted == len(
            tallies
        )
    finally:
        a.close()
        b.close()


def test_the_provinces_of_a_deployment(country: Deployment) -> None:
    assert [p.value for p in country.provinces()] == sorted(PROVINCE_CODES)
    jabar = national_deployment(**SMALL, region="32.01")
    assert [p.value for p in jabar.provinces()] == ["32"]

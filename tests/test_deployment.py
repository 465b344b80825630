"""The reference deployment examples/lubuklinggau and the errors of Deployment.load."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from uuid import UUID

import pytest

from sipantau_core import (
    Deployment,
    DeploymentError,
    Position,
    RegionCode,
    TallyReport,
    check_tally,
    parse_report,
)
from sipantau_core.rules import reserve_ballots

EXAMPLE = Path(__file__).parents[1] / "examples" / "lubuklinggau"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEPLOYMENT_FILES = ("deployment.toml", "stations.csv", "monitors.csv")
GENERATED_FILES = (*DEPLOYMENT_FILES, "sample_tallies.jsonl", "sample_tallies.expected.json")
WIB = timezone(timedelta(hours=7))


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return Deployment.load(EXAMPLE)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def sample_reports() -> list[TallyReport]:
    lines = (EXAMPLE / "sample_tallies.jsonl").read_text(encoding="utf-8").splitlines()
    reports = [parse_report(line) for line in lines]
    assert all(isinstance(r, TallyReport) for r in reports)
    return reports  # type: ignore[return-value]


# -- the reference deployment ----------------------------------------------------------------


def test_stations_and_districts(deployment: Deployment) -> None:
    assert deployment.id == "lubuklinggau"
    assert deployment.region == RegionCode("16.73")
    assert deployment.election_day == date(2024, 11, 27)
    assert deployment.station_capacity == 600
    assert len(deployment.stations) == 326
    assert deployment.districts() == [RegionCode(f"16.73.{d:02d}") for d in range(1, 9)]
    for district in deployment.districts():
        assert deployment.region_name(district).startswith("Lubuklinggau ")
        assert any(True for _ in deployment.stations_in(district))


def test_registered_voters(deployment: Deployment) -> None:
    assert 167_000 <= deployment.registered_voters <= 170_000
    assert all(0 < s.registered_voters <= 600 for s in deployment.stations.values())


def test_every_village_is_named(deployment: Deployment) -> None:
    for code in deployment.stations:
        assert deployment.region_name(code.village) != code.village.value
        assert deployment.station(code).name.startswith(f"TPS {code.number:03d} Kel. ")


def test_stations_lie_around_lubuklinggau(deployment: Deployment) -> None:
    centre = Position(-3.29, 102.86)
    positions = [s.position for s in deployment.stations.values()]
    assert all(p is not None and p.distance_m(centre) < 8_000 for p in positions)


def test_risk_profile(deployment: Deployment) -> None:
    levels = Counter(s.risk.level.value for s in deployment.stations.values())
    assert set(levels) == {"low", "medium", "high"}
    assert levels["low"] > levels["medium"] > levels["high"] > 0
    allowed = {"keamanan", "aksesibilitas", "kejadian_lalu", "logistik", "jaringan"}
    for station in deployment.stations.values():
        assert station.risk.indicators <= allowed
        assert bool(station.risk.indicators) == (station.risk.level.value != "low")


def test_contest(deployment: Deployment) -> None:
    contest = deployment.contests["walikota"]
    assert contest.kind is not None
    assert contest.kind.value == "mayor"
    assert contest.region == RegionCode("16.73")
    assert [c.number for c in contest.candidates] == [1, 2]
    assert [c.name for c in contest.candidates] == ["Paslon 1", "Paslon 2"]


def test_monitors(deployment: Deployment) -> None:
    monitors = deployment.monitors
    assert len(monitors) == 326
    assert sorted(monitors) == [f"LLG-{i:04d}" for i in range(1, 327)]
    stations = [m.station for m in monitors.values()]
    assert all(s in deployment.stations for s in stations)
    assert len(set(stations)) == 326  # one monitor per TPS
    assert all(m.personal is not None for m in monitors.values())


def test_monitors_personal_data_is_plausible_and_unique() -> None:
    rows = read_csv(EXAMPLE / "monitors.csv")
    for key in ("name", "phone", "national_id"):
        assert len({r[key] for r in rows}) == len(rows), key
    for r in rows:
        assert re.fullmatch(r"08\d{8,11}", r["phone"]), r["id"]
        nik = r["national_id"]
        assert re.fullmatch(r"1673\d{12}", nik), r["id"]
        assert nik[4:6] == r["station"][4:6]  # the district of the monitor's TPS
        day = int(nik[6:8])
        day = day - 40 if day > 40 else day  # women: day + 40
        born = date(2000 + int(nik[10:12]) if int(nik[10:12]) < 25 else 1900 + int(nik[10:12]),
                    int(nik[8:10]), day)  # fmt: skip
        assert date(1950, 1, 1) < born < date(2007, 11, 27)


# -- the sample tallies ----------------------------------------------------------------------


def test_sample_tallies_get_exactly_the_expected_codes(deployment: Deployment) -> None:
    expected: dict[str, list[str]] = json.loads(
        (EXAMPLE / "sample_tallies.expected.json").read_text(encoding="utf-8")
    )
    reports = sample_reports()
    assert 35 <= len(reports) <= 45
    assert [str(r.report_id) for r in reports] == list(expected)
    got = {}
    for r in reports:
        verdict = check_tally(
            r,
            station=deployment.station(r.station),
            contest=deployment.contests[r.contest],
            settings=deployment.tally_settings,
        )
        got[str(r.report_id)] = sorted(verdict.codes)
    assert got == expected
    flagged = [codes for codes in expected.values() if codes]
    assert 6 <= len(flagged) <= 10
    assert {"votes.unanimous", "voters.dpt_mismatch", "total.over_capacity"} <= {
        c for codes in flagged for c in codes
    }


def test_sample_tallies_come_from_the_station_monitors(deployment: Deployment) -> None:
    reports = sample_reports()
    assert len({r.report_id for r in reports}) == len(reports)
    start = datetime(2024, 11, 27, 13, 30, tzinfo=WIB)
    end = datetime(2024, 11, 27, 16, 0, tzinfo=WIB)
    for r in reports:
        assert UUID(str(r.report_id)).version == 5
        assert deployment.monitors[r.monitor].station == r.station
        assert start <= r.observed_at <= end
        assert r.observed_at.utcoffset() == timedelta(hours=7)
        assert r.observed_at.timetz().replace(tzinfo=None) >= time(13, 30)


def test_consistent_sample_tallies_received_dpt_plus_reserve(deployment: Deployment) -> None:
    expected = json.loads((EXAMPLE / "sample_tallies.expected.json").read_text(encoding="utf-8"))
    for r in sample_reports():
        if expected[str(r.report_id)] or r.ballots is None:
            continue
        dpt = deployment.station(r.station).registered_voters
        assert r.ballots.received == dpt + reserve_ballots(dpt, 0.025)


# -- regenerating ----------------------------------------------------------------------------


@pytest.mark.skipif(
    not (SHARED_DATA / "lubuklinggau_pilpres2019_kawalpemilu.csv").is_file(),
    reason=f"the shared source data ({SHARED_DATA}) is not available",
)
def test_generate_reproduces_the_committed_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(EXAMPLE / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(GENERATED_FILES)
    for name in GENERATED_FILES:
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes(), name


# -- loader errors on broken copies ----------------------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "desk"
    root.mkdir()
    for name in DEPLOYMENT_FILES:
        shutil.copyfile(EXAMPLE / name, root / name)
    return root


def edit_cell(path: Path, line: int, column: str, value: str) -> str:
    """Set ``column`` on (1-based, header = 1) ``line`` of a CSV file; return the old value."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    index = rows[0].index(column)
    old = rows[line - 1][index]
    rows[line - 1][index] = value
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return old


def edit_text(path: Path, edit: Callable[[list[str]], None]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def visible_texts(err: DeploymentError) -> list[str]:
    """What an error shows, without the file path (a tmp path might contain anything)."""
    return [t.replace(err.file, "<file>") for t in (str(err), err.message, err.message_id)]


def load_error(root: Path) -> DeploymentError:
    with pytest.raises(DeploymentError) as info:
        Deployment.load(root)
    return info.value


def test_broken_copy_is_first_a_good_copy(copy: Path) -> None:
    assert len(Deployment.load(copy).stations) == 326


@pytest.mark.parametrize("bad", ["16730110010X1", "1673011001", "16.73.01 TPS 1"])
def test_bad_station_code(copy: Path, bad: str) -> None:
    edit_cell(copy / "stations.csv", 17, "code", bad)
    err = load_error(copy)
    assert Path(err.file).name == "stations.csv"
    assert (err.line, err.field) == (17, "code")


def test_duplicate_station_code(copy: Path) -> None:
    first = edit_cell(copy / "stations.csv", 2, "code", "1673011001001")
    edit_cell(copy / "stations.csv", 30, "code", first)
    err = load_error(copy)
    assert Path(err.file).name == "stations.csv"
    assert (err.line, err.field) == (30, "code")


@pytest.mark.parametrize("bad", ["lima ratus", "", "-5", "512.0", "5 12"])
def test_dpt_not_a_number(copy: Path, bad: str) -> None:
    edit_cell(copy / "stations.csv", 45, "registered_voters", bad)
    err = load_error(copy)
    assert Path(err.file).name == "stations.csv"
    assert (err.line, err.field) == (45, "registered_voters")


def test_dpt_over_capacity(copy: Path) -> None:
    edit_cell(copy / "stations.csv", 101, "registered_voters", "601")
    err = load_error(copy)
    assert Path(err.file).name == "stations.csv"
    assert (err.line, err.field) == (101, "registered_voters")
    assert "600" in err.message


def test_monitor_on_unknown_station(copy: Path) -> None:
    edit_cell(copy / "monitors.csv", 40, "station", "1673011001999")
    err = load_error(copy)
    assert Path(err.file).name == "monitors.csv"
    assert (err.line, err.field) == (40, "station")


@pytest.mark.parametrize("bad", ["0712x45678", "08123", "62-12-3456-7890"])
def test_bad_phone_names_the_place_not_the_value(copy: Path, bad: str) -> None:
    path = copy / "monitors.csv"
    edit_cell(path, 100, "phone", bad)
    row = read_csv(path)[98]
    err = load_error(copy)
    assert Path(err.file).name == "monitors.csv"
    assert (err.line, err.field) == (100, "phone")
    for text in visible_texts(err):
        assert bad not in text
        assert row["name"] not in text
        assert row["national_id"] not in text


@pytest.mark.parametrize("bad", ["167301280480003", "16730128048000351", "1673O12804800035"])
def test_bad_nik_names_the_place_not_the_value(copy: Path, bad: str) -> None:
    path = copy / "monitors.csv"
    edit_cell(path, 200, "national_id", bad)
    row = read_csv(path)[198]
    err = load_error(copy)
    assert Path(err.file).name == "monitors.csv"
    assert (err.line, err.field) == (200, "national_id")
    for text in visible_texts(err):
        assert bad not in text
        assert row["name"] not in text
        assert row["phone"] not in text


@pytest.mark.parametrize("name", DEPLOYMENT_FILES)
def test_missing_file(copy: Path, name: str) -> None:
    (copy / name).unlink()
    err = load_error(copy)
    assert Path(err.file).name == name
    assert err.line is None
    assert err.code == "deployment.missing_file"


def _break_toml(copy: Path) -> int:
    """Make the ``station_capacity`` line invalid TOML; return its line number."""
    found: list[int] = []

    def edit(lines: list[str]) -> None:
        i = next(i for i, line in enumerate(lines) if line.startswith("station_capacity"))
        lines[i] = "station_capacity = enam ratus"
        found.append(i + 1)

    edit_text(copy / "deployment.toml", edit)
    return found[0]


def test_invalid_toml(copy: Path) -> None:
    _break_toml(copy)
    err = load_error(copy)
    assert Path(err.file).name == "deployment.toml"
    assert "not valid TOML" in err.message


def test_invalid_toml_names_the_line(copy: Path) -> None:
    line = _break_toml(copy)
    err = load_error(copy)
    assert err.line == line


def test_missing_desk_table(copy: Path) -> None:
    edit_text(copy / "deployment.toml", lambda lines: lines.remove("[desk]"))
    err = load_error(copy)
    assert Path(err.file).name == "deployment.toml"
    assert err.field == "desk"
    assert err.line is None


def test_station_outside_the_region(copy: Path) -> None:
    outside = "1671011001001"  # Kota Palembang
    old = edit_cell(copy / "stations.csv", 12, "code", outside)
    assert edit_cell(copy / "monitors.csv", 12, "station", outside) == old
    err = load_error(copy)
    assert Path(err.file).name == "stations.csv"
    assert (err.line, err.field) == (12, "code")


def test_dpt_with_a_non_ascii_digit(copy: Path) -> None:
    edit_cell(copy / "stations.csv", 8, "registered_voters", "5²")
    err = load_error(copy)
    assert (err.line, err.field) == (8, "registered_voters")


def test_a_person_cannot_monitor_twice(copy: Path) -> None:
    lines = (copy / "monitors.csv").read_text(encoding="utf-8").splitlines()
    first = lines[1].split(",")
    second = lines[2].split(",")
    second[4] = first[4]  # the same NIK
    lines[2] = ",".join(second)
    (copy / "monitors.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = load_error(copy)
    assert (err.line, err.field, err.code) == (3, "national_id", "deployment.duplicate_person")
    assert first[4] not in str(err)

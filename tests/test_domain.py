"""The domain values: region and TPS codes, stations, contests, monitors, schedule."""

from __future__ import annotations

import logging
import pickle
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipantau_core import (
    EMPTY_BOX,
    Candidate,
    Contest,
    ContestKind,
    Incident,
    IncidentCatalogue,
    IncidentCategory,
    Monitor,
    PersonalData,
    PollingStation,
    Position,
    RegionCode,
    RegionLevel,
    RiskLevel,
    RiskProfile,
    Schedule,
    Sensitive,
    Stage,
    StationCode,
    TallyReport,
    TimeZone,
)
from sipantau_core.testing import monitors, region_codes, station_codes

# -- region codes ---------------------------------------------------------------------------


def test_region_levels_and_navigation() -> None:
    village = RegionCode("16.73.01.1001")
    assert village.level is RegionLevel.VILLAGE
    assert village.parent == RegionCode("16.73.01")
    assert [str(r) for r in village.ancestors()] == ["16.73.01", "16.73", "16"]
    assert RegionCode("16").parent is None
    assert RegionCode("16.73").child(1) == RegionCode("16.73.01")
    assert RegionCode("16.73.01").child(1001) == village
    assert village.at_level(RegionLevel.CITY) == RegionCode("16.73")
    assert RegionCode("16.73").contains(village)
    assert not RegionCode("16.73.02").contains(village)
    assert RegionCode.parse("1673011001") == village
    assert village.compact == "1673011001"


@pytest.mark.parametrize("bad", ["", "1", "16.7", "16.73.1", "16.73.01.101", "16-73", "ab"])
def test_bad_region_codes_say_what_is_expected(bad: str) -> None:
    with pytest.raises(ValueError, match="region code"):
        RegionCode.parse(bad)


def test_station_code_both_ways() -> None:
    code = StationCode.parse("1673011001001")
    assert code.village == RegionCode("16.73.01.1001")
    assert code.number == 1
    assert code.compact == "1673011001001"
    assert code.label == "16.73.01.1001 TPS 001"
    assert StationCode.parse("16.73.01.1001 TPS 003") == StationCode("16.73.01.1001", 3)
    assert StationCode.parse("16.73.01.1001/3").compact == "1673011001003"
    assert code.district == RegionCode("16.73.01")


@pytest.mark.parametrize("bad", ["167301100100", "1673011001000", "16.73.01 TPS 1", "x" * 13])
def test_bad_station_codes(bad: str) -> None:
    with pytest.raises(ValueError, match="station code"):
        StationCode.parse(bad)


@given(station_codes())
def test_station_code_round_trips(code: StationCode) -> None:
    assert StationCode.parse(code.compact) == code
    assert StationCode.parse(code.label) == code
    assert RegionCode.parse(code.village.compact) == code.village


@given(region_codes(within="16.73"))
def test_generated_regions_lie_within(code: RegionCode) -> None:
    assert RegionCode("16.73").contains(code)
    assert code != RegionCode("16.73")


@pytest.mark.parametrize(
    ("province", "zone", "hours"),
    [
        ("16", TimeZone.WIB, 7),
        ("31", TimeZone.WIB, 7),
        ("51", TimeZone.WITA, 8),
        ("73", TimeZone.WITA, 8),
        ("81", TimeZone.WIT, 9),
        ("94", TimeZone.WIT, 9),
    ],
)
def test_time_zone_from_province(province: str, zone: TimeZone, hours: int) -> None:
    station = PollingStation(code=f"{province}01011001001", registered_voters=300)
    assert station.time_zone is zone
    assert zone.tzinfo.utcoffset(None) == timedelta(hours=hours)


# -- stations -------------------------------------------------------------------------------


def test_station_with_capacity_and_risk() -> None:
    station = PollingStation(
        code="1673011001001",
        registered_voters=520,
        position=Position(-3.29, 102.86),
        risk=RiskProfile("high", "keamanan;jaringan"),
        capacity=600,
    )
    assert station.risk.is_high
    assert station.risk.indicators == {"keamanan", "jaringan"}
    assert station.risk.level is RiskLevel.HIGH
    with pytest.raises(ValueError, match="capacity 300"):
        PollingStation(code="1673011001001", registered_voters=520, capacity=300)
    with pytest.raises(ValueError, match="registered_voters"):
        PollingStation(code="1673011001001", registered_voters=-1)


def test_position_distance() -> None:
    a, b = Position(-3.29, 102.86), Position(-3.30, 102.86)
    assert 1100 < a.distance_m(b) < 1125


# -- contests -------------------------------------------------------------------------------


def test_contest_options_and_empty_box() -> None:
    race = Contest(id="walikota", candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2")])
    assert race.options == (1, 2)
    single = Contest(
        id="bupati", kind="regent", candidates=[Candidate(1, "Paslon 1")], empty_box=True
    )
    assert single.options == (1, EMPTY_BOX)
    assert single.kind is ContestKind.REGENT
    assert single.label(EMPTY_BOX) == "Kotak kosong"
    with pytest.raises(ValueError, match="empty box"):
        Contest(id="x", candidates=race.candidates, empty_box=True)
    with pytest.raises(ValueError, match="ballot numbers"):
        Contest(id="x", candidates=[Candidate(2, "Paslon 2")])


# -- monitors and personal data -------------------------------------------------------------

NIK = "1673014508990001"
PHONE = "081234567890"


def make_monitor() -> Monitor:
    return Monitor(
        id="LLG-0001",
        station="1673011001001",
        personal=PersonalData(name="Siti Rahmawati", phone="+62 812-3456-7890", national_id=NIK),
    )


def test_personal_data_never_shows_itself(caplog: pytest.LogCaptureFixture) -> None:
    monitor = make_monitor()
    assert monitor.personal is not None
    shown = [
        repr(monitor),
        str(monitor),
        f"{monitor}",
        repr(monitor.personal),
        f"{monitor.personal.phone}",
        str(monitor.personal.national_id),
        "%s" % monitor,
    ]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").debug("monitor %s %r", monitor, monitor.personal)
    shown.append(caplog.text)
    try:
        raise ValueError(f"bad monitor {monitor!r} {monitor.personal.name}")
    except ValueError as e:
        shown.append(str(e))
    for text in shown:
        assert NIK not in text
        assert "3456" not in text
        assert "Rahmawati" not in text
    assert monitor.personal.phone.reveal() == PHONE
    assert monitor.personal.national_id.reveal() == NIK
    assert pickle.loads(pickle.dumps(monitor)) == monitor


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("phone", {"phone": "12345"}),
        ("national_id", {"national_id": "1673"}),
        ("name", {"name": "  "}),
    ],
)
def test_bad_personal_data_errors_hide_the_value(field: str, kwargs: dict[str, str]) -> None:
    values = {"name": "Siti", "phone": PHONE, "national_id": NIK, **kwargs}
    with pytest.raises(ValueError) as info:
        PersonalData(**values)
    assert str(info.value).startswith(field)
    bad = kwargs[field].strip()
    if bad:
        assert bad not in str(info.value)


def test_sensitive_equality_and_immutability() -> None:
    assert Sensitive("a") == Sensitive("a")
    assert Sensitive("a") != Sensitive("b")
    with pytest.raises(AttributeError):
        Sensitive("a")._value = "b"  # type: ignore[misc]


@given(monitors())
def test_generated_monitors_hide_their_data(monitor: Monitor) -> None:
    assert monitor.personal is not None
    assert monitor.personal.national_id.reveal() not in repr(monitor)


# -- reports ---------------------------------------------------------------------------------


def test_reports_need_aware_times() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        TallyReport(
            report_id=uuid.uuid4(),
            monitor="LLG-0001",
            station="1673011001001",
            contest="walikota",
            observed_at=datetime(2024, 11, 27, 14, 0),
            votes={1: 1},
            valid=1,
            invalid=0,
            total=1,
        )


def test_incident_catalogue_is_extensible() -> None:
    catalogue = IncidentCatalogue()
    assert "politik_uang" in catalogue
    catalogue.add(IncidentCategory("banjir_rob", "Banjir rob", "Tidal flood", 3))
    assert catalogue["banjir_rob"].label_en == "Tidal flood"
    with pytest.raises(ValueError, match="already defined"):
        catalogue.add(IncidentCategory("banjir_rob", "Banjir", "Flood", 2))
    with pytest.raises(ValueError):
        Incident(category="Politik Uang", severity=2)
    with pytest.raises(ValueError):
        Incident(category="politik_uang", severity=5)


def test_default_schedule_in_the_stations_own_time() -> None:
    schedule = Schedule.default()
    day = date(2024, 11, 27)
    assert [w.stage for w in schedule.windows] == list(Stage)
    wib = schedule.deadline(Stage.OPENING, day, TimeZone.WIB)
    wit = schedule.deadline(Stage.OPENING, day, TimeZone.WIT)
    assert wib.time() == wit.time() == time(7, 30)
    assert wib - wit == timedelta(hours=2)
    assert wib.astimezone(UTC).hour == 0
    shifted = schedule.shifted(timedelta(minutes=-30))
    assert shifted.window(Stage.OPENING).deadline == time(7, 0)


@given(st.sampled_from(list(Stage)))
def test_each_stage_has_a_window(stage: Stage) -> None:
    window = Schedule.default().window(stage)
    assert window.starts <= window.deadline

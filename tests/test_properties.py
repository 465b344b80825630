"""Property tests of the tally rules and the wire format, through the shipped strategies."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipantau_core import (
    PayloadError,
    SituationReport,
    TallyReport,
    TallySettings,
    check_tally,
    dump_report,
    parse_report,
)
from sipantau_core.rules import BUILTIN_RULES, HARD
from sipantau_core.testing import (
    BREAKABLE_RULES,
    broken_tally_reports,
    contests,
    polling_stations,
    situation_reports,
    tally_reports,
)

HARD_CODES = {c for r in BUILTIN_RULES for c in r.codes} - {
    "ballots.reserve_unexpected",
    "turnout.outside_band",
    "votes.unanimous",
    "position.far_from_station",
}


@st.composite
def station_contest_report(draw: st.DrawFn, **kwargs: object) -> tuple:
    station = draw(polling_stations())
    contest = draw(contests())
    report = draw(tally_reports(station=station, contest=contest, **kwargs))  # type: ignore[arg-type]
    return station, contest, report


@given(station_contest_report())
def test_a_valid_report_has_no_hard_violation(case: tuple) -> None:
    station, contest, report = case
    verdict = check_tally(report, station=station, contest=contest)
    assert verdict.ok, verdict.hard
    assert not verdict.hard


@given(station_contest_report(clean=True, sections="all"))
def test_a_clean_report_has_no_violation_at_all(case: tuple) -> None:
    station, contest, report = case
    assert check_tally(report, station=station, contest=contest).violations == ()


@pytest.mark.parametrize("rule", BREAKABLE_RULES)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_broken_report_carries_exactly_its_code(rule: str, data: st.DataObject) -> None:
    positioned = True if rule == "position.far_from_station" else None
    station = data.draw(polling_stations(min_voters=150, with_position=positioned))
    contest = data.draw(contests())
    report = data.draw(broken_tally_reports(rule=rule, station=station, contest=contest))
    verdict = check_tally(report, station=station, contest=contest)
    assert rule in verdict.codes
    hard = {v.code for v in verdict.hard}
    if rule in HARD_CODES:
        assert hard == {rule}
        assert all(v.severity == HARD for v in verdict if v.code == rule)
    else:
        assert hard == set()


def test_every_builtin_code_can_be_broken() -> None:
    assert set(BREAKABLE_RULES) == {c for r in BUILTIN_RULES for c in r.codes}
    assert len(BREAKABLE_RULES) == 17


@given(st.one_of(st.from_type(TallyReport), st.from_type(SituationReport), situation_reports()))
def test_parse_dump_round_trip(report: TallyReport | SituationReport) -> None:
    dumped = dump_report(report)
    assert parse_report(dumped) == report
    assert parse_report(json.dumps(dumped)) == report
    assert parse_report(json.dumps(dumped).encode()) == report


@given(broken_tally_reports(rule="votes.sum_mismatch"))
def test_broken_reports_round_trip_too(report: TallyReport) -> None:
    assert parse_report(dump_report(report)) == report


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(st.one_of(st.binary(), st.text(), json_values))
def test_junk_gives_only_payload_error(junk: object) -> None:
    try:
        parse_report(junk)  # type: ignore[arg-type]
    except PayloadError as e:
        assert e.problems
        assert all(p.path.startswith("$") for p in e.problems)


@st.composite
def mutated_payloads(draw: st.DrawFn) -> dict:
    """A valid tally payload with one field replaced by junk, removed, or a new key."""
    payload = dump_report(draw(tally_reports()))
    key = draw(st.sampled_from(sorted(payload)))
    action = draw(st.sampled_from(["replace", "remove", "add", "nested"]))
    if action == "replace":
        payload[key] = draw(json_values)
    elif action == "remove":
        del payload[key]
    elif action == "add":
        payload[draw(st.text(min_size=1))] = draw(json_values)
    elif isinstance(payload[key], dict) and payload[key]:
        inner = draw(st.sampled_from(sorted(payload[key])))
        payload[key][inner] = draw(json_values)
    return payload


@given(mutated_payloads())
def test_mutated_payloads_give_only_payload_error(payload: dict) -> None:
    try:
        report = parse_report(payload)
    except PayloadError as e:
        assert e.problems
    else:
        assert isinstance(report, TallyReport)


@given(station_contest_report(), st.floats(0, 1), st.floats(0, 1))
def test_settings_only_move_soft_rules(case: tuple, a: float, b: float) -> None:
    station, contest, report = case
    band = TallySettings(turnout_band=(min(a, b), max(a, b)))
    assert check_tally(report, station=station, contest=contest, settings=band).ok

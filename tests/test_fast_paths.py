"""The hot path's shortcuts equal the plain code they stand for.

The bulk path writes canonical bytes with a compiled encoder, asks one screen whether any
built-in rule would fire before running them, and writes audit leaves without
``json.dumps``. Each is held here to the plain form, on reports drawn at random with small
numbers (so that the equalities the rules test for hold or fail often) and on the
strategies' valid and broken reports.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sipantau_core import (
    Ballots,
    Candidate,
    Contest,
    Disability,
    PollingStation,
    Position,
    TallyReport,
    VoterCounts,
)
from sipantau_core.audit import _canonical, chain, verify_chain
from sipantau_core.domain import Amends, Report
from sipantau_core.ports import AuditRecord
from sipantau_core.rules import (
    BUILTIN_RULES,
    FunctionRule,
    RuleContext,
    RuleRegistry,
    TallySettings,
    Violation,
    _builtins_pass,
)
from sipantau_core.testing.strategies import (
    BREAKABLE_RULES,
    broken_tally_reports,
    contests,
    polling_stations,
    situation_reports,
    tally_reports,
)
from sipantau_core.wire import canonical_bytes, dump_report

STATION = "3171011001001"
SMALL = st.integers(0, 12)


def plain_canonical(report: Report) -> bytes:
    return json.dumps(
        dump_report(report), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


@st.composite
def anything_tallies(draw: st.DrawFn) -> tuple[TallyReport, RuleContext]:
    """A tally with every section optional and every count small, a station, a contest
    and settings: equalities and inequalities between fields both come up often."""
    pairs = draw(st.integers(1, 4))
    contest = Contest(
        id="c",
        candidates=[Candidate(n, f"P{n}") for n in range(1, pairs + 1)],
        empty_box=pairs == 1 and draw(st.booleans()),
    )
    keys = draw(st.sets(st.integers(0, 12), min_size=1, max_size=4))
    if draw(st.booleans()):
        keys = set(contest.options)
    votes = {n: draw(SMALL) for n in keys}

    def maybe_voter_counts() -> VoterCounts | None:
        if not draw(st.booleans()):
            return None
        return VoterCounts(draw(SMALL), draw(SMALL), draw(SMALL), draw(st.none() | SMALL))

    here = Position(-3.3, 102.86)
    position = draw(
        st.none()
        | st.just(here)
        | st.builds(Position, st.floats(-3.4, -3.2), st.floats(102.7, 103.0))
    )
    report = TallyReport(
        report_id=uuid.uuid4(),
        monitor="M-1",
        station=STATION,
        contest="c",
        observed_at=datetime(2024, 11, 27, 14, tzinfo=timezone(timedelta(hours=7))),
        votes=votes,
        valid=draw(st.sampled_from([sum(votes.values()), draw(SMALL)])),
        invalid=draw(SMALL),
        total=draw(SMALL) if draw(st.booleans()) else draw(SMALL) + sum(votes.values()),
        voters=maybe_voter_counts(),
        voted=maybe_voter_counts(),
        disability=draw(st.none() | st.builds(Disability, SMALL, SMALL)),
        ballots=draw(st.none() | st.builds(Ballots, SMALL, SMALL, SMALL, SMALL)),
        position=position,
    )
    station = PollingStation(
        code=STATION,
        registered_voters=draw(SMALL),
        position=draw(st.none() | st.just(here)),
    )
    band = sorted((draw(st.sampled_from([0.0, 0.3, 0.5, 1.0])), draw(st.sampled_from([0.5, 1.0]))))
    tally_settings = TallySettings(
        turnout_band=band,
        reserve_rate=draw(st.sampled_from([0.0, 0.025, 0.1])),
        unanimous_min_voters=draw(st.integers(0, 6)),
        max_distance_m=draw(st.sampled_from([0.0, 1000.0, 20_000.0])),
    )
    return report, RuleContext(station, contest, tally_settings)


def plain_tally(votes: dict[int, int], invalid: int = 0, **kw: Any) -> TallyReport:
    """A tally of contest ``c`` at STATION whose sums add up."""
    valid = sum(votes.values())
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor="M-1",
        station=STATION,
        contest="c",
        observed_at=datetime(2024, 11, 27, 14, tzinfo=UTC),
        votes=votes,
        valid=valid,
        invalid=invalid,
        total=valid + invalid,
        **kw,
    )


def builtins_say(report: TallyReport, ctx: RuleContext) -> list[Violation]:
    found: list[Violation] = []
    for rule in BUILTIN_RULES:
        if all(getattr(report, section) is not None for section in rule.needs):
            found.extend(rule.check(report, ctx))
    return found


# -- the rules' screen ----------------------------------------------------------------------


@settings(max_examples=1500)
@given(anything_tallies())
def test_the_screen_passes_exactly_the_tallies_no_builtin_rule_flags(
    case: tuple[TallyReport, RuleContext],
) -> None:
    report, ctx = case
    passes = _builtins_pass(report, ctx)
    event("the screen passes" if passes else "the screen sends to the rules")
    assert passes == (not builtins_say(report, ctx))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_screen_agrees_on_the_strategies_reports(data: st.DataObject) -> None:
    rule = data.draw(st.sampled_from([None, *sorted(BREAKABLE_RULES)]))
    station = data.draw(polling_stations(min_voters=150, with_position=True))
    contest = data.draw(contests())
    tally_settings = TallySettings()
    if rule is None:
        report = data.draw(tally_reports(station=station, contest=contest))
    else:
        report = data.draw(broken_tally_reports(rule=rule, station=station, contest=contest))
    ctx = RuleContext(station, contest, tally_settings)
    assert _builtins_pass(report, ctx) == (not builtins_say(report, ctx))
    assert _builtins_pass(report, ctx) == (rule is None and not builtins_say(report, ctx))


def test_a_registry_with_the_screen_runs_its_other_rules_in_order() -> None:
    calls: list[str] = []

    def mine(report: TallyReport, ctx: RuleContext) -> list[Violation]:
        calls.append("mine")
        return [Violation("mine.always", "soft", (), "selalu", "always")]

    registry = RuleRegistry([*BUILTIN_RULES, FunctionRule(("mine.always",), (), mine)])
    contest = Contest(id="c", candidates=[Candidate(1, "a"), Candidate(2, "b")])
    station = PollingStation(code=STATION, registered_voters=200)
    clean = plain_tally({1: 80, 2: 70}, invalid=2)
    assert [v.code for v in registry.check(clean, station=station, contest=contest)] == [
        "mine.always"
    ]
    broken = attrs.evolve(clean, valid=151)
    codes = [v.code for v in registry.check(broken, station=station, contest=contest)]
    assert codes == ["votes.sum_mismatch", "total.sum_mismatch", "mine.always"]
    assert calls == ["mine", "mine"]


def test_a_registry_without_every_builtin_runs_each_rule() -> None:
    only_sum = RuleRegistry([BUILTIN_RULES[4]])  # votes.sum_mismatch
    contest = Contest(id="c", candidates=[Candidate(1, "a")])
    station = PollingStation(code=STATION, registered_voters=10)
    report = plain_tally({1: 5, 7: 1})  # an unknown candidate: not a rule of this registry
    assert list(only_sum.check(report, station=station, contest=contest)) == []


# -- canonical bytes --------------------------------------------------------------------------


@settings(max_examples=500)
@given(anything_tallies())
def test_canonical_bytes_of_any_tally_are_the_plain_json(
    case: tuple[TallyReport, RuleContext],
) -> None:
    report, _ = case
    assert canonical_bytes(report) == plain_canonical(report)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_canonical_bytes_of_the_strategies_reports_are_the_plain_json(
    data: st.DataObject,
) -> None:
    kind = data.draw(st.sampled_from(["tally", "situation", *sorted(BREAKABLE_RULES)]))
    report: Report
    if kind == "tally":
        report = data.draw(tally_reports())
    elif kind == "situation":
        report = data.draw(situation_reports())
    else:
        station = data.draw(polling_stations(min_voters=150, with_position=True))
        report = data.draw(broken_tally_reports(rule=kind, station=station))
    if data.draw(st.booleans()):
        report = attrs.evolve(report, amends=Amends(uuid.uuid4(), data.draw(st.integers(1, 9))))
    assert canonical_bytes(report) == plain_canonical(report)


def test_canonical_bytes_sort_two_digit_ballot_numbers_as_text() -> None:
    # the position in integers, converted to floats
    report = plain_tally({2: 1, 10: 2, 0: 3, 11: 4}, position=Position(-3, 102))
    raw = canonical_bytes(report)
    assert raw == plain_canonical(report)
    assert b'"votes":{"0":3,"10":2,"11":4,"2":1}' in raw


# -- audit leaves -------------------------------------------------------------------------------


@settings(max_examples=500)
@given(
    st.text(max_size=20),
    st.text(max_size=20),
    st.text(max_size=20),
    st.integers(1, 10**9),
    st.datetimes(timezones=st.just(UTC)),
)
def test_audit_leaves_are_the_plain_json(
    principal: str, obj: str, detail: str, seq: int, at: datetime
) -> None:
    entry = AuditRecord(
        at=at,
        principal=principal,
        role="monitor",
        action="submit",
        object=obj,
        outcome="accepted",
        detail=detail,
        region="31.71",
    )
    body = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "principal": principal,
        "role": "monitor",
        "action": "submit",
        "object": obj,
        "outcome": "accepted",
        "detail": detail,
        "region": "31.71",
    }
    plain = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert _canonical(entry, seq) == plain
    linked = chain((seq - 1, "0" * 64), [entry])
    assert linked[0].seq == seq
    if seq == 1:
        assert verify_chain(linked).ok

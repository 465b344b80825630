"""Example-based tests of the tally rules (C.Hasil-KWK consistency, domain.md).

Each rule code has a small hand-written report that breaks exactly that rule; the base
report is the worked example of the issue (station DPT 520, 415 votes), which breaks none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs
import pytest

from sipantau_core import (
    Ballots,
    Candidate,
    Contest,
    Disability,
    PollingStation,
    Position,
    TallyReport,
    TallySettings,
    TimeZone,
    Verdict,
    VoterCounts,
    check_tally,
)
from sipantau_core.rules import (
    BUILTIN_RULES,
    FunctionRule,
    Rule,
    RuleContext,
    RuleRegistry,
    Violation,
    default_registry,
    reserve_ballots,
)

# ---------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------

STATION = PollingStation(code="1673011001001", registered_voters=520)
CONTEST = Contest(id="walikota", candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2")])
THREE = Contest(
    id="walikota",
    candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2"), Candidate(3, "Paslon 3")],
)
AT = datetime(2024, 11, 27, 14, 30, tzinfo=TimeZone.WIB.tzinfo)
REPORT_ID = UUID("6f1c2b1e-4d0a-4c57-9a59-1b2f0d6a7e01")

SECTIONS = ("voters", "voted", "disability", "ballots")


def tally(**changes: Any) -> TallyReport:
    """The worked example of the issue (consistent, no violation), with ``changes``."""
    fields: dict[str, Any] = {
        "report_id": REPORT_ID,
        "monitor": "LLG-001",
        "station": STATION.code,
        "contest": "walikota",
        "observed_at": AT,
        "votes": {1: 130, 2: 270},
        "valid": 400,
        "invalid": 15,
        "total": 415,
        "voters": VoterCounts(520, 3, 2, total=525),
        "voted": VoterCounts(410, 3, 2, total=415),
        "disability": Disability(registered=4, voted=3),
        "ballots": Ballots(received=533, returned=2, unused=116, used=415),
    }
    fields.update(changes)
    return TallyReport(**fields)


def sms(**changes: Any) -> TallyReport:
    """An SMS-style quick tally: votes, valid, invalid and total only."""
    return tally(**{**dict.fromkeys(SECTIONS), **changes})


def check(
    report: TallyReport,
    *,
    station: PollingStation = STATION,
    contest: Contest = CONTEST,
    settings: TallySettings | None = None,
    rules: RuleRegistry | None = None,
) -> Verdict:
    return check_tally(report, station=station, contest=contest, settings=settings, rules=rules)


def mentions(text: str, number: str | int) -> bool:
    """``number`` appears in ``text`` as a whole number (``41`` is not found in ``415``)."""
    pattern = rf"(?<!\d)(?<!\d[,.]){re.escape(str(number))}(?!\d|[,.]\d)"
    return re.search(pattern, text) is not None


# ---------------------------------------------------------------------------------------
# One report per code
# ---------------------------------------------------------------------------------------

WIDE = TallySettings(turnout_band=(0.3, 1.1))


@attrs.frozen
class Case:
    id: str
    code: str
    severity: str
    report: TallyReport
    fields: tuple[str, ...]
    numbers_id: tuple[str | int, ...]
    numbers_en: tuple[str | int, ...] | None = None
    contest: Contest = CONTEST
    station: PollingStation = STATION
    settings: TallySettings | None = None


CASES = [
    Case(
        "voters.sum_mismatch",
        "voters.sum_mismatch",
        "hard",
        tally(voters=VoterCounts(520, 3, 2, total=526)),
        ("voters.total", "voters.dpt", "voters.dptb", "voters.dpk"),
        (526, 520, 3, 2, 525),
    ),
    Case(
        "voted.sum_mismatch",
        "voted.sum_mismatch",
        "hard",
        tally(voted=VoterCounts(410, 3, 2, total=416)),
        ("voted.total", "voted.dpt", "voted.dptb", "voted.dpk"),
        (416, 410, 3, 2, 415),
    ),
    Case(
        "voted.exceeds_registered",
        "voted.exceeds_registered",
        "hard",
        # 4 voted from the DPTb list of 3; the totals stay 415 so nothing else breaks.
        tally(voted=VoterCounts(409, 4, 2, total=415)),
        ("voted.dptb", "voters.dptb"),
        (4, 3),
    ),
    Case(
        "disability.exceeds/voted>registered",
        "disability.exceeds",
        "hard",
        tally(disability=Disability(registered=4, voted=5)),
        ("disability.voted", "disability.registered"),
        (5, 4),
    ),
    Case(
        "disability.exceeds/registered>voters",
        "disability.exceeds",
        "hard",
        tally(disability=Disability(registered=600, voted=3)),
        ("disability.registered", "voters.total"),
        (600, 525),
    ),
    Case(
        "disability.exceeds/voted>all-voted",
        "disability.exceeds",
        "hard",
        tally(disability=Disability(registered=500, voted=420)),
        ("disability.voted", "voted.total"),
        (420, 415),
    ),
    Case(
        "votes.sum_mismatch",
        "votes.sum_mismatch",
        "hard",
        tally(votes={1: 130, 2: 280}),
        ("votes", "valid"),
        (400, 410),
    ),
    Case(
        "total.sum_mismatch",
        "total.sum_mismatch",
        "hard",
        tally(invalid=16),
        ("valid", "invalid", "total"),
        (400, 16, 416, 415),
    ),
    Case(
        "total.voted_mismatch",
        "total.voted_mismatch",
        "hard",
        tally(voted=VoterCounts(409, 3, 2, total=414)),
        ("total", "voted.total"),
        (415, 414),
    ),
    Case(
        "total.ballots_used_mismatch",
        "total.ballots_used_mismatch",
        "hard",
        tally(ballots=Ballots(received=533, returned=2, unused=115, used=416)),
        ("total", "ballots.used"),
        (415, 416),
    ),
    Case(
        "ballots.balance_mismatch",
        "ballots.balance_mismatch",
        "hard",
        tally(ballots=Ballots(received=533, returned=2, unused=117, used=415)),
        ("ballots.received", "ballots.returned", "ballots.unused", "ballots.used"),
        (533, 2, 117, 415, 534),
    ),
    Case(
        "voters.dpt_mismatch",
        "voters.dpt_mismatch",
        "hard",
        tally(voters=VoterCounts(519, 3, 2, total=524)),
        ("voters.dpt",),
        (519, 520),
    ),
    Case(
        "votes.unknown_candidate",
        "votes.unknown_candidate",
        "hard",
        tally(votes={1: 130, 2: 270, 3: 0}),
        ("votes.3",),
        (3,),
    ),
    Case(
        "votes.missing_candidate",
        "votes.missing_candidate",
        "hard",
        tally(votes={1: 130, 2: 270}),
        ("votes.3",),
        (3,),
        contest=THREE,
    ),
    Case(
        # 530 votes on a sheet of 525 registered voters (no voted section, or it would
        # also break voted.exceeds_registered / total.voted_mismatch). The turnout is then
        # above 100 % too, so the band is widened to isolate the hard rule.
        "total.over_capacity",
        "total.over_capacity",
        "hard",
        tally(votes={1: 200, 2: 315}, valid=515, total=530, voted=None, ballots=None),
        ("total",),
        (530, 525),
        settings=WIDE,
    ),
    Case(
        "ballots.reserve_unexpected",
        "ballots.reserve_unexpected",
        "soft",
        tally(ballots=Ballots(received=534, returned=2, unused=117, used=415)),
        ("ballots.received",),
        (534, 533),
    ),
    Case(
        # 415 / 525 = 79.0 % against a band of 30-75 %.
        "turnout.outside_band",
        "turnout.outside_band",
        "soft",
        tally(),
        ("voted.total",),
        ("79,0", 30, 75),
        ("79.0", 30, 75),
        settings=TallySettings(turnout_band=(0.3, 0.75)),
    ),
    Case(
        "votes.unanimous",
        "votes.unanimous",
        "soft",
        tally(votes={1: 400, 2: 0}),
        ("votes.1",),
        (400, 1),
    ),
    Case(
        # 0.03 degrees of latitude north of the TPS: about 3.3 km away.
        "position.far_from_station",
        "position.far_from_station",
        "soft",
        tally(position=Position(-3.26, 102.86)),
        ("position",),
        ("3,3",),
        ("3.3",),
        station=attrs.evolve(STATION, position=Position(-3.29, 102.86)),
    ),
]


def test_every_builtin_code_has_a_case() -> None:
    codes = {c.code for c in CASES}
    assert codes == default_registry().codes
    assert len(codes) == 17


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_report_breaking_one_rule_gets_exactly_its_code(case: Case) -> None:
    verdict = check(case.report, station=case.station, contest=case.contest, settings=case.settings)
    assert verdict.codes == {case.code}, verdict.violations
    (violation,) = verdict.violations
    assert violation.code == case.code
    assert violation.severity == case.severity
    assert violation.is_hard is (case.severity == "hard")
    assert verdict.ok is (case.severity == "soft")
    assert violation.fields == case.fields
    for n in case.numbers_id:
        assert mentions(violation.message_id, n), (n, violation.message_id)
    for n in case.numbers_en if case.numbers_en is not None else case.numbers_id:
        assert mentions(violation.message, n), (n, violation.message)


def test_messages_read_as_specified() -> None:
    (v,) = check(tally(votes={1: 130, 2: 280})).violations
    assert v.message_id == "Jumlah suara sah 400 tidak sama dengan jumlah suara paslon 410"
    assert v.message == "valid votes 400 differ from the sum of the candidates' votes 410"
    (v,) = check(tally(), settings=TallySettings(turnout_band=(0.3, 0.75))).violations
    assert v.message_id == "Partisipasi 79,0% di luar rentang wajar 30-75%"
    assert v.message == "turnout 79.0 % is outside the plausible band 30-75 %"
    (v,) = check(tally(votes={1: 130, 2: 270, 3: 0})).violations
    assert v.message_id == "Nomor urut 3 tidak ada dalam pemilihan walikota"


def test_mentions_helper() -> None:
    assert mentions("Jumlah 415 suara", 415)
    assert not mentions("Jumlah 415 suara", 41)
    assert mentions("Partisipasi 79,0% di luar", "79,0")
    assert not mentions("Partisipasi 79,0% di luar", 79)
    assert mentions("(410 + 3 + 2 = 415)", 3)
    assert mentions("= 416, tidak sama", 416)
    assert not mentions("2,5% = 533", 5)
    assert not mentions("2.5 % = 533", 2)


# ---------------------------------------------------------------------------------------
# The worked example
# ---------------------------------------------------------------------------------------


def test_worked_example_is_consistent() -> None:
    # DPT 520 + reserve ceil(13) = 533 received = 2 + 116 + 415; 130 + 270 = 400 valid;
    # 400 + 15 = 415 = 410 + 3 + 2 voted = ballots used; turnout 415 / 525 = 79 %.
    report = tally()
    verdict = check(report)
    assert verdict.ok
    assert verdict.hard == ()
    assert verdict.soft == ()
    assert verdict.violations == ()
    assert len(verdict) == 0
    assert verdict.codes == frozenset()
    # The station's DPT is above the 300 of a general-election TPS: no capacity is given,
    # so nothing is checked against it.
    assert STATION.capacity is None


def test_worked_example_without_stated_totals() -> None:
    report = tally(voters=VoterCounts(520, 3, 2), voted=VoterCounts(410, 3, 2))
    assert check(report).violations == ()


# ---------------------------------------------------------------------------------------
# A rule runs only when its sections are present
# ---------------------------------------------------------------------------------------


@attrs.define
class Spy:
    """Wraps a rule and records that it ran."""

    inner: Rule
    ran: list[str]

    @property
    def codes(self) -> tuple[str, ...]:
        return self.inner.codes

    @property
    def needs(self) -> frozenset[str]:
        return self.inner.needs

    def check(self, report: TallyReport, ctx: RuleContext) -> Iterable[Violation]:
        self.ran.extend(self.inner.codes)
        return self.inner.check(report, ctx)


def codes_that_ran(report: TallyReport) -> set[str]:
    ran: list[str] = []
    registry = RuleRegistry(Spy(rule, ran) for rule in BUILTIN_RULES)
    check(report, rules=registry)
    return set(ran)


NEED_NOTHING = {
    "votes.sum_mismatch",
    "total.sum_mismatch",
    "votes.unknown_candidate",
    "votes.missing_candidate",
    "total.over_capacity",
    "turnout.outside_band",
    "votes.unanimous",
}
NEED = {
    "voters": {"voters.sum_mismatch", "voters.dpt_mismatch"},
    "voted": {"voted.sum_mismatch", "total.voted_mismatch"},
    "disability": {"disability.exceeds"},
    "ballots": {
        "total.ballots_used_mismatch",
        "ballots.balance_mismatch",
        "ballots.reserve_unexpected",
    },
}


def test_sms_tally_runs_only_the_rules_that_need_nothing() -> None:
    assert codes_that_ran(sms()) == NEED_NOTHING


@pytest.mark.parametrize("section", SECTIONS)
def test_one_section_runs_its_rules(section: str) -> None:
    only = {s: None for s in SECTIONS if s != section}
    assert codes_that_ran(tally(**only)) == NEED_NOTHING | NEED[section]


def test_voted_exceeds_registered_needs_both_voter_sections() -> None:
    assert "voted.exceeds_registered" in codes_that_ran(tally(disability=None, ballots=None))
    everything = tally(position=Position(-3.29, 102.86))
    assert codes_that_ran(everything) == default_registry().codes


def test_sms_tally_is_checked_by_the_rules_that_need_nothing() -> None:
    assert check(sms()).violations == ()
    # Broken in every way an SMS tally can be: sum, total, unknown and missing number.
    report = sms(votes={1: 130, 3: 280}, valid=400, invalid=16, total=415)
    verdict = check(report)
    assert verdict.codes == {
        "votes.sum_mismatch",
        "total.sum_mismatch",
        "votes.unknown_candidate",
        "votes.missing_candidate",
    }


def test_missing_sections_hide_their_breaches() -> None:
    # A report broken in every section; removing a section removes exactly its codes.
    broken = tally(
        voters=VoterCounts(519, 3, 2, total=999),
        voted=VoterCounts(410, 3, 2, total=999),
        disability=Disability(registered=4, voted=5),
        ballots=Ballots(received=600, returned=0, unused=0, used=1),
    )
    full = check(broken).codes
    assert {
        "voters.sum_mismatch",
        "voters.dpt_mismatch",
        "voted.sum_mismatch",
        "disability.exceeds",
        "total.ballots_used_mismatch",
        "ballots.balance_mismatch",
        "ballots.reserve_unexpected",
    } <= full
    for section in SECTIONS:
        without = check(attrs.evolve(broken, **{section: None})).codes
        assert without == full - NEED[section], section
    assert check(attrs.evolve(broken, **dict.fromkeys(SECTIONS))).codes == set()


# ---------------------------------------------------------------------------------------
# total.over_capacity and its bases; reserve_ballots
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dpt", "reserve"),
    [(400, 10), (401, 11), (0, 0), (1, 1), (40, 1), (41, 2), (120, 3), (520, 13), (600, 15)],
)
def test_reserve_ballots(dpt: int, reserve: int) -> None:
    assert reserve_ballots(dpt) == reserve


def test_reserve_ballots_at_another_rate() -> None:
    assert reserve_ballots(400, rate=0.05) == 20
    assert reserve_ballots(401, rate=0.0) == 0


@pytest.mark.parametrize(
    ("dpt", "total", "over"),
    [(520, 533, False), (520, 534, True), (400, 410, False), (400, 411, True), (401, 412, False)],
)
def test_over_capacity_falls_back_to_dpt_plus_reserve(dpt: int, total: int, over: bool) -> None:
    station = PollingStation(code="1673011001001", registered_voters=dpt)
    report = sms(votes={1: total, 2: 0}, valid=total, invalid=0, total=total)
    verdict = check(report, station=station, settings=TallySettings(turnout_band=(0.0, 2.0)))
    assert {v.code for v in verdict.hard} == ({"total.over_capacity"} if over else set())
    if over:
        (v,) = verdict.hard
        limit = dpt + reserve_ballots(dpt)
        assert v.fields == ("total",)
        assert mentions(v.message_id, total) and mentions(v.message_id, limit)
        assert "cadangan" in v.message_id
        assert mentions(v.message, total) and mentions(v.message, limit)


def test_over_capacity_uses_the_voted_counts_without_a_voters_section() -> None:
    # 420 votes, 415 who voted: the basis is 410 + 3 + 2 (not the station's 520 + 13).
    report = tally(
        votes={1: 135, 2: 270}, valid=405, total=420, voters=None, disability=None, ballots=None
    )
    verdict = check(report)
    assert {v.code for v in verdict.hard} == {"total.over_capacity", "total.voted_mismatch"}
    (v,) = (v for v in verdict if v.code == "total.over_capacity")
    assert mentions(v.message_id, 420) and mentions(v.message_id, 415)
    assert "pengguna" in v.message_id


def test_over_capacity_prefers_the_registered_counts() -> None:
    # 415 votes but only 305 who voted: a voted mismatch, yet within the 525 registered.
    report = tally(voted=VoterCounts(300, 3, 2, total=305), disability=None, ballots=None)
    assert check(report).codes == {"total.voted_mismatch"}


def test_over_capacity_uses_the_sheet_not_the_station() -> None:
    # The sheet's registered counts are the basis even when the station's DPT is smaller.
    small = PollingStation(code="1673011001001", registered_voters=100)
    report = tally(ballots=None)
    assert "total.over_capacity" not in check(report, station=small).codes
    assert "voters.dpt_mismatch" in check(report, station=small).codes


# ---------------------------------------------------------------------------------------
# Empty box (kotak kosong): option 0 counts as a candidate
# ---------------------------------------------------------------------------------------

SINGLE = Contest(id="bupati", candidates=[Candidate(1, "Paslon 1")], empty_box=True)
SINGLE_NO_BOX = Contest(id="bupati", candidates=[Candidate(1, "Paslon 1")])


def test_empty_box_is_an_option() -> None:
    assert SINGLE.options == (1, 0)
    report = tally(contest="bupati", votes={1: 150, 0: 250})
    assert check(report, contest=SINGLE).violations == ()


def test_empty_box_missing() -> None:
    report = tally(contest="bupati", votes={1: 400})
    verdict = check(report, contest=SINGLE)
    # Paslon 1 then holds every valid vote: unanimous (soft) as well.
    assert verdict.codes == {"votes.missing_candidate", "votes.unanimous"}
    (v,) = verdict.hard
    assert v.fields == ("votes.0",)
    assert mentions(v.message_id, 0)
    assert mentions(v.message, 0)


def test_empty_box_unknown_without_one() -> None:
    report = tally(contest="bupati", votes={1: 150, 0: 250})
    verdict = check(report, contest=SINGLE_NO_BOX)
    assert verdict.codes == {"votes.unknown_candidate"}
    (v,) = verdict.violations
    assert v.fields == ("votes.0",)
    assert v.message_id == "Nomor urut 0 tidak ada dalam pemilihan bupati"


def test_empty_box_can_be_unanimous() -> None:
    report = tally(contest="bupati", votes={1: 0, 0: 400})
    verdict = check(report, contest=SINGLE)
    assert verdict.codes == {"votes.unanimous"}
    assert verdict.violations[0].fields == ("votes.0",)


# ---------------------------------------------------------------------------------------
# A hard breach is a verdict, never an exception
# ---------------------------------------------------------------------------------------


def test_a_report_breaking_every_hard_rule_returns_a_verdict() -> None:
    report = tally(
        votes={1: 9000, 3: 10},
        valid=100,
        invalid=5,
        total=9999,
        voters=VoterCounts(1, 0, 0, total=7),
        voted=VoterCounts(50, 0, 0, total=8),
        disability=Disability(registered=30, voted=60),
        ballots=Ballots(received=10, returned=0, unused=0, used=20),
    )
    verdict = check(report)
    assert isinstance(verdict, Verdict)
    assert not verdict.ok
    assert {v.code for v in verdict.hard} == {
        "voters.sum_mismatch",
        "voted.sum_mismatch",
        "voted.exceeds_registered",
        "disability.exceeds",
        "votes.sum_mismatch",
        "total.sum_mismatch",
        "total.voted_mismatch",
        "total.ballots_used_mismatch",
        "ballots.balance_mismatch",
        "voters.dpt_mismatch",
        "votes.unknown_candidate",
        "votes.missing_candidate",
        "total.over_capacity",
    }
    assert {v.code for v in verdict.soft} == {"ballots.reserve_unexpected", "turnout.outside_band"}
    # disability breaks all three of its comparisons
    assert sum(v.code == "disability.exceeds" for v in verdict) == 3
    assert len(verdict) == len(list(verdict)) == len(verdict.hard) + len(verdict.soft)


# ---------------------------------------------------------------------------------------
# Turnout band and unanimity threshold
# ---------------------------------------------------------------------------------------

HUNDRED = PollingStation(code="1673011001002", registered_voters=100)


def quick(total: int, *, unanimous: bool = False) -> TallyReport:
    """An SMS tally of ``total`` votes, all valid; split between the pairs unless
    ``unanimous``."""
    votes = {1: total, 2: 0} if unanimous else {1: total // 2, 2: total - total // 2}
    return sms(votes=votes, valid=total, invalid=0, total=total)


@pytest.mark.parametrize(
    ("total", "outside"),
    [(29, True), (30, False), (64, False), (100, False), (101, True), (103, True)],
)
def test_turnout_band_default_is_inclusive(total: int, outside: bool) -> None:
    # station DPT 100, no voter sections: turnout = total / station DPT.
    verdict = check(quick(total), station=HUNDRED)
    assert verdict.codes == ({"turnout.outside_band"} if outside else set())
    assert verdict.ok


@pytest.mark.parametrize(
    ("band", "total", "outside"),
    [
        ((0.5, 0.9), 49, True),
        ((0.5, 0.9), 50, False),
        ((0.5, 0.9), 90, False),
        ((0.5, 0.9), 91, True),
        ((0.0, 1.0), 0, False),
        ((0.8, 0.8), 80, False),
        ((0.8, 0.8), 79, True),
    ],
)
def test_turnout_band_from_settings(band: tuple[float, float], total: int, outside: bool) -> None:
    settings = TallySettings(turnout_band=band)
    verdict = check(quick(total), station=HUNDRED, settings=settings)
    assert ("turnout.outside_band" in verdict.codes) is outside


def test_turnout_messages_low_side() -> None:
    (v,) = check(quick(29), station=HUNDRED).violations
    assert v.fields == ("total",)
    assert v.message_id == "Partisipasi 29,0% di luar rentang wajar 30-100%"
    assert v.message == "turnout 29.0 % is outside the plausible band 30-100 %"


def test_turnout_uses_voted_over_registered_from_the_sheet() -> None:
    # 415 / 525 = 0.7905: inside (0.79, 1), outside (0.791, 1).
    assert check(tally(), settings=TallySettings(turnout_band=(0.79, 1.0))).violations == ()
    verdict = check(tally(), settings=TallySettings(turnout_band=(0.791, 1.0)))
    assert verdict.codes == {"turnout.outside_band"}


def test_turnout_without_voters_section_uses_the_station_dpt() -> None:
    # voted 410 + 3 + 2 = 415 over station DPT 520 = 0.798.
    report = tally(voters=None)
    assert check(report, settings=TallySettings(turnout_band=(0.79, 1.0))).violations == ()
    report_over = check(report, settings=TallySettings(turnout_band=(0.8, 1.0)))
    assert report_over.codes == {"turnout.outside_band"}


@pytest.mark.parametrize("band", [(0.8, 0.3), (-0.1, 1.0), (0.3,), (0.1, 0.2, 0.3)])
def test_turnout_band_must_be_low_high(band: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        TallySettings(turnout_band=band)


@pytest.mark.parametrize(("total", "flagged"), [(50, False), (51, True)])
def test_unanimity_threshold(total: int, flagged: bool) -> None:
    verdict = check(quick(total, unanimous=True), station=HUNDRED)
    assert verdict.codes == ({"votes.unanimous"} if flagged else set())
    assert verdict.ok


def test_unanimity_counts_the_total_not_the_valid_votes() -> None:
    # 48 valid + 3 invalid = 51 voters: more than 50, so flagged.
    report = sms(votes={1: 48, 2: 0}, valid=48, invalid=3, total=51)
    assert check(report, station=HUNDRED).codes == {"votes.unanimous"}


def test_unanimity_threshold_from_settings() -> None:
    settings = TallySettings(unanimous_min_voters=10, turnout_band=(0.0, 1.0))
    assert check(quick(10, unanimous=True), station=HUNDRED, settings=settings).codes == set()
    flagged = check(quick(11, unanimous=True), station=HUNDRED, settings=settings)
    assert flagged.codes == {"votes.unanimous"}


def test_no_valid_votes_is_not_unanimous() -> None:
    report = sms(votes={1: 0, 2: 0}, valid=0, invalid=60, total=60)
    assert check(report, station=HUNDRED).codes == set()


# ---------------------------------------------------------------------------------------
# The registry: plugins
# ---------------------------------------------------------------------------------------


class InvalidShareRule:
    """A plugin rule (a plain class, not a FunctionRule): more than 10 % invalid votes."""

    @property
    def codes(self) -> tuple[str, ...]:
        return ("plugin.invalid_share",)

    @property
    def needs(self) -> frozenset[str]:
        return frozenset()

    def check(self, report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
        if report.total and report.invalid * 10 > report.total:
            yield Violation(
                "plugin.invalid_share",
                "soft",
                ("invalid", "total"),
                f"Suara tidak sah {report.invalid} dari {report.total}",
                f"{report.invalid} of {report.total} votes are invalid",
            )


def _ballots_returned(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    assert report.ballots is not None  # the registry runs this only with ballots
    if report.ballots.returned > 5:
        yield Violation(
            "plugin.many_returned",
            "hard",
            ("ballots.returned",),
            f"Surat suara dikembalikan {report.ballots.returned}",
            f"{report.ballots.returned} ballots returned",
        )


RETURNED = FunctionRule(("plugin.many_returned",), {"ballots"}, _ballots_returned)


def test_plugin_rules_satisfy_the_protocol() -> None:
    assert isinstance(InvalidShareRule(), Rule)
    assert isinstance(RETURNED, Rule)
    assert all(isinstance(r, Rule) for r in BUILTIN_RULES)


def test_plugin_rules_run_through_check_tally() -> None:
    registry = default_registry()
    registry.register(InvalidShareRule())
    registry.register(RETURNED)
    assert {"plugin.invalid_share", "plugin.many_returned"} <= registry.codes
    assert len(registry) == len(BUILTIN_RULES) + 2

    report = tally(
        votes={1: 100, 2: 200},
        valid=300,
        invalid=115,
        ballots=Ballots(received=533, returned=6, unused=112, used=415),
    )
    verdict = check(report, rules=registry)
    assert verdict.codes == {"plugin.invalid_share", "plugin.many_returned"}
    assert not verdict.ok
    by_code = {v.code: v for v in verdict}
    assert by_code["plugin.invalid_share"].severity == "soft"
    assert by_code["plugin.many_returned"].fields == ("ballots.returned",)
    # The plugin's `needs` is honoured like a built-in's.
    assert check(attrs.evolve(report, ballots=None), rules=registry).codes == {
        "plugin.invalid_share"
    }
    # Built-ins still run alongside.
    broken = attrs.evolve(report, votes={1: 100, 2: 201})
    assert "votes.sum_mismatch" in check(broken, rules=registry).codes


def test_plugin_runs_alone_in_its_own_registry() -> None:
    registry = RuleRegistry([InvalidShareRule()])
    report = tally(votes={1: 1, 2: 1}, valid=300, invalid=115)  # breaks votes.sum_mismatch
    assert check(report, rules=registry).codes == {"plugin.invalid_share"}


@pytest.mark.parametrize("codes", [("votes.sum_mismatch",), ("plugin.ok", "turnout.outside_band")])
def test_a_clashing_code_is_refused(codes: tuple[str, ...]) -> None:
    registry = default_registry()
    before = (len(registry), registry.codes)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(FunctionRule(codes, (), lambda report, ctx: ()))
    assert (len(registry), registry.codes) == before
    assert "plugin.ok" not in registry.codes


def test_a_clash_between_plugins_is_refused() -> None:
    registry = RuleRegistry([RETURNED])
    with pytest.raises(ValueError, match=r"plugin\.many_returned"):
        registry.register(FunctionRule(("plugin.many_returned",), (), lambda report, ctx: ()))


def test_registering_on_a_copy_leaves_the_default_alone() -> None:
    base = default_registry()
    builtin_codes = base.codes
    extended = base.copy()
    extended.register(InvalidShareRule())
    assert "plugin.invalid_share" in extended.codes
    assert base.codes == builtin_codes
    assert len(base) == len(BUILTIN_RULES)
    assert "plugin.invalid_share" not in default_registry().codes
    # check_tally without `rules` uses the built-ins only.
    report = tally(votes={1: 100, 2: 200}, valid=300, invalid=115)
    assert check(report).codes == set()
    assert check(report, rules=extended).codes == {"plugin.invalid_share"}
    # default_registry() hands out a new registry each time.
    mine = default_registry()
    mine.register(RETURNED)
    assert "plugin.many_returned" not in default_registry().codes


def test_an_empty_registry_checks_nothing() -> None:
    assert check(tally(votes={1: 1, 2: 1}), rules=RuleRegistry()).violations == ()


def test_a_report_near_its_tps_or_without_positions_is_not_far() -> None:
    at_tps = attrs.evolve(STATION, position=Position(-3.29, 102.86))
    near = tally(position=Position(-3.295, 102.86))  # about 560 m
    assert "position.far_from_station" not in check(near, station=at_tps).codes
    assert "position.far_from_station" not in check(near).codes  # the TPS has no position
    assert "position.far_from_station" not in check(tally(), station=at_tps).codes
    strict = TallySettings(max_distance_m=100)
    assert "position.far_from_station" in check(near, station=at_tps, settings=strict).codes

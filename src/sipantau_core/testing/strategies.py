"""Hypothesis strategies for the sipantau domain.

Every strategy is a public, keyword-only function. :func:`tally_reports` builds reports
for which every hard rule holds *by construction* (nothing is filtered), and
:func:`broken_tally_reports` reports that break exactly the named rule. They are
registered for the domain types, so ``st.from_type(TallyReport)`` works too.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time
from typing import Literal

import attrs
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from sipantau_core.domain import (
    DEFAULT_INCIDENT_CATEGORIES,
    EMPTY_BOX,
    MAX_COUNT,
    Ballots,
    Candidate,
    Contest,
    ContestKind,
    Disability,
    Incident,
    Monitor,
    PersonalData,
    PollingStation,
    Position,
    RegionCode,
    RegionLevel,
    RiskLevel,
    RiskProfile,
    SecurityStatus,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
    VoteCounts,
    VoterCounts,
    time_zone_of_province,
)
from sipantau_core.rules import BUILTIN_RULES, TallySettings, reserve_ballots

__all__ = [
    "BREAKABLE_RULES",
    "broken_tally_reports",
    "candidates",
    "contests",
    "incidents",
    "monitors",
    "personal_data",
    "polling_stations",
    "region_codes",
    "situation_reports",
    "station_codes",
    "tally_reports",
]

#: Every built-in rule code that :func:`broken_tally_reports` can break.
BREAKABLE_RULES: tuple[str, ...] = tuple(code for rule in BUILTIN_RULES for code in rule.codes)

_WIDTHS = {RegionLevel.PROVINCE: 2, RegionLevel.CITY: 2, RegionLevel.DISTRICT: 2}
ELECTION_DAY = date(2024, 11, 27)


# ---------------------------------------------------------------------------------------
# Regions and stations
# ---------------------------------------------------------------------------------------


def _segment(level: RegionLevel) -> st.SearchStrategy[str]:
    if level == RegionLevel.VILLAGE:
        # 1xxx for a kelurahan, 2xxx for a desa
        return st.integers(1001, 2999).map(str)
    if level == RegionLevel.PROVINCE:
        return st.integers(11, 96).map(lambda n: f"{n:02d}")
    return st.integers(1, 99).map(lambda n: f"{n:02d}")


@st.composite
def _region_codes(
    draw: st.DrawFn, level: RegionLevel | None, within: RegionCode | None
) -> RegionCode:
    start = within if within is not None else None
    lowest = int(start.level) + 1 if start is not None else 1
    target = level if level is not None else RegionLevel(draw(st.integers(max(lowest, 1), 4)))
    if start is not None and target < start.level:
        raise InvalidArgument(f"no region at level {target.name} within {start}")
    code = start
    first = int(start.level) + 1 if start is not None else 1
    for lvl in range(first, int(target) + 1):
        seg = draw(_segment(RegionLevel(lvl)))
        code = RegionCode(seg) if code is None else code.child(seg)
    assert code is not None
    return code


def region_codes(
    *, level: RegionLevel | None = None, within: RegionCode | str | None = None
) -> st.SearchStrategy[RegionCode]:
    """Kemendagri region codes, at ``level`` (any by default), within ``within`` if given."""
    parent = RegionCode.parse(within) if within is not None else None
    return _region_codes(level, parent)


def station_codes(*, within: RegionCode | str | None = None) -> st.SearchStrategy[StationCode]:
    """TPS codes, in a village within ``within`` if given."""
    return st.builds(
        StationCode,
        region_codes(level=RegionLevel.VILLAGE, within=within),
        st.integers(1, 999),
    )


def polling_stations(
    *,
    code: StationCode | str | None = None,
    within: RegionCode | str | None = None,
    min_voters: int = 0,
    max_voters: int = 600,
    capacity: int | None = 600,
    with_position: bool | None = None,
) -> st.SearchStrategy[PollingStation]:
    """TPS with a DPT between ``min_voters`` and ``max_voters`` (600 is the 2024 Pilkada
    limit), a position in Indonesia (``with_position``: always, never, or either) and a
    risk profile."""
    if capacity is not None:
        max_voters = min(max_voters, capacity)
    if not 0 <= min_voters <= max_voters <= MAX_COUNT:
        raise InvalidArgument(f"need 0 <= min_voters <= max_voters <= {MAX_COUNT}")
    codes = st.just(StationCode.parse(code)) if code is not None else station_codes(within=within)
    somewhere = st.builds(Position, st.floats(-11.0, 6.0), st.floats(95.0, 141.0))
    positions: st.SearchStrategy[Position | None]
    if with_position is None:
        positions = st.none() | somewhere
    elif with_position:
        positions = somewhere
    else:
        positions = st.none()
    risks = st.builds(
        RiskProfile,
        st.sampled_from(RiskLevel),
        st.frozensets(
            st.sampled_from(["keamanan", "aksesibilitas", "kejadian_lalu", "logistik", "jaringan"])
        ),
    )
    return st.builds(
        PollingStation,
        code=codes,
        registered_voters=st.integers(min_voters, max_voters),
        position=positions,
        risk=risks,
        capacity=st.just(capacity),
    )


# ---------------------------------------------------------------------------------------
# Contests and people
# ---------------------------------------------------------------------------------------


def candidates(*, number: int) -> st.SearchStrategy[Candidate]:
    """A candidate pair with ballot number ``number`` and a neutral label."""
    return st.just(Candidate(number=number, name=f"Paslon {number}"))


@st.composite
def _contests(
    draw: st.DrawFn, min_pairs: int, max_pairs: int, empty_box: bool | None, contest_id: str | None
) -> Contest:
    n = 1 if empty_box else draw(st.integers(min_pairs, max_pairs))
    # A single pair always runs against the empty box on a real ballot, unless told otherwise.
    box = n == 1 and empty_box is not False
    cid = contest_id or draw(st.sampled_from(["walikota", "bupati", "gubernur"]))
    kind = {"walikota": ContestKind.MAYOR, "bupati": ContestKind.REGENT}.get(
        cid, ContestKind.GOVERNOR
    )
    return Contest(
        id=cid,
        kind=kind,
        candidates=[Candidate(number=i, name=f"Paslon {i}") for i in range(1, n + 1)],
        empty_box=box,
    )


def contests(
    *,
    min_pairs: int = 1,
    max_pairs: int = 6,
    empty_box: bool | None = None,
    id: str | None = None,
) -> st.SearchStrategy[Contest]:
    """Contests of ``min_pairs``–``max_pairs`` pairs; one pair runs against the empty box
    (unless ``empty_box=False``)."""
    if not 1 <= min_pairs <= max_pairs <= 99:
        raise InvalidArgument("need 1 <= min_pairs <= max_pairs <= 99")
    return _contests(min_pairs, max_pairs, empty_box, id)


_GIVEN = ["Budi", "Siti", "Agus", "Dewi", "Rudi", "Sri", "Andi", "Rina", "Hendra", "Yuni"]
_FAMILY = ["Santoso", "Wijaya", "Saputra", "Lestari", "Pratama", "Hidayat", "Sari", "Nugroho"]


def personal_data() -> st.SearchStrategy[PersonalData]:
    """Synthetic names, ``08…`` mobile numbers and 16-digit NIKs."""
    return st.builds(
        PersonalData,
        name=st.builds(lambda a, b: f"{a} {b}", st.sampled_from(_GIVEN), st.sampled_from(_FAMILY)),
        phone=st.builds(
            lambda p, rest: f"08{p}{rest}",
            st.sampled_from(["11", "12", "13", "21", "22", "52", "53", "57", "77", "95"]),
            st.text("0123456789", min_size=7, max_size=9),
        ),
        national_id=st.text("0123456789", min_size=16, max_size=16),
    )


def _monitor_ids() -> st.SearchStrategy[str]:
    return st.integers(1, 9999).map(lambda n: f"LLG-{n:04d}")


def monitors(
    *, station: StationCode | str | None = None, with_personal_data: bool = True
) -> st.SearchStrategy[Monitor]:
    """Monitors assigned to ``station`` (any by default)."""
    stations = st.just(StationCode.parse(station)) if station is not None else station_codes()
    personal = personal_data() if with_personal_data else st.none()
    return st.builds(Monitor, id=_monitor_ids(), station=stations, personal=personal)


def _observed(station: StationCode, start: time, end: time) -> st.SearchStrategy[datetime]:
    tz = time_zone_of_province(station.village).tzinfo
    lo = datetime.combine(ELECTION_DAY, start)
    hi = datetime.combine(ELECTION_DAY, end)
    return st.datetimes(min_value=lo, max_value=hi, timezones=st.just(tz))


def _sha256s() -> st.SearchStrategy[str]:
    """A SHA-256 digest as the wire carries it: 64 lowercase hex digits."""
    return st.binary(min_size=32, max_size=32).map(bytes.hex)


def incidents(*, categories: Iterable[str] | None = None) -> st.SearchStrategy[Incident]:
    """Incidents from ``categories`` (the default catalogue by default)."""
    cats = (
        sorted(categories)
        if categories is not None
        else [c.code for c in DEFAULT_INCIDENT_CATEGORIES]
    )
    return st.builds(
        Incident,
        category=st.sampled_from(cats),
        severity=st.integers(1, 4),
        text=st.text(max_size=200),
        media_sha256=st.none() | _sha256s(),
    )


@st.composite
def _situation_reports(
    draw: st.DrawFn, station: PollingStation | None, monitor: str | None
) -> SituationReport:
    st_ = station if station is not None else draw(polling_stations())
    status = draw(st.sampled_from(SecurityStatus))
    found = draw(st.lists(incidents(), max_size=0 if status is SecurityStatus.SAFE else 3))
    return SituationReport(
        report_id=draw(st.uuids()),
        monitor=monitor or draw(_monitor_ids()),
        station=st_.code,
        observed_at=draw(_observed(st_.code, time(6, 0), time(20, 0))),
        stage=draw(st.sampled_from(Stage)),
        status=status,
        incidents=found,
        note=draw(st.text(max_size=100)),
    )


def situation_reports(
    *, station: PollingStation | None = None, monitor: str | None = None
) -> st.SearchStrategy[SituationReport]:
    """Situation reports; incidents only when the status is not ``aman``."""
    return _situation_reports(station, monitor)


# ---------------------------------------------------------------------------------------
# Tally reports
# ---------------------------------------------------------------------------------------

Sections = Literal["any", "all", "votes_only"]


def _split(draw: st.DrawFn, total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` non-negative integers (a random composition)."""
    if parts == 1:
        return [total]
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=parts - 1, max_size=parts - 1)))
    bounds = [0, *cuts, total]
    return [bounds[i + 1] - bounds[i] for i in range(parts)]


def _votes_not_unanimous(draw: st.DrawFn, valid: int, options: Sequence[int]) -> dict[int, int]:
    """Valid votes over ``options`` with at least two options above zero (valid >= 2)."""
    first, second = draw(st.permutations(list(options)))[:2]
    rest = _split(draw, valid - 2, len(options))
    votes = dict(zip(options, rest, strict=True))
    votes[first] += 1
    votes[second] += 1
    return votes


@attrs.frozen
class _Plan:
    """The numbers of a tally before it becomes a report (all hard rules hold)."""

    station: PollingStation
    contest: Contest
    a: tuple[int, int, int]
    b: tuple[int, int, int]
    d: tuple[int, int]
    returned: int
    received: int
    votes: dict[int, int]
    invalid: int

    @property
    def total(self) -> int:
        return sum(self.b)


@st.composite
def _plans(
    draw: st.DrawFn,
    station: PollingStation,
    contest: Contest,
    settings: TallySettings,
    clean: bool,
    turnout: Literal["in_band", "low", "high", "any"] = "in_band",
    unanimous: bool = False,
) -> _Plan:
    """A consistent tally plan; with ``clean`` no soft rule fires either."""
    dpt = station.registered_voters
    reserve = reserve_ballots(dpt, settings.reserve_rate)
    received = dpt + reserve
    # Transfer and special voters vote on reserve ballots: keep them within the reserve.
    room = max(0, min(reserve, MAX_COUNT - dpt))
    a2 = draw(st.integers(0, room))
    a3 = draw(st.integers(0, room - a2))
    returned = draw(st.integers(0, min(3, room - a2 - a3)))
    a4 = dpt + a2 + a3
    low, high = settings.turnout_band
    if turnout == "in_band":
        lo, hi = math.ceil(low * a4 - 1e-9), min(a4, math.floor(high * a4 + 1e-9))
    elif turnout == "low":
        lo, hi = 0, math.ceil(low * a4 - 1e-9) - 1
    elif turnout == "high":
        lo, hi = math.floor(high * a4 + 1e-9) + 1, a4
    else:
        lo, hi = 0, a4
    if unanimous:
        lo = max(lo, settings.unanimous_min_voters + 1)
    if a4 == 0 and turnout in ("in_band", "any") and not unanimous:
        lo = hi = 0
    if lo > hi:
        raise InvalidArgument(
            f"station {station.code.label} (DPT {dpt}) cannot carry a tally with turnout "
            f"{turnout!r}{' and a unanimous result' if unanimous else ''} under {settings}"
        )
    total = draw(st.integers(lo, hi))
    b2 = draw(st.integers(max(0, total - dpt - a3), min(a2, total)))
    b3 = draw(st.integers(max(0, total - dpt - b2), min(a3, total - b2)))
    b1 = total - b2 - b3
    d1 = draw(st.integers(0, min(a4, 20)))
    d2 = draw(st.integers(0, min(d1, total)))
    options = contest.options
    if unanimous:
        invalid = draw(st.integers(0, total - 1))
        winner = draw(st.sampled_from(options))
        votes = dict.fromkeys(options, 0)
        votes[winner] = total - invalid
    elif clean and total > settings.unanimous_min_voters and len(options) >= 2:
        invalid = draw(st.integers(0, total - 2))
        votes = _votes_not_unanimous(draw, total - invalid, options)
    elif clean and total > settings.unanimous_min_voters:
        invalid = total  # one option alone: only an all-invalid count is not unanimous
        votes = dict.fromkeys(options, 0)
    else:
        invalid = draw(st.integers(0, total))
        votes = dict(zip(options, _split(draw, total - invalid, len(options)), strict=True))
    return _Plan(
        station, contest, (dpt, a2, a3), (b1, b2, b3), (d1, d2), returned, received, votes, invalid
    )


def _report(
    plan: _Plan,
    *,
    report_id: uuid.UUID,
    monitor: str,
    observed_at: datetime,
    sections: frozenset[str],
    state_totals: bool,
) -> TallyReport:
    a1, a2, a3 = plan.a
    b1, b2, b3 = plan.b
    total = plan.total
    valid = total - plan.invalid
    return TallyReport(
        report_id=report_id,
        monitor=monitor,
        station=plan.station.code,
        contest=plan.contest.id,
        observed_at=observed_at,
        votes=VoteCounts(plan.votes),
        valid=valid,
        invalid=plan.invalid,
        total=total,
        voters=VoterCounts(a1, a2, a3, a1 + a2 + a3 if state_totals else None)
        if "voters" in sections
        else None,
        voted=VoterCounts(b1, b2, b3, total if state_totals else None)
        if "voted" in sections
        else None,
        disability=Disability(*plan.d) if "disability" in sections else None,
        ballots=Ballots(plan.received, plan.returned, plan.received - plan.returned - total, total)
        if "ballots" in sections
        else None,
    )


_ALL_SECTIONS = frozenset({"voters", "voted", "disability", "ballots"})


@st.composite
def _sections(draw: st.DrawFn, sections: Sections) -> frozenset[str]:
    if sections == "all":
        return _ALL_SECTIONS
    if sections == "votes_only":
        return frozenset()
    chosen = draw(st.frozensets(st.sampled_from(sorted(_ALL_SECTIONS))))
    if "disability" in chosen and draw(st.booleans()):
        chosen |= {"voters", "voted"}
    return chosen


@st.composite
def _tally_reports(
    draw: st.DrawFn,
    station: PollingStation | None,
    contest: Contest | None,
    monitor: str | None,
    settings: TallySettings,
    sections: Sections,
    clean: bool,
) -> TallyReport:
    st_ = station if station is not None else draw(polling_stations())
    ct = contest if contest is not None else draw(contests())
    plan = draw(_plans(st_, ct, settings, clean, "in_band" if clean else "any"))
    report = _report(
        plan,
        report_id=draw(st.uuids()),
        monitor=monitor or draw(_monitor_ids()),
        observed_at=draw(_observed(st_.code, time(13, 0), time(18, 0))),
        sections=draw(_sections(sections)),
        state_totals=draw(st.booleans()),
    )
    if st_.position is not None and draw(st.booleans()):
        report = attrs.evolve(report, position=st_.position)  # sent from the TPS itself
    if draw(st.booleans()):  # with the SHA-256 of the sheet's photo
        report = attrs.evolve(report, sheet_sha256=draw(_sha256s()))
    return report


def tally_reports(
    *,
    station: PollingStation | None = None,
    contest: Contest | None = None,
    monitor: str | None = None,
    settings: TallySettings | None = None,
    sections: Sections = "any",
    clean: bool = False,
    valid: Literal[True] = True,
) -> st.SearchStrategy[TallyReport]:
    """Tally reports for ``station`` and ``contest`` (drawn when not given) that break no
    hard rule, by construction. ``sections`` chooses the optional sections: ``"any"``
    (a random subset), ``"all"`` or ``"votes_only"`` (an SMS-style quick tally). With
    ``clean=True`` no soft rule of ``settings`` fires either. For reports that break a
    rule, use :func:`broken_tally_reports`."""
    if valid is not True:
        raise InvalidArgument(
            "tally_reports(valid=...) only makes valid reports; use broken_tally_reports(rule=...)"
        )
    return _tally_reports(station, contest, monitor, settings or TallySettings(), sections, clean)


# -- breaking one rule ---------------------------------------------------------------------


def _evolve_votes(report: TallyReport, votes: dict[int, int]) -> TallyReport:
    return attrs.evolve(report, votes=VoteCounts(votes))


@st.composite
def _broken(
    draw: st.DrawFn,
    rule: str,
    station: PollingStation | None,
    contest: Contest | None,
    monitor: str | None,
    settings: TallySettings,
) -> TallyReport:
    st_ = (
        station
        if station is not None
        else draw(polling_stations(min_voters=120 if rule in _NEEDS_VOTERS else 0))
    )
    ct = contest if contest is not None else draw(contests())
    turnout: Literal["in_band", "low", "high", "any"] = "in_band"
    if rule == "turnout.outside_band":
        low, _high = settings.turnout_band
        turnout = "low" if low > 0 else "high"
    plan = draw(_plans(st_, ct, settings, True, turnout, unanimous=rule == "votes.unanimous"))
    sections = _ALL_SECTIONS
    if rule == "total.over_capacity":
        sections = frozenset({"ballots"})
    report = _report(
        plan,
        report_id=draw(st.uuids()),
        monitor=monitor or draw(_monitor_ids()),
        observed_at=draw(_observed(st_.code, time(13, 0), time(18, 0))),
        sections=sections,
        state_totals=rule in ("voters.sum_mismatch", "voted.sum_mismatch") or draw(st.booleans()),
    )
    return _BREAKERS[rule](draw, report, plan, settings)


_NEEDS_VOTERS = {"votes.unanimous", "turnout.outside_band", "voted.exceeds_registered"}

Breaker = Callable[[st.DrawFn, TallyReport, "_Plan", TallySettings], TallyReport]


def _nonzero_delta(draw: st.DrawFn, base: int) -> int:
    """A change to ``base`` that keeps it within 0..MAX_COUNT and is never zero."""
    up = MAX_COUNT - base
    steps = (draw(st.integers(1, 9)), -draw(st.integers(1, 9)))
    choices = [d for d in steps if 0 <= base + d <= MAX_COUNT]
    if not choices:
        return 1 if up > 0 else -1
    return choices[draw(st.integers(0, len(choices) - 1))]


def _break_voters_sum(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    assert r.voters is not None
    t = r.voters.computed_total
    return attrs.evolve(r, voters=attrs.evolve(r.voters, total=t + _nonzero_delta(draw, t)))


def _break_voted_sum(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    assert r.voted is not None
    t = r.voted.computed_total
    return attrs.evolve(r, voted=attrs.evolve(r.voted, total=t + _nonzero_delta(draw, t)))


def _break_exceeds(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    """Lower a list's registered count below its voters and move the difference to the
    other list, so that the registered total (and every other rule) is unchanged."""
    assert r.voters is not None
    assert r.voted is not None
    a1, a2, a3 = p.a
    b1, b2, b3 = p.b
    if b2 == 0 and b3 == 0:
        # Nobody voted on DPTb or DPK: move one registered DPT voter … not allowed (DPT is
        # master data). Instead, say the DPTb list had one voter more who is also counted:
        # take one DPT voter and book it on DPTb, whose register we leave short.
        if b1 == 0:
            raise InvalidArgument("nobody voted: no list can exceed its register")
        b1, b2 = b1 - 1, b2 + 1
        a2_new = b2 - 1
        a3_new = a3 + (a2 - a2_new)
    elif b2 > 0:
        a2_new = b2 - 1
        a3_new = a3 + (a2 - a2_new)
    else:
        a3_new = b3 - 1
        a2_new = a2 + (a3 - a3_new)
    voters = VoterCounts(a1, a2_new, a3_new, r.voters.total)
    voted = VoterCounts(b1, b2, b3, r.voted.total)
    return attrs.evolve(r, voters=voters, voted=voted)


def _break_disability(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    assert r.disability is not None
    assert r.voters is not None
    d1, d2 = p.d
    if d1 < MAX_COUNT and draw(st.booleans()) and d1 + 1 <= r.total:
        return attrs.evolve(r, disability=Disability(d1, d1 + 1))
    a4 = r.voters.computed_total
    if a4 >= MAX_COUNT:
        return attrs.evolve(r, disability=Disability(d1, d1 + 1))
    return attrs.evolve(r, disability=Disability(a4 + 1, d2))


def _break_votes_sum(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    votes = dict(r.votes)
    option = draw(st.sampled_from(sorted(votes)))
    votes[option] += _nonzero_delta(draw, votes[option])
    return _evolve_votes(r, votes)


def _break_total_sum(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    return attrs.evolve(r, invalid=r.invalid + _nonzero_delta(draw, r.invalid))


def _break_total_voted(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    """Say one more (or one fewer) DPT voter voted than the count shows."""
    assert r.voted is not None
    assert r.disability is not None
    b1, b2, b3 = p.b
    a1 = p.a[0]
    disability = r.disability
    if b1 < a1:
        b1 += 1
    elif b1 > 0:
        b1 -= 1
        if disability.voted > b1 + b2 + b3:
            disability = Disability(disability.registered, disability.voted - 1)
    else:
        raise InvalidArgument("a station with no DPT voters cannot break total.voted_mismatch")
    stated = None if r.voted.total is None else b1 + b2 + b3
    return attrs.evolve(r, voted=VoterCounts(b1, b2, b3, stated), disability=disability)


def _break_ballots_used(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    b = r.ballots
    assert b is not None
    if b.unused > 0:
        return attrs.evolve(r, ballots=Ballots(b.received, b.returned, b.unused - 1, b.used + 1))
    if b.used > 0:
        return attrs.evolve(r, ballots=Ballots(b.received, b.returned, b.unused + 1, b.used - 1))
    return attrs.evolve(r, ballots=Ballots(b.received + 1, b.returned, b.unused, b.used + 1))


def _break_balance(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    b = r.ballots
    assert b is not None
    returned = b.returned + _nonzero_delta(draw, b.returned)
    return attrs.evolve(r, ballots=attrs.evolve(b, returned=returned))


def _break_dpt(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    assert r.voters is not None
    a1 = r.voters.dpt + 1
    if a1 > MAX_COUNT:
        raise InvalidArgument("station DPT too large to break voters.dpt_mismatch")
    stated = None if r.voters.total is None else a1 + r.voters.dptb + r.voters.dpk
    return attrs.evolve(r, voters=VoterCounts(a1, r.voters.dptb, r.voters.dpk, stated))


def _break_unknown(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    votes = dict(r.votes)
    unknown = max(max(p.contest.options), EMPTY_BOX) + 1
    donor = max(votes, key=lambda n: votes[n])
    moved = draw(st.integers(0, votes[donor]))
    votes[donor] -= moved
    votes[unknown] = moved
    return _evolve_votes(r, votes)


def _break_missing(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    votes = dict(r.votes)
    if len(votes) == 1:
        return attrs.evolve(r, votes=VoteCounts({}), valid=0, invalid=r.total)
    gone = draw(st.sampled_from(sorted(votes)))
    moved = votes.pop(gone)
    heir = draw(st.sampled_from(sorted(votes)))
    votes[heir] += moved
    return _evolve_votes(r, votes)


def _break_capacity(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    """A quick tally (ballots section only) whose total exceeds DPT + the reserve."""
    dpt = p.station.registered_voters
    limit = dpt + reserve_ballots(dpt, s.reserve_rate)
    total = draw(st.integers(limit + 1, min(limit + 50, MAX_COUNT)))
    invalid = draw(st.integers(0, total))
    options = p.contest.options
    votes = dict(zip(options, _split(draw, total - invalid, len(options)), strict=True))
    returned = draw(st.integers(0, 3))
    return attrs.evolve(
        r,
        votes=VoteCounts(votes),
        valid=total - invalid,
        invalid=invalid,
        total=total,
        ballots=Ballots(total + returned, returned, 0, total),
    )


def _break_reserve(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    b = r.ballots
    assert b is not None
    if b.unused > 0 and draw(st.booleans()):
        return attrs.evolve(r, ballots=Ballots(b.received - 1, b.returned, b.unused - 1, b.used))
    return attrs.evolve(r, ballots=Ballots(b.received + 1, b.returned, b.unused + 1, b.used))


def _break_position(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    """Sent from well beyond the settings' distance from the TPS (north or south, towards
    the equator, so the latitude stays valid)."""
    tps = p.station.position
    if tps is None:
        raise InvalidArgument("position.far_from_station needs a station with a position")
    degrees = s.max_distance_m / 111_000 * draw(st.floats(1.2, 20.0)) + 0.01
    latitude = tps.latitude - degrees if tps.latitude > 0 else tps.latitude + degrees
    return attrs.evolve(r, position=Position(latitude, tps.longitude))


def _keep(draw: st.DrawFn, r: TallyReport, p: _Plan, s: TallySettings) -> TallyReport:
    return r  # the plan itself was drawn to break the rule (turnout, unanimity)


_BREAKERS: dict[str, Breaker] = {
    "voters.sum_mismatch": _break_voters_sum,
    "voted.sum_mismatch": _break_voted_sum,
    "voted.exceeds_registered": _break_exceeds,
    "disability.exceeds": _break_disability,
    "votes.sum_mismatch": _break_votes_sum,
    "total.sum_mismatch": _break_total_sum,
    "total.voted_mismatch": _break_total_voted,
    "total.ballots_used_mismatch": _break_ballots_used,
    "ballots.balance_mismatch": _break_balance,
    "voters.dpt_mismatch": _break_dpt,
    "votes.unknown_candidate": _break_unknown,
    "votes.missing_candidate": _break_missing,
    "total.over_capacity": _break_capacity,
    "ballots.reserve_unexpected": _break_reserve,
    "turnout.outside_band": _keep,
    "votes.unanimous": _keep,
    "position.far_from_station": _break_position,
}


def broken_tally_reports(
    *,
    rule: str,
    station: PollingStation | None = None,
    contest: Contest | None = None,
    monitor: str | None = None,
    settings: TallySettings | None = None,
) -> st.SearchStrategy[TallyReport]:
    """Tally reports that break exactly ``rule`` (a code of :data:`BREAKABLE_RULES`).

    For a hard rule, ``rule`` is the only hard violation; for a soft rule, no hard rule is
    broken. Some rules need a station large enough to break them (``votes.unanimous``
    needs more than 50 voters); when the given station cannot, drawing raises
    :class:`hypothesis.errors.InvalidArgument`.
    """
    if rule not in _BREAKERS:
        raise InvalidArgument(f"unknown rule {rule!r}; expected one of {sorted(_BREAKERS)}")
    return _broken(rule, station, contest, monitor, settings or TallySettings())

"""What the exports read from a desk: the contest asked, a region's units (named from the
deployment) and their counts, every figure read through the desk's own queries under the
caller's principal, so the desk decides what the caller may see.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from sipantau_core import (
    Contest,
    Desk,
    PollingStation,
    Principal,
    RegionCode,
    RegionLevel,
    SipantauError,
    StationCode,
    Tally,
    UnknownEntityError,
)
from sipantau_core.access import Action, is_allowed

#: The desk's rule for everything it shows: secret, not for the public.
CONFIDENTIAL_NOTICE = "RAHASIA — bukan untuk konsumsi publik"

Place = RegionCode | StationCode


@attrs.frozen
class Unit:
    """A region or a TPS as the exports show it: its code (dotted for a region, the 13
    digits for a TPS), its name from the deployment and its kind (``nasional``,
    ``provinsi``, ``kota``, ``kabupaten``, ``kecamatan``, ``kelurahan``, ``desa`` or
    ``tps``)."""

    code: str
    name: str
    kind: str


def kind_of(place: Place) -> str:
    """The Indonesian name of the level: a city code 71–99 is a kota, below a kabupaten;
    a village 1xxx a kelurahan, 2xxx a desa (the Kemendagri numbering)."""
    if isinstance(place, StationCode):
        return "tps"
    level = place.level
    if level is RegionLevel.NATION:
        return "nasional"
    if level is RegionLevel.PROVINCE:
        return "provinsi"
    if level is RegionLevel.CITY:
        return "kota" if int(place.segments[1]) >= 71 else "kabupaten"
    if level is RegionLevel.DISTRICT:
        return "kecamatan"
    return "kelurahan" if place.segments[3].startswith("1") else "desa"


def unit_of(desk: Desk, place: Place) -> Unit:
    if isinstance(place, StationCode):
        station = desk.deployment.stations[place]
        return Unit(place.compact, station.name or place.label, "tps")
    return Unit(place.value, desk.deployment.region_name(place), kind_of(place))


def place_of(key: str) -> Place:
    """A place from the key a :class:`~sipantau_core.Tally` names (13 digits or dotted)."""
    if len(key) == 13 and key.isdigit():
        return StationCode.parse(key)
    return RegionCode.parse(key)


def contest_of(desk: Desk, contest: str | None) -> Contest:
    """The contest named, or the desk's only one: the same rule and error codes as the
    desk's queries (``report.unknown_contest``, ``contest.ambiguous``)."""
    contests = desk.deployment.contests
    if contest is not None:
        found = contests.get(contest)
        if found is None:
            raise UnknownEntityError(
                f"the contest named is not in the deployment (known: {sorted(contests)})",
                code="report.unknown_contest",
                message_id="pemilihan yang disebut tidak dikenal",
            )
        return found
    if len(contests) == 1:
        return next(iter(contests.values()))
    raise SipantauError(
        f"this desk runs several contests; name one of {sorted(contests)}",
        code="contest.ambiguous",
    )


def contest_region(desk: Desk, contest: Contest) -> RegionCode:
    """Where the contest is held: its own region, else the desk's."""
    return contest.region if contest.region is not None else desk.deployment.region


def stations_of(desk: Desk, place: Place, contest: Contest) -> list[PollingStation]:
    """The TPS within ``place`` that vote in ``contest``, in code order."""
    if isinstance(place, StationCode):
        found: Iterable[PollingStation] = [desk.deployment.stations[place]]
    else:
        found = desk.deployment.stations_in(place)
    where = contest_region(desk, contest)
    return sorted((s for s in found if where.contains(s.code)), key=lambda s: s.code)


def children_of(desk: Desk, place: Place, contest: Contest) -> list[Place]:
    """The places one level below ``place`` that hold a TPS of the contest: the districts
    of a city, the villages of a district, the TPS of a village; none below a TPS."""
    if isinstance(place, StationCode):
        return []
    stations = stations_of(desk, place, contest)
    if place.level is RegionLevel.VILLAGE:
        return [s.code for s in stations]
    below = RegionLevel(int(place.level) + 1)
    return sorted({s.code.village.at_level(below) for s in stations})


@attrs.frozen
class Breakdown:
    """A region's count and the count of each place one level below it."""

    contest: Contest
    place: Place
    unit: Unit
    tally: Tally
    rows: tuple[tuple[Place, Unit, Tally], ...]


def read_breakdown(
    desk: Desk, region: RegionCode | StationCode | str, *, principal: Principal, contest: str | None
) -> Breakdown:
    """``desk.tally`` of the region, then of each place below it, as ``principal``: the
    desk refuses (and records) what the principal may not read."""
    total = desk.tally(region, principal=principal, contest=contest)
    place = place_of(total.region)
    chosen = desk.deployment.contests[total.contest]
    rows = tuple(
        (child, unit_of(desk, child), desk.tally(child, principal=principal, contest=chosen.id))
        for child in children_of(desk, place, chosen)
    )
    return Breakdown(chosen, place, unit_of(desk, place), total, rows)


def city_parts(
    desk: Desk, region: RegionCode | StationCode | str, principal: Principal
) -> list[RegionCode | StationCode | str]:
    """Where to read a region's TPS a part at a time: its cities when it is the nation or
    a province and ``principal`` may read all of it (status, reports, incidents), in code
    order; ``region`` itself otherwise (the desk then reads it at once, or refuses it
    whole). A city's TPS are a few thousand at most; a country's, 823,236."""
    if isinstance(region, StationCode):
        return [region]
    try:
        code = region if isinstance(region, RegionCode) else RegionCode.parse(str(region))
    except ValueError:
        return [region]
    whole = all(
        is_allowed(principal, action, code)
        for action in (Action.READ_STATUS, Action.READ_REPORTS, Action.READ_INCIDENTS)
    )
    if code.level >= RegionLevel.CITY or not whole:
        return [region]
    stations = desk.deployment.stations_in(code)
    cities = sorted({s.code.village.at_level(RegionLevel.CITY) for s in stations}, key=str)
    return list(cities) or [region]

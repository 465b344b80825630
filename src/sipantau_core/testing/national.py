"""A synthetic national deployment and its election day, for tests at national scale.

:func:`national_stations` lays out a country like Indonesia's 2024 elections: 38
provinces under their real two-digit codes, 514 kabupaten/kota, about 83,000
desa/kelurahan and 823,236 TPS, spread unevenly (Java's provinces hold most TPS), each
TPS with a plausible DPT under the election's cap (600 voters in a Pilkada, 300 in a
general election). :func:`national_deployment` wraps the country, a province or a city
of it in a :class:`~sipantau_core.deployment.Deployment` with one monitor per TPS;
:func:`national_tallies` streams consistent tallies for a share of its TPS, a fraction of
them with an OCR-style misread; :func:`expected_counts` is what a desk
must count from them. Everything is deterministic for a seed, and a city's layout does
not depend on which region is asked for.
"""

from __future__ import annotations

import csv
import json
import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal

from sipantau_core.deployment import Deployment
from sipantau_core.domain import (
    NATION,
    Ballots,
    Candidate,
    Contest,
    Disability,
    Monitor,
    PollingStation,
    RegionCode,
    RegionLevel,
    RiskProfile,
    StationCode,
    TallyReport,
    VoterCounts,
)
from sipantau_core.rules import reserve_ballots

__all__ = [
    "CAPACITY",
    "PROVINCE_CODES",
    "Election",
    "expected_counts",
    "national_deployment",
    "national_stations",
    "national_tallies",
    "write_deployment",
]

Election = Literal["pilkada", "general"]

#: The most voters a TPS may have: 600 in the 2024 Pilkada, 300 in the general election.
CAPACITY: dict[Election, int] = {"pilkada": 600, "general": 300}
_DAY: dict[Election, date] = {"pilkada": date(2024, 11, 27), "general": date(2024, 2, 14)}

#: The 38 provinces by code, with roughly their thousands of TPS in 2024 (the weights).
_PROVINCES: dict[str, int] = {
    "11": 16, "12": 45, "13": 17, "14": 20, "15": 11, "16": 25, "17": 6, "18": 25,
    "19": 4, "21": 7, "31": 29, "32": 140, "33": 117, "34": 11, "35": 120, "36": 33,
    "51": 12, "52": 16, "53": 16, "61": 16, "62": 8, "63": 12, "64": 11, "65": 2,
    "71": 8, "72": 10, "73": 26, "74": 8, "75": 3, "76": 4, "81": 5, "82": 4,
    "91": 4, "92": 2, "93": 2, "94": 5, "95": 6, "96": 2,
}  # fmt: skip
PROVINCE_CODES: tuple[str, ...] = tuple(_PROVINCES)

_NAMESPACE = uuid.UUID("0f6c2b7e-5d3a-4e0b-9a51-13a7c0de2024")
_LOW = RiskProfile()
# An OCR misreading of one digit: every digit has one, and none turns into a leading 0.
_MISREAD = str.maketrans("0123456789", "8772965134")
_VILLAGES_PER_DISTRICT = 12


def _apportion(
    total: int, weights: Sequence[float], lo: int = 1, hi: int | None = None
) -> list[int]:
    """``total`` split over ``weights`` (largest remainder), each part within ``lo..hi``."""
    n = len(weights)
    if total < lo * n or (hi is not None and total > hi * n):
        raise ValueError(f"cannot split {total} into {n} parts of {lo}..{hi}")
    parts = [lo] * n
    free = list(range(n))
    rest = total - lo * n
    while rest:
        wsum = sum(weights[i] for i in free) or float(len(free))
        shares = {i: rest * (weights[i] / wsum if wsum else 1.0) for i in free}
        add = {i: int(shares[i]) for i in free}
        left = rest - sum(add.values())
        for i in sorted(free, key=lambda i: (add[i] - shares[i], i))[:left]:
            add[i] += 1
        for i in free:
            room = add[i] if hi is None else min(add[i], hi - parts[i])
            parts[i] += room
            rest -= room
        free = [i for i in free if hi is None or parts[i] < hi]
    return parts


def _weights(rng: random.Random, n: int, sigma: float) -> list[float]:
    return [rng.lognormvariate(0.0, sigma) for _ in range(n)]


def _check(tps: int, provinces: int, cities: int, villages: int) -> None:
    if not 1 <= provinces <= len(_PROVINCES):
        raise ValueError(f"provinces: {provinces} is not in 1..{len(_PROVINCES)}")
    if not provinces <= cities <= 99 * provinces:
        raise ValueError(f"cities: {cities} is not in {provinces}..{99 * provinces}")
    if not cities <= villages <= tps:
        raise ValueError(f"need cities ({cities}) <= villages ({villages}) <= tps ({tps})")


def _layout(
    tps: int, provinces: int, cities: int, villages: int, seed: int
) -> Iterator[tuple[RegionCode, int, int]]:
    """Every city with its TPS and villages, by code."""
    codes = PROVINCE_CODES[:provinces]
    weights = [float(_PROVINCES[c]) for c in codes]
    city_counts = _apportion(cities, [w**0.5 for w in weights], 1, 99)
    rng = random.Random(f"national/{seed}")
    city_weights = [_weights(rng, n, 0.6) for n in city_counts]
    flat = [w * weights[p] / sum(ws) for p, ws in enumerate(city_weights) for w in ws]
    city_tps = _apportion(tps, flat, 1, 99 * 8999 * 999)
    city_villages = _apportion(villages, city_tps, 1, 99 * 8999)
    i = 0
    for code, n in zip(codes, city_counts, strict=True):
        for c in range(1, n + 1):
            # never more villages than TPS: each village has at least one
            v = min(city_villages[i], city_tps[i])
            yield RegionCode(code).child(c), city_tps[i], v
            i += 1


def _city(
    city: RegionCode, tps: int, villages: int, seed: int, election: Election
) -> Iterator[PollingStation]:
    """One city's stations, by code."""
    rng = random.Random(f"national/{seed}/{city.value}")
    districts = min(99, max(1, round(villages / _VILLAGES_PER_DISTRICT)), villages)
    per_district = _apportion(villages, _weights(rng, districts, 0.4), 1, 8999)
    per_village = _apportion(tps, _weights(rng, villages, 0.5), 1, 999)
    cap = CAPACITY[election]
    mean, spread = (0.8 * cap, 0.12 * cap) if election == "pilkada" else (0.83 * cap, 0.1 * cap)
    k = 0
    for d, nv in enumerate(per_district, 1):
        district = city.child(d)
        for v in range(1001, 1001 + nv):
            village = district.child(v)
            for number in range(1, per_village[k] + 1):
                dpt = min(cap, max(40, round(rng.gauss(mean, spread))))
                code = StationCode(village, number)
                yield PollingStation(code=code, registered_voters=dpt, risk=_LOW, capacity=cap)
            k += 1


def national_stations(
    *,
    tps: int = 823_236,
    provinces: int = 38,
    cities: int = 514,
    villages: int = 83_000,
    election: Election = "pilkada",
    seed: int = 2024,
    region: RegionCode | str | None = None,
) -> list[PollingStation]:
    """The country's TPS by code, or those of ``region`` (a province or city).

    Exactly ``tps`` TPS in exactly ``provinces`` provinces (the first of
    :data:`PROVINCE_CODES`) and ``cities`` kabupaten/kota; ``villages`` desa/kelurahan
    (fewer where a city has more villages than TPS). Codes follow the Kemendagri scheme:
    cities ``01``…, districts ``01``…, villages ``1001``…, TPS ``001``…; each TPS's
    DPT is at most :data:`CAPACITY` of the election."""
    return list(_stations(tps, provinces, cities, villages, election, seed, region))


def _stations(
    tps: int,
    provinces: int,
    cities: int,
    villages: int,
    election: Election,
    seed: int,
    region: RegionCode | str | None,
) -> Iterator[PollingStation]:
    _check(tps, provinces, cities, villages)
    if election not in CAPACITY:
        raise ValueError(f"election: {election!r} is not 'pilkada' or 'general'")
    where = None if region is None else RegionCode.parse(region)
    if where is not None and where.level > RegionLevel.CITY:
        raise ValueError(f"region: {where} is not a province or a city")
    for city, n, v in _layout(tps, provinces, cities, villages, seed):
        if where is None or where.contains(city):
            yield from _city(city, n, v, seed, election)


def national_deployment(
    *,
    tps: int = 823_236,
    provinces: int = 38,
    cities: int = 514,
    villages: int = 83_000,
    election: Election = "pilkada",
    seed: int = 2024,
    region: RegionCode | str | None = None,
) -> Deployment:
    """A deployment of the national layout of :func:`national_stations`: the whole
    country (the desk's region is :data:`~sipantau_core.NATION`, ``ID``), or only
    ``region`` (a province or a city), with one monitor per TPS (``M`` and the 13 digits,
    no personal data), region names (``Indonesia``, ``Provinsi 32``,
    ``Kota/Kabupaten 32.01``, ``Kecamatan 32.01.01``, ``Desa/Kelurahan 32.01.01.1001``)
    and one race ``nasional`` of three pairs."""
    where = NATION if region is None else RegionCode.parse(region)
    stations: dict[StationCode, PollingStation] = {}
    names: dict[RegionCode, str] = {NATION: "Indonesia"} if where.is_nation else {}
    within = None if where.is_nation else where
    for station in _stations(tps, provinces, cities, villages, election, seed, within):
        stations[station.code] = station
        village = station.code.village
        if village not in names:
            names[village] = f"Desa/Kelurahan {village.value}"
            names.setdefault(station.code.district, f"Kecamatan {station.code.district.value}")
    if not stations:
        raise ValueError(f"region: {where} has no TPS in this layout")
    for city in {c.at_level(RegionLevel.CITY) for c in names if c.level == RegionLevel.DISTRICT}:
        names[city] = f"Kota/Kabupaten {city.value}"
        names[city.province] = f"Provinsi {city.province.value}"
    kind = "Pemilihan Gubernur" if election == "pilkada" else "Pemilihan Presiden"
    contest = Contest(
        id="nasional",
        name=f"{kind} (sintetis)",
        candidates=[Candidate(n, f"Paslon {n}") for n in (1, 2, 3)],
    )
    monitors = {f"M{c.compact}": Monitor(id=f"M{c.compact}", station=c) for c in stations}
    return Deployment(
        id="nasional" if where.is_nation else f"nasional-{where.compact}",
        name=f"Desk nasional (sintetis) {where.value}",
        region=where,
        election_day=_DAY[election],
        stations=stations,
        contests={contest.id: contest},
        monitors=monitors,
        region_names=names,
        station_capacity=CAPACITY[election],
    )


def _tally(
    rng: random.Random,
    station: PollingStation,
    contest: Contest,
    monitor: str,
    day: date,
) -> TallyReport:
    """A C.Hasil-KWK where every hard rule holds (the demo's recipe)."""
    dpt = station.registered_voters
    reserve = reserve_ballots(dpt)
    dptb = rng.randint(0, max(0, min(6, reserve // 2)))
    dpk = rng.randint(0, max(0, min(4, reserve - dptb)))
    turnout = min(0.97, max(0.55, rng.gauss(0.78, 0.06)))
    voted = VoterCounts(min(dpt, round(dpt * turnout)), dptb, dpk)
    total = voted.computed_total
    invalid = min(total, max(0, round(rng.gauss(0.021, 0.008) * total)))
    valid = total - invalid
    options = contest.options
    shares = [rng.lognormvariate(0.0, 0.35) * w for w in (1.0, 1.4, 0.9)[: len(options)]]
    votes = dict(zip(options, _apportion(valid, shares, 0), strict=True))
    received = dpt + reserve
    returned = rng.randint(0, min(2, received - total))
    disabled = rng.randint(0, 6)
    zone = station.time_zone.tzinfo
    at = datetime.combine(day, time(14, 0), tzinfo=zone) + timedelta(minutes=rng.randint(0, 150))
    return TallyReport(
        report_id=uuid.uuid5(_NAMESPACE, f"tally/{station.code.compact}"),
        monitor=monitor,
        station=station.code,
        contest=contest.id,
        observed_at=at,
        voters=VoterCounts(dpt, dptb, dpk),
        voted=voted,
        disability=Disability(disabled, rng.randint(0, min(disabled, total))),
        ballots=Ballots(received, returned, received - returned - total, total),
        votes=votes,
        valid=valid,
        invalid=invalid,
        total=total,
    )


def _misread(rng: random.Random, report: TallyReport) -> TallyReport:
    """``report`` with one digit of one pair's votes misread (so their sum breaks)."""
    n = rng.choice(sorted(report.votes))
    text = str(report.votes[n])
    i = rng.randrange(len(text))
    wrong = int(text[:i] + text[i].translate(_MISREAD) + text[i + 1 :])
    return TallyReport(
        report_id=uuid.uuid5(_NAMESPACE, f"tally-ocr/{report.station.compact}"),
        monitor=report.monitor,
        station=report.station,
        contest=report.contest,
        observed_at=report.observed_at,
        voters=report.voters,
        voted=report.voted,
        disability=report.disability,
        ballots=report.ballots,
        votes={**report.votes, n: wrong},
        valid=report.valid,
        invalid=report.invalid,
        total=report.total,
    )


def _tallies(
    deployment: Deployment, share: float, ocr_errors: float, seed: int
) -> Iterator[tuple[TallyReport, bool]]:
    if not (0.0 <= share <= 1.0 and 0.0 <= ocr_errors <= 1.0):
        raise ValueError("share and ocr_errors must be within 0..1")
    rng = random.Random(f"national-tallies/{seed}/{deployment.id}")
    contest = next(iter(deployment.contests.values()))
    monitor_of = {m.station: m.id for m in deployment.monitors.values()}
    for station in deployment.stations_in(deployment.region):
        sent, misread = rng.random() < share, rng.random() < ocr_errors
        monitor = monitor_of.get(station.code)
        if not sent or monitor is None:
            continue
        report = _tally(rng, station, contest, monitor, deployment.election_day)
        yield (_misread(rng, report), True) if misread else (report, False)


def national_tallies(
    deployment: Deployment, *, share: float = 1.0, ocr_errors: float = 0.02, seed: int = 2024
) -> Iterator[TallyReport]:
    """Tallies of the first contest for about ``share`` of the deployment's monitored TPS,
    by code: consistent with the TPS's DPT (every hard rule holds), except about
    ``ocr_errors`` of them, where one digit of one pair's votes is misread (the hard rule
    ``votes.sum_mismatch`` fires). A generator: stream it into ``Desk.submit_many`` in
    chunks at national scale."""
    for report, _ in _tallies(deployment, share, ocr_errors, seed):
        yield report


def expected_counts(
    deployment: Deployment, *, share: float = 1.0, ocr_errors: float = 0.02, seed: int = 2024
) -> dict[str, int]:
    """What a desk counts from :func:`national_tallies` with the same arguments: the sums
    of the tallies that are not misread (``votes.N``, ``valid``, ``invalid``, ``total``),
    with ``stations`` counted and ``misread`` (the tallies a desk flags)."""
    options = next(iter(deployment.contests.values())).options
    out = {f"votes.{n}": 0 for n in options}
    out.update(valid=0, invalid=0, total=0, stations=0, misread=0)
    for report, misread in _tallies(deployment, share, ocr_errors, seed):
        if misread:
            out["misread"] += 1
            continue
        for n in options:
            out[f"votes.{n}"] += report.votes[n]
        out["valid"] += report.valid
        out["invalid"] += report.invalid
        out["total"] += report.total
        out["stations"] += 1
    return out


def write_deployment(deployment: Deployment, path: str | Path) -> Path:
    """Write a synthetic deployment (of :func:`national_deployment`) as a deployment
    directory that :meth:`Deployment.load` and ``sipantau serve`` read: its desk, region
    names, contests and capacity in ``deployment.toml``, ``stations.csv`` (code and DPT)
    and ``monitors.csv`` (no personal data). Schedule, tally settings, risk profiles,
    positions and ``settings`` are not written (the synthetic ones have the defaults)."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    q = json.dumps  # a TOML basic string is a JSON string for these texts
    lines = [
        "[desk]",
        f"id = {q(deployment.id)}",
        f"name = {q(deployment.name)}",
        f"region = {q(deployment.region.value)}",
        f"election_day = {deployment.election_day.isoformat()}",
    ]
    if deployment.station_capacity is not None:
        lines.append(f"station_capacity = {deployment.station_capacity}")
    lines += ["", "[regions]"]
    lines += [f"{q(code.value)} = {q(name)}" for code, name in deployment.region_names.items()]
    for contest in deployment.contests.values():
        lines += ["", "[[contests]]", f"id = {q(contest.id)}", f"name = {q(contest.name)}"]
        if contest.kind is not None:
            lines.append(f"kind = {q(contest.kind.value)}")
        if contest.region is not None:
            lines.append(f"region = {q(contest.region.value)}")
        pairs = ", ".join(
            f"{{number = {c.number}, name = {q(c.name)}}}" for c in contest.candidates
        )
        lines.append(f"candidates = [{pairs}]")
    (root / "deployment.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with (root / "stations.csv").open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["code", "registered_voters"])
        out.writerows(
            (s.code.compact, s.registered_voters) for s in deployment.stations_in(deployment.region)
        )
    with (root / "monitors.csv").open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "station"])
        out.writerows((m.id, m.station.compact) for m in deployment.monitors.values())
    return root

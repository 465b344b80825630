"""The election day of the demo: what every monitor sends, and when.

Deterministic for a seed. For every TPS of a deployment: a situation report at each
stage (with incidents, more often at TPS mapped as high-risk) and a tally copied from a
plausible C.Hasil-KWK; a few tallies carry OCR-style digit errors (a 3 read as an 8), some
of which are corrected later; one report is resent (a duplicate). Tallies sent over HTTP
name the photo of their sheet (``sheet_sha256``) and carry its bytes (``DayEvent.media``):
the sheet as it is, so a misread tally's photo shows the true figures.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Sequence
from datetime import datetime, time, timedelta

import attrs

from sipantau_adapters.demo_sheet import sheet_photo
from sipantau_core.deployment import Deployment
from sipantau_core.domain import (
    Amends,
    Ballots,
    Disability,
    Incident,
    PollingStation,
    Report,
    SecurityStatus,
    SituationReport,
    Stage,
    TallyReport,
    VoterCounts,
)
from sipantau_core.rules import reserve_ballots

__all__ = ["DayEvent", "Scenario", "build_scenario", "expected_totals", "sim_clock_factor"]

NAMESPACE = uuid.UUID("5b0d4e0c-9b4f-4b8e-8f5a-2f8d3c1a7e21")

#: When each stage's report is usually sent (local time) and its spread in minutes.
_STAGE_TIMES = {
    Stage.PREPARATION: (time(6, 30), 20),
    Stage.OPENING: (time(7, 10), 10),
    Stage.VOTING: (time(12, 30), 25),
    Stage.HANDOVER: (time(18, 0), 60),
}
_TALLY_TIME = (time(14, 45), 50)

# An OCR misreading of one digit on the tally sheet.
_DIGIT_SWAPS = {"3": "8", "8": "3", "1": "7", "7": "1", "5": "6", "6": "5", "0": "8"}

_INCIDENT_TEXT = {
    "politik_uang": "Ada laporan pembagian uang di dekat TPS",
    "intimidasi": "Sekelompok orang berkumpul dan menekan pemilih",
    "logistik": "Surat suara terlambat datang",
    "gangguan_tps": "Listrik padam, penghitungan memakai senter",
    "pemilih_tidak_terdaftar": "Beberapa warga tidak ada di DPT",
    "netralitas_asn": "Kepala kelurahan terlihat mengarahkan pemilih",
}


@attrs.frozen
class DayEvent:
    """One thing a monitor sends at ``at`` (local time of the election day)."""

    at: datetime
    monitor: str
    station: str
    report: Report
    channel: str  # "http" or "sms"
    resend: bool = False  # a duplicate of an earlier send
    note: str = ""  # why the demo does this (an OCR error, a correction …)
    media: tuple[bytes, ...] = ()  # the photos the report names (the sheet's)


@attrs.frozen
class Scenario:
    events: tuple[DayEvent, ...]
    sms_monitors: tuple[str, ...]
    offline_monitor: str
    offline_until: datetime
    # The tallies that count in the end (after corrections), by station.
    final_tallies: dict[str, TallyReport]
    ocr_errors: tuple[str, ...]


def _shares(rng: random.Random, district_bias: float) -> float:
    """Paslon 1's share at one TPS (Kota Lubuklinggau 2024: about 31 %)."""
    return min(0.95, max(0.05, rng.gauss(0.314 + district_bias, 0.07)))


def _tally(
    rng: random.Random,
    station: PollingStation,
    contest: str,
    monitor: str,
    at: datetime,
    options: Sequence[int],
    share_1: float,
) -> TallyReport:
    dpt = station.registered_voters
    reserve = reserve_ballots(dpt)
    dptb = rng.randint(0, max(0, min(6, reserve // 2)))
    dpk = rng.randint(0, max(0, min(4, reserve - dptb)))
    turnout = min(0.97, max(0.55, rng.gauss(0.80, 0.06)))
    voted_dpt = min(dpt, round(dpt * turnout))
    voted = VoterCounts(voted_dpt, dptb, dpk)
    total = voted.computed_total
    invalid = min(total, max(0, round(rng.gauss(0.021, 0.008) * total)))
    valid = total - invalid
    votes = {options[0]: round(valid * share_1)}
    rest = valid - votes[options[0]]
    for n in options[1:-1]:
        votes[n] = rng.randint(0, rest)
        rest -= votes[n]
    votes[options[-1]] = rest
    returned = rng.randint(0, 2)
    received = dpt + reserve
    disabled = rng.randint(0, 6)
    return TallyReport(
        report_id=uuid.uuid5(NAMESPACE, f"tally/{station.code.compact}"),
        monitor=monitor,
        station=station.code,
        contest=contest,
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


def _misread(rng: random.Random, report: TallyReport) -> TallyReport | None:
    """The same tally with one digit of one candidate's votes misread, or ``None``."""
    for n in rng.sample(sorted(report.votes), len(report.votes)):
        text = str(report.votes[n])
        positions = [i for i, c in enumerate(text) if c in _DIGIT_SWAPS]
        if not positions:
            continue
        i = rng.choice(positions)
        wrong = int(text[:i] + _DIGIT_SWAPS[text[i]] + text[i + 1 :])
        if wrong == report.votes[n]:
            continue
        votes = dict(report.votes)
        votes[n] = wrong
        return attrs.evolve(
            report,
            report_id=uuid.uuid5(NAMESPACE, f"tally-ocr/{report.station.compact}"),
            votes=votes,
        )
    return None


def _at(day: datetime, when: tuple[time, int], rng: random.Random) -> datetime:
    base = datetime.combine(day.date(), when[0], tzinfo=day.tzinfo)
    return base + timedelta(minutes=rng.gauss(0, when[1] / 2))


def build_scenario(
    deployment: Deployment,
    *,
    seed: int = 2024,
    ocr_error_rate: float = 0.03,
    correction_rate: float = 0.6,
    sms_monitors: int = 2,
    stations: int | None = None,
) -> Scenario:
    """The day for ``deployment`` (its first contest), deterministic for ``seed``.
    ``stations`` limits the number of TPS (a smaller day for tests and CI)."""
    rng = random.Random(seed)
    contest = next(iter(deployment.contests.values()))
    options = contest.options
    chosen = sorted(deployment.stations.values(), key=lambda s: s.code)
    if stations is not None:
        chosen = sorted(rng.sample(chosen, min(stations, len(chosen))), key=lambda s: s.code)
    monitor_of = {m.station: m.id for m in deployment.monitors.values()}
    chosen = [s for s in chosen if s.code in monitor_of]
    bias = {d: rng.gauss(0, 0.04) for d in deployment.districts()}
    events: list[DayEvent] = []
    finals: dict[str, TallyReport] = {}
    ocr: list[str] = []
    sms = tuple(monitor_of[s.code] for s in rng.sample(chosen, min(sms_monitors, len(chosen))))
    offline = monitor_of[rng.choice([s for s in chosen if monitor_of[s.code] not in sms]).code]
    tz = chosen[0].time_zone.tzinfo
    day = datetime.combine(deployment.election_day, time(0, 0), tzinfo=tz)
    categories = sorted(_INCIDENT_TEXT)
    # The TPS whose tally sheet is misread: at least two (one corrected later, one not).
    http_stations = [s for s in chosen if monitor_of[s.code] not in sms]
    n_ocr = min(len(http_stations), max(2, round(ocr_error_rate * len(chosen))))
    misread_at = rng.sample(http_stations, n_ocr)
    corrected = {
        s.code
        for i, s in enumerate(misread_at)
        if i == 0 or (i > 1 and rng.random() < correction_rate)
    }
    misread = {s.code for s in misread_at}
    for station in chosen:
        monitor = monitor_of[station.code]
        channel = "sms" if monitor in sms else "http"
        code = station.code.compact
        risk = 3.0 if station.risk.is_high else 1.0
        for stage, when in _STAGE_TIMES.items():
            at = _at(day, when, rng)
            incidents: list[Incident] = []
            status = SecurityStatus.SAFE
            if rng.random() < 0.025 * risk:
                category = rng.choice(categories)
                severity = min(4, rng.randint(1, 3) + (1 if station.risk.is_high else 0))
                incidents.append(Incident(category, severity, _INCIDENT_TEXT[category]))
                status = SecurityStatus.DISTURBED if severity >= 3 else SecurityStatus.ALERT
            report = SituationReport(
                report_id=uuid.uuid5(NAMESPACE, f"situation/{code}/{stage.value}"),
                monitor=monitor,
                station=station.code,
                observed_at=at,
                stage=stage,
                status=status,
                incidents=incidents,
            )
            events.append(DayEvent(at, monitor, code, report, channel))
        at = _at(day, _TALLY_TIME, rng)
        share = _shares(rng, bias[station.code.district])
        tally = _tally(rng, station, contest.id, monitor, at, options, share)
        media: tuple[bytes, ...] = ()
        if channel == "http":  # a photo of the sheet goes with it (not by SMS)
            media = (sheet_photo(tally),)
            tally = attrs.evolve(tally, sheet_sha256=hashlib.sha256(media[0]).hexdigest())
        wrong = _misread(rng, tally) if station.code in misread else None
        if wrong is not None:
            ocr.append(code)
            events.append(DayEvent(at, monitor, code, wrong, channel, note="ocr", media=media))
            if station.code in corrected:
                fixed = attrs.evolve(
                    tally,
                    amends=Amends(wrong.report_id, 1),
                    observed_at=at + timedelta(minutes=rng.randint(20, 90)),
                )
                events.append(
                    DayEvent(
                        fixed.observed_at,
                        monitor,
                        code,
                        fixed,
                        channel,
                        note="correction",
                        media=media,
                    )
                )
                finals[code] = fixed
        else:
            events.append(DayEvent(at, monitor, code, tally, channel, media=media))
            finals[code] = tally
    # One monitor resends its tally (a flaky network, a second tap).
    resend = next(
        e
        for e in events
        if isinstance(e.report, TallyReport) and e.channel == "http" and e.note == ""
    )
    events.append(attrs.evolve(resend, at=resend.at + timedelta(minutes=3), resend=True))
    events.sort(key=lambda e: (e.at, e.station, e.report.report_id))
    offline_until = datetime.combine(day.date(), time(16, 30), tzinfo=tz)
    return Scenario(tuple(events), sms, offline, offline_until, finals, tuple(ocr))


def expected_totals(scenario: Scenario, options: Sequence[int]) -> dict[str, int]:
    """What the desk must count at the end: the sums of the final tallies."""
    out = {f"votes.{n}": 0 for n in options}
    out.update(valid=0, invalid=0, total=0, stations=0)
    for tally in scenario.final_tallies.values():
        for n in options:
            out[f"votes.{n}"] += tally.votes.get(n, 0)
        out["valid"] += tally.valid
        out["invalid"] += tally.invalid
        out["total"] += tally.total
        out["stations"] += 1
    return out


def sim_clock_factor(
    day_seconds: float, start: time = time(6, 0), end: time = time(20, 0)
) -> float:
    """How many simulated seconds pass per real second to fit the day into ``day_seconds``."""
    span = (
        datetime.combine(datetime.min, end) - datetime.combine(datetime.min, start)
    ).total_seconds()
    return span / max(day_seconds, 1e-3)

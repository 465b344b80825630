"""Generate the reference deployment of the Desk Pilkada Kota Lubuklinggau.

Writes ``deployment.toml``, ``stations.csv``, ``monitors.csv``, ``sample_tallies.jsonl``
and ``sample_tallies.expected.json`` from the real 2019 per-TPS data in
``../shared/data`` (relative to the repository root). Deterministic: a fixed seed and
:class:`random.Random` only, so a second run writes byte-identical files.

    python examples/lubuklinggau/generate.py [--out DIR] [--data DIR]

The generated files are committed; loading the deployment never needs ``../shared``.
This script needs only the standard library (it does not import sipantau), so the
expected verdicts in ``sample_tallies.expected.json`` state what each report was built
to break, independently of the rule engine that the tests run on them.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import random
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SOURCE_CSV = "lubuklinggau_pilpres2019_kawalpemilu.csv"
OFFICIAL_JSON = "official_results.json"

SEED = 20241127
CITY = "16.73"
CITY_COMPACT = "1673"
STATIONS_2024 = 326
#: Registered voters (DPT) of the city in 2024: 134,934 votes / 168,391 = 80.13 % turnout,
#: as in official_results.json.
TOTAL_DPT = 168_391
CAPACITY = 600
#: The most registered voters a village's TPS may carry on average before the allocation
#: gives the village another TPS; leaves room for the per-TPS variation under CAPACITY.
MAX_AVERAGE = 585
RESERVE_RATE_PER_MILLE = 25  # 2.5 %
TURNOUT_BAND = (0.4, 1.0)
UNANIMOUS_MIN_VOTERS = 50
CONTEST = "walikota"
TALLY_SCHEMA = "sipantau.tally/1"
WIB = timezone(timedelta(hours=7))
ELECTION_DAY = date(2024, 11, 27)
#: Namespace of the sample reports' ids: uuid5(TALLY_NAMESPACE, station code).
TALLY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://sipantau.invalid/examples/lubuklinggau")

#: Kecamatan in Kemendagri order: (name in the 2019 data, official name).
DISTRICTS: tuple[tuple[str, str], ...] = (
    ("LUBUK LINGGAU BARAT I", "Lubuklinggau Barat I"),
    ("LUBUK LINGGAU TIMUR I", "Lubuklinggau Timur I"),
    ("LUBUK LINGGAU SELATAN I", "Lubuklinggau Selatan I"),
    ("LUBUK LINGGAU UTARA I", "Lubuklinggau Utara I"),
    ("LUBUK LINGGAU BARAT II", "Lubuklinggau Barat II"),
    ("LUBUK LINGGAU TIMUR II", "Lubuklinggau Timur II"),
    ("LUBUK LINGGAU SELATAN II", "Lubuklinggau Selatan II"),
    ("LUBUK LINGGAU UTARA II", "Lubuklinggau Utara II"),
)
#: A plausible centre (latitude, longitude) for each kecamatan, all within about 5 km of
#: the city centre (-3.29, 102.86): west, east, south, north as the names say.
DISTRICT_CENTRES: tuple[tuple[float, float], ...] = (
    (-3.2880, 102.8350),  # Barat I
    (-3.2900, 102.8760),  # Timur I
    (-3.3250, 102.8600),  # Selatan I
    (-3.2520, 102.8450),  # Utara I
    (-3.3020, 102.8480),  # Barat II
    (-3.3020, 102.8720),  # Timur II
    (-3.3200, 102.8830),  # Selatan II
    (-3.2650, 102.8700),  # Utara II
)
KM_LAT = 1 / 111.32  # degrees of latitude per km
KM_LON = 1 / (111.32 * math.cos(math.radians(3.29)))  # degrees of longitude per km

RISK_INDICATORS = ("keamanan", "aksesibilitas", "kejadian_lalu", "logistik", "jaringan")

# Synthetic names: random combinations of common given and family names. Combinations
# that are the name of a known public figure are refused (BLOCKED).
MALE_GIVEN = (
    "Ahmad", "Agus", "Andi", "Arif", "Bambang", "Budi", "Dedi", "Dimas", "Doni", "Edi",
    "Fajar", "Ferdi", "Gilang", "Hadi", "Hendra", "Heru", "Ilham", "Imam", "Irfan", "Iwan",
    "Jefri", "Kurnia", "Lukman", "Muhammad", "Nanda", "Oki", "Rahmat", "Reza", "Rian", "Rizki",
    "Robi", "Rudi", "Sandi", "Syahrul", "Taufik", "Teguh", "Wahyu", "Yogi", "Yudi", "Zulkifli",
)  # fmt: skip
FEMALE_GIVEN = (
    "Ani", "Ayu", "Desi", "Dewi", "Dian", "Eka", "Elsa", "Erni", "Fitri", "Hesti",
    "Ika", "Indah", "Intan", "Lia", "Lina", "Maya", "Mega", "Nia", "Novi", "Nurul",
    "Putri", "Rahma", "Ratna", "Reni", "Rina", "Rini", "Sari", "Siti", "Sri", "Tari",
    "Tika", "Vina", "Wati", "Winda", "Yanti", "Yuli", "Yulia", "Yuni",
)  # fmt: skip
MALE_FAMILY = (
    "Saputra", "Pratama", "Kurniawan", "Hidayat", "Firmansyah", "Ramadhan", "Syahputra",
    "Wijaya", "Permana", "Hermawan", "Irawan", "Nugraha", "Prasetyo", "Kusuma", "Maulana",
    "Akbar", "Fauzi", "Effendi", "Darmawan", "Mahendra", "Putra", "Alamsyah", "Syafei",
)  # fmt: skip
FEMALE_FAMILY = (
    "Saputri", "Lestari", "Wulandari", "Anggraini", "Rahmawati", "Handayani", "Novitasari",
    "Puspitasari", "Oktaviani", "Safitri", "Amelia", "Yuliani", "Kurniasih", "Susanti",
    "Maharani", "Fitriani", "Agustina", "Ramadhani", "Pertiwi", "Febriani", "Septiani",
    "Marlina", "Andriani",
)  # fmt: skip
BLOCKED = frozenset({"Ayu Utami", "Dewi Lestari", "Hendra Wijaya", "Maya Septiani"})
#: Indonesian mobile prefixes (Telkomsel, Indosat, XL, Axis, Tri).
PHONE_PREFIXES = (
    "0811", "0812", "0813", "0821", "0822", "0823", "0851", "0852", "0853",
    "0814", "0815", "0816", "0855", "0856", "0857", "0858",
    "0817", "0818", "0819", "0859", "0877", "0878", "0831", "0838", "0895", "0896",
)  # fmt: skip


# -- the 2019 villages ---------------------------------------------------------------------


@dataclass
class Village:
    district: int  # 1..8
    code: str  # 16.73.01.1001
    name: str  # Air Kuti
    tps_2019: int
    dpt_2019: int
    centre: tuple[float, float] = (0.0, 0.0)
    dpt: int = 0
    tps: int = 0


@dataclass
class Station:
    code: str  # 13 digits
    village: Village
    number: int
    dpt: int
    latitude: float = 0.0
    longitude: float = 0.0
    risk_level: str = "low"
    risk_indicators: tuple[str, ...] = ()
    monitor: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def title(name: str) -> str:
    """``JAWA KANAN SS`` → ``Jawa Kanan SS``, ``BELALAU II`` → ``Belalau II``."""
    keep = {"I", "II", "III", "IV", "SS"}
    return " ".join(w if w in keep else w.capitalize() for w in name.split())


def read_villages(data: Path) -> list[Village]:
    """The villages of the 2019 data, numbered 1001, 1002 … within each kecamatan in the
    order of the source's village ids."""
    districts = {raw: i for i, (raw, _) in enumerate(DISTRICTS, start=1)}
    names: dict[tuple[int, int], str] = {}
    tps: dict[tuple[int, int], int] = {}
    dpt: dict[tuple[int, int], int] = {}
    with (data / SOURCE_CSV).open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            key = (districts[row["kecamatan"]], int(row["kel_id"]))
            names[key] = row["kelurahan"]
            tps[key] = tps.get(key, 0) + 1
            dpt[key] = dpt.get(key, 0) + int(row["dpt"])
    villages: list[Village] = []
    serial: dict[int, int] = {}
    for key in sorted(names):
        district = key[0]
        serial[district] = serial.get(district, 1000) + 1
        code = f"{CITY}.{district:02d}.{serial[district]}"
        villages.append(Village(district, code, title(names[key]), tps[key], dpt[key]))
    return villages


def largest_remainder(weights: Sequence[float], total: int, minimum: int = 0) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (Hamilton's method), each part at least
    ``minimum``: whole quotas first, the rest to the largest fractions."""
    s = sum(weights)
    quotas = [total * w / s for w in weights]
    parts = [max(minimum, math.floor(q)) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (parts[i] - quotas[i], i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def allocate(villages: list[Village], total_dpt: int) -> None:
    """Each village's 2024 DPT (2019 DPT scaled) and number of TPS (in proportion to its
    2019 TPS, at least one)."""
    dpts = largest_remainder([v.dpt_2019 for v in villages], total_dpt)
    tps = largest_remainder([v.tps_2019 for v in villages], STATIONS_2024, minimum=1)
    for v, d, n in zip(villages, dpts, tps, strict=True):
        v.dpt, v.tps = d, n

    def average(v: Village, n: int) -> float:
        return v.dpt / n

    # Repair: a village whose TPS would carry too many voters on average takes a TPS from
    # the village that can best spare one.
    while True:
        crowded = max(villages, key=lambda v: (average(v, v.tps), v.code))
        if average(crowded, crowded.tps) <= MAX_AVERAGE:
            break
        donors = [v for v in villages if v.tps > 1 and v is not crowded]
        donor = min(donors, key=lambda v: (average(v, v.tps - 1), v.code))
        if average(donor, donor.tps - 1) > MAX_AVERAGE:
            raise SystemExit("cannot place every village under the TPS capacity")
        donor.tps -= 1
        crowded.tps += 1


def split_dpt(rng: random.Random, total: int, n: int) -> list[int]:
    """``total`` voters over ``n`` TPS with some variation, each at most CAPACITY."""
    weights = [rng.uniform(0.85, 1.15) for _ in range(n)]
    parts = largest_remainder(weights, total)
    while max(parts) > CAPACITY:
        i = parts.index(max(parts))
        j = parts.index(min(parts))
        move = min(parts[i] - CAPACITY, CAPACITY - parts[j])
        parts[i] -= move
        parts[j] += move
    return parts


def offset(
    rng: random.Random, centre: tuple[float, float], radius_km: float
) -> tuple[float, float]:
    r = radius_km * math.sqrt(rng.random())
    a = rng.uniform(0, 2 * math.pi)
    return centre[0] + r * math.sin(a) * KM_LAT, centre[1] + r * math.cos(a) * KM_LON


def build_stations(rng: random.Random, villages: list[Village]) -> list[Station]:
    stations: list[Station] = []
    for v in villages:
        v.centre = offset(rng, DISTRICT_CENTRES[v.district - 1], 1.4)
        for number, dpt in enumerate(split_dpt(rng, v.dpt, v.tps), start=1):
            lat, lon = offset(rng, v.centre, 0.35)
            code = v.code.replace(".", "") + f"{number:03d}"
            stations.append(Station(code, v, number, dpt, round(lat, 6), round(lon, 6)))
    # TPS rawan: about 70 % low, 22 % medium, 8 % high.
    n = len(stations)
    high, medium = round(n * 0.08), round(n * 0.22)
    order = rng.sample(range(n), n)
    for rank, i in enumerate(order):
        s = stations[i]
        if rank < high:
            s.risk_level = "high"
            chosen = rng.sample(RISK_INDICATORS, rng.randint(2, 4))
        elif rank < high + medium:
            s.risk_level = "medium"
            chosen = rng.sample(RISK_INDICATORS, rng.randint(1, 2))
        else:
            continue
        s.risk_indicators = tuple(x for x in RISK_INDICATORS if x in chosen)
    return stations


# -- monitors ------------------------------------------------------------------------------


def build_monitors(rng: random.Random, stations: list[Station]) -> list[dict[str, str]]:
    names: set[str] = set()
    phones: set[str] = set()
    niks: set[str] = set()
    first, last = date(1966, 1, 1).toordinal(), date(2004, 12, 31).toordinal()
    out: list[dict[str, str]] = []
    for i, s in enumerate(stations, start=1):
        female = rng.random() < 0.45
        while True:
            if female:
                name = f"{rng.choice(FEMALE_GIVEN)} {rng.choice(FEMALE_FAMILY)}"
            else:
                name = f"{rng.choice(MALE_GIVEN)} {rng.choice(MALE_FAMILY)}"
            if name not in names and name not in BLOCKED:
                break
        names.add(name)
        while True:
            phone = rng.choice(PHONE_PREFIXES) + "".join(
                str(rng.randrange(10)) for _ in range(rng.choice((7, 8)))
            )
            if phone not in phones:
                break
        phones.add(phone)
        while True:
            born = date.fromordinal(rng.randint(first, last))
            day = born.day + (40 if female else 0)
            nik = (
                f"{CITY_COMPACT}{s.village.district:02d}{day:02d}{born.month:02d}"
                f"{born.year % 100:02d}{rng.randint(1, 40):04d}"
            )
            if nik not in niks:
                break
        niks.add(nik)
        s.monitor = f"LLG-{i:04d}"
        out.append({"id": s.monitor, "station": s.code, "name": name, "phone": phone,
                    "national_id": nik})  # fmt: skip
    return out


# -- sample tallies ------------------------------------------------------------------------


def reserve(dpt: int) -> int:
    """2.5 % of the DPT, rounded up (surat suara cadangan)."""
    return -(-dpt * RESERVE_RATE_PER_MILLE // 1000)


def consistent_tally(rng: random.Random, s: Station, with_totals: bool) -> dict[str, Any]:
    dpt = s.dpt
    dptb, dpk = rng.choice((0, 0, 1, 2, 3, 4)), rng.choice((0, 0, 1, 2, 3, 5))
    voted_dpt = round(dpt * rng.uniform(0.72, 0.88))
    voted_dptb = dptb - rng.choice((0, 0, 1)) if dptb else 0
    voted_dpk = dpk
    total = voted_dpt + voted_dptb + voted_dpk
    invalid = round(total * rng.uniform(0.01, 0.035))
    valid = total - invalid
    share_2 = min(0.95, max(0.35, rng.gauss(0.686, 0.07)))
    v2 = round(valid * share_2)
    v1 = valid - v2
    registered_disabled = min(rng.choice((0, 1, 2, 2, 3, 4, 6)), dpt + dptb + dpk)
    voted_disabled = max(0, registered_disabled - rng.choice((0, 0, 1, 2)))
    received = dpt + reserve(dpt)
    returned = rng.choice((0, 0, 0, 1, 1, 2, 3))
    unused = received - returned - total
    assert unused >= 0, s.code
    voters: dict[str, int] = {"dpt": dpt, "dptb": dptb, "dpk": dpk}
    voted: dict[str, int] = {"dpt": voted_dpt, "dptb": voted_dptb, "dpk": voted_dpk}
    if with_totals:
        voters["total"] = dpt + dptb + dpk
        voted["total"] = total
    return {
        "schema": TALLY_SCHEMA,
        "report_id": str(uuid.uuid5(TALLY_NAMESPACE, s.code)),
        "station": s.code,
        "contest": CONTEST,
        "monitor": s.monitor,
        "observed_at": "",
        "voters": voters,
        "voted": voted,
        "disability": {"registered": registered_disabled, "voted": voted_disabled},
        "ballots": {"received": received, "returned": returned, "unused": unused, "used": total},
        "votes": {"1": v1, "2": v2},
        "valid": valid,
        "invalid": invalid,
        "total": total,
    }


def digit_typo(n: int) -> int:
    """A typing slip: the last two digits swapped, or the last digit one off."""
    text = str(n)
    if len(text) >= 2 and text[-1] != text[-2]:
        return int(text[:-2] + text[-1] + text[-2])
    return n + 1 if text[-1] != "9" else n - 1


def apply_scenario(name: str, t: dict[str, Any]) -> list[str]:
    """Break ``t`` in the way ``name`` says; return the codes the checker should report."""
    votes: dict[str, int] = t["votes"]
    if name == "votes.sum_mismatch":
        # One candidate's votes typed with two digits swapped; the totals stay right.
        votes["2"] = digit_typo(votes["2"])
        return ["votes.sum_mismatch"]
    if name == "total.sum_mismatch":
        # The invalid votes mistyped: valid + invalid no longer make the total.
        t["invalid"] = digit_typo(t["invalid"]) if t["invalid"] >= 10 else t["invalid"] + 10
        return ["total.sum_mismatch"]
    if name == "total.over_capacity":
        # A partial sheet (sections I.A, IV, V) where 2's votes were read 300 too high and
        # carried into the valid and total votes: more votes than voters on the lists.
        votes["2"] += 300
        t["valid"] += 300
        t["total"] += 300
        voters = t["voters"]
        voters.pop("total", None)
        for key in ("voted", "disability", "ballots"):
            del t[key]
        # Turnout above 100 % comes with it as a soft warning.
        return ["total.over_capacity", "turnout.outside_band"]
    if name == "ballots.balance_mismatch":
        # Ten unused ballots too many counted: the ballots do not balance.
        t["ballots"]["unused"] += 10
        return ["ballots.balance_mismatch"]
    if name == "voters.dpt_mismatch":
        # The DPT copied from an older list: it differs from the station's DPT.
        voters = t["voters"]
        voters["dpt"] += 7
        if "total" in voters:
            voters["total"] += 7
        return ["voters.dpt_mismatch"]
    if name == "votes.unknown_candidate":
        # Votes entered under a third pair that is not on this ballot.
        votes["2"] -= 3
        votes["3"] = 3
        return ["votes.unknown_candidate"]
    if name == "quick":
        # A quick SMS tally: only the votes and the totals. Consistent.
        for key in ("voters", "voted", "disability", "ballots"):
            del t[key]
        return []
    if name == "votes.unanimous":
        # Every valid vote for one pair at a TPS of several hundred voters: soft warning.
        votes["2"] += votes["1"]
        votes["1"] = 0
        return ["votes.unanimous"]
    raise ValueError(name)


SCENARIOS = (
    "votes.sum_mismatch",
    "total.sum_mismatch",
    "total.over_capacity",
    "ballots.balance_mismatch",
    "voters.dpt_mismatch",
    "votes.unknown_candidate",
    "quick",
    "votes.unanimous",
)
SAMPLE_SIZE = 40


def build_tallies(
    rng: random.Random, stations: list[Station]
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    chosen = rng.sample(stations, SAMPLE_SIZE)
    start = datetime(2024, 11, 27, 13, 30, tzinfo=WIB)
    minutes = [rng.randint(0, 150) for _ in chosen]
    reports: list[tuple[datetime, str, dict[str, Any], list[str]]] = []
    for i, s in enumerate(chosen):
        t = consistent_tally(rng, s, with_totals=i % 2 == 0)
        codes = apply_scenario(SCENARIOS[i], t) if i < len(SCENARIOS) else []
        at = start + timedelta(minutes=minutes[i])
        t["observed_at"] = at.isoformat()
        reports.append((at, s.code, t, sorted(codes)))
    reports.sort(key=lambda r: (r[0], r[1]))
    expected = {str(r[2]["report_id"]): r[3] for r in reports}
    return [r[2] for r in reports], expected


# -- writing -------------------------------------------------------------------------------


def toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def deployment_toml(villages: list[Village], official: dict[str, Any]) -> str:
    result = official["pilkada_2024_kota_lubuklinggau_walikota"]
    lines = [
        "# Desk Pilkada Kota Lubuklinggau: the reference deployment of sipantau.",
        "# Generated by generate.py; edit that script, not this file.",
        f"# {len(villages)} kelurahan and {STATIONS_2024} TPS; DPT {TOTAL_DPT:,} "
        f"({result['total_votes']:,} votes at {result['turnout_of_dpt']:.2%} turnout).",
        "",
        "[desk]",
        'id = "lubuklinggau"',
        'name = "Desk Pilkada Kota Lubuklinggau"',
        f'region = "{CITY}"',
        f"election_day = {ELECTION_DAY.isoformat()}",
        f"station_capacity = {CAPACITY}",
        "",
        "[tally]",
        f"turnout_band = [{TURNOUT_BAND[0]}, {TURNOUT_BAND[1]}]",
        f"reserve_rate = {RESERVE_RATE_PER_MILLE / 1000}",
        f"unanimous_min_voters = {UNANIMOUS_MIN_VOTERS}",
        "",
        "[regions]",
        '"16" = "Sumatera Selatan"',
        f'"{CITY}" = "Kota Lubuklinggau"',
    ]
    for d, (_, official_name) in enumerate(DISTRICTS, start=1):
        lines.append(f'"{CITY}.{d:02d}" = {toml_string(official_name)}')
        for v in villages:
            if v.district == d:
                lines.append(f'"{v.code}" = {toml_string(v.name)}')
    lines += [
        "",
        "[[contests]]",
        f'id = "{CONTEST}"',
        'kind = "mayor"',
        f'region = "{CITY}"',
        'name = "Pemilihan Wali Kota dan Wakil Wali Kota Lubuklinggau 2024"',
        'candidates = [{number = 1, name = "Paslon 1"}, {number = 2, name = "Paslon 2"}]',
        "",
        "[settings]",
        "# Free-form settings of the desk; later features add their keys here.",
        "",
    ]
    return "\n".join(lines)


STATIONS_HEADER = (
    "code", "name", "registered_voters", "latitude", "longitude", "risk_level", "risk_indicators",
)  # fmt: skip


def station_row(s: Station) -> tuple[object, ...]:
    return (
        s.code,
        f"TPS {s.number:03d} Kel. {s.village.name}",
        s.dpt,
        f"{s.latitude:.6f}",
        f"{s.longitude:.6f}",
        s.risk_level,
        ";".join(s.risk_indicators),
    )


def csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def generate(data: Path) -> dict[str, str]:
    """The generated files, by name."""
    official = json.loads((data / OFFICIAL_JSON).read_text(encoding="utf-8"))
    result = official["pilkada_2024_kota_lubuklinggau_walikota"]
    assert result["tps"] == STATIONS_2024
    # The DPT total: 134,934 votes at 80.13 % turnout of DPT.
    total_dpt = TOTAL_DPT
    assert round(result["total_votes"] / total_dpt, 4) == result["turnout_of_dpt"]
    rng = random.Random(SEED)
    villages = read_villages(data)
    allocate(villages, total_dpt)
    stations = build_stations(rng, villages)
    assert len(stations) == STATIONS_2024
    monitors = build_monitors(rng, stations)
    tallies, expected = build_tallies(rng, stations)
    return {
        "deployment.toml": deployment_toml(villages, official),
        "stations.csv": csv_text(STATIONS_HEADER, [station_row(s) for s in stations]),
        "monitors.csv": csv_text(
            ("id", "station", "name", "phone", "national_id"),
            [tuple(m.values()) for m in monitors],
        ),
        "sample_tallies.jsonl": "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tallies),
        "sample_tallies.expected.json": json.dumps(expected, indent=2) + "\n",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: here)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data")
    args = parser.parse_args(argv)
    if not (args.data / SOURCE_CSV).is_file():
        print(f"generate.py: {args.data / SOURCE_CSV} not found", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in generate(args.data).items():
        with (args.out / name).open("w", encoding="utf-8", newline="") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

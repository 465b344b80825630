"""The tally rules against real data: the 2024 presidential election in DKI Jakarta.

``dki_pilpres2024_sirekap.csv`` (/work/shared/data, see its README) holds 30,766 TPS from
the official count site's snapshot, with its real errors. Each row with votes is mapped to
a wire payload and read with :func:`parse_report`; the codes :func:`check_tally` gives are
compared, row by row, with codes computed here independently by plain integer arithmetic
on the CSV values.

Mapping decisions:

- A row "has votes" when all three ``paslon_*`` cells are filled.
- ``valid``/``invalid``/``total`` are required by a tally report: rows with votes where any
  of ``suara_sah``/``suara_tidak_sah``/``suara_total`` is empty are **skipped** (counted).
  Nothing is invented for them (e.g. valid = sum of the votes would hide the very error
  the rules look for).
- The voted section is ``VoterCounts(pengguna_dpt, pengguna_dptb, pengguna_dpk,
  total=pengguna_total)`` when all four cells are filled, else it is left out. There is no
  voters section (the data has no registered DPTb/DPK), no disability and no ballots.
- The station is ``PollingStation(kode_tps, registered_voters=dpt, capacity=None)``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import pytest

from sipantau_core import (
    Candidate,
    Contest,
    PayloadError,
    PollingStation,
    TallyReport,
    TallySettings,
    TimeZone,
    Verdict,
    check_tally,
    parse_report,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CSV = DATA / "dki_pilpres2024_sirekap.csv"

PASLON = ("paslon_1", "paslon_2", "paslon_3")
VOTED = ("pengguna_dpt", "pengguna_dptb", "pengguna_dpk", "pengguna_total")
TOTALS = ("suara_sah", "suara_tidak_sah", "suara_total")
NUMERIC = (*PASLON, "dpt", *VOTED, *TOTALS)

CONTEST = Contest(
    id="presiden",
    candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2"), Candidate(3, "Paslon 3")],
)
SETTINGS = TallySettings(turnout_band=(0.3, 1.0))  # unanimous_min_voters: the default 50
OBSERVED_AT = datetime(2024, 2, 14, 17, 0, tzinfo=TimeZone.WIB.tzinfo)
LIMIT = 10_000  # the domain's MAX_COUNT, restated: the test does not take it from the code

# Facts of the snapshot (the file is never edited).
ROWS = 30_766
ROWS_WITH_VOTES = 22_511
ROWS_WITH_VOTES_NO_TOTALS = 8_913


def _int(cell: str) -> int | None:
    return int(cell) if cell != "" else None


def wire(row: Mapping[str, str]) -> dict[str, Any]:
    """The wire payload (schema sipantau.tally/1) of a row with votes and totals."""
    payload: dict[str, Any] = {
        "schema": "sipantau.tally/1",
        "report_id": str(uuid5(NAMESPACE_URL, row["kode_tps"])),
        "monitor": "DKI-TEST",
        "station": row["kode_tps"],
        "contest": "presiden",
        "observed_at": OBSERVED_AT.isoformat(),
        "votes": {str(i): _int(row[f"paslon_{i}"]) for i in (1, 2, 3)},
        "valid": _int(row["suara_sah"]),
        "invalid": _int(row["suara_tidak_sah"]),
        "total": _int(row["suara_total"]),
    }
    if all(row[c] != "" for c in VOTED):
        dpt, dptb, dpk, total = (_int(row[c]) for c in VOTED)
        payload["voted"] = {"dpt": dpt, "dptb": dptb, "dpk": dpk, "total": total}
    return payload


def invalid_independently(row: Mapping[str, str]) -> bool:
    """A row whose payload must be refused: a count above 10,000, or a TPS code that is
    not 13 digits with a TPS number 001-999."""
    cells = [*PASLON, *TOTALS, *(VOTED if all(row[c] != "" for c in VOTED) else ())]
    if any(int(row[c]) > LIMIT for c in cells):
        return True
    code = row["kode_tps"]
    return not (re.fullmatch(r"\d{13}", code) and int(code[10:]) >= 1)


def expected_codes(row: Mapping[str, str]) -> set[str]:
    """The codes of a row under SETTINGS, from the CSV values alone (not rules.py)."""
    p1, p2, p3 = (int(row[c]) for c in PASLON)
    sah, tidak_sah, total = (int(row[c]) for c in TOTALS)
    dpt = int(row["dpt"])
    has_voted = all(row[c] != "" for c in VOTED)
    codes: set[str] = set()
    if p1 + p2 + p3 != sah:
        codes.add("votes.sum_mismatch")
    if sah + tidak_sah != total:
        codes.add("total.sum_mismatch")
    if has_voted:
        u_dpt, u_dptb, u_dpk, u_total = (int(row[c]) for c in VOTED)
        voted = u_dpt + u_dptb + u_dpk
        if u_total != voted:
            codes.add("voted.sum_mismatch")
        if total != voted:
            codes.add("total.voted_mismatch")
        # No voters section: the voters from DPT + DPTb + DPK are the capacity basis.
        capacity = voted
    else:
        voted = total
        capacity = dpt + (dpt * 25 + 999) // 1000  # DPT + 2.5 % reserve, rounded up
    if total > capacity:
        codes.add("total.over_capacity")
    # Turnout = voted / station DPT, in [0.3, 1.0] (exact: 10 * voted >= 3 * dpt). A DPT
    # of 0 gives no turnout (no ratio to compare), so the row is not flagged.
    if dpt > 0 and not (10 * voted >= 3 * dpt and voted <= dpt):
        codes.add("turnout.outside_band")
    if total > 50 and sah > 0 and sah in (p1, p2, p3):
        codes.add("votes.unanimous")
    return codes


HARD = {
    "votes.sum_mismatch",
    "total.sum_mismatch",
    "voted.sum_mismatch",
    "total.voted_mismatch",
    "total.over_capacity",
}


@dataclass
class Checked:
    row: dict[str, str]
    report: TallyReport
    station: PollingStation
    verdict: Verdict
    expected: set[str]


@dataclass
class Dki:
    rows: list[dict[str, str]]
    with_votes: list[dict[str, str]] = field(default_factory=list)
    skipped_no_totals: list[dict[str, str]] = field(default_factory=list)
    refused: list[tuple[dict[str, str], PayloadError]] = field(default_factory=list)
    checked: list[Checked] = field(default_factory=list)


@pytest.fixture(scope="module")
def dki() -> Dki:
    if not CSV.is_file():  # the shared data sits beside the checkout, in CI too
        pytest.fail(f"real data not found at {CSV}: put the shared data directory there")
    with CSV.open(newline="", encoding="utf-8") as f:
        data = Dki(rows=list(csv.DictReader(f)))
    for row in data.rows:
        if not all(row[c] != "" for c in PASLON):
            continue
        data.with_votes.append(row)
        if not all(row[c] != "" for c in TOTALS):
            data.skipped_no_totals.append(row)
            continue
        try:
            report = parse_report(wire(row))
        except PayloadError as e:
            data.refused.append((row, e))
            continue
        assert isinstance(report, TallyReport)
        station = PollingStation(
            code=row["kode_tps"], registered_voters=int(row["dpt"]), capacity=None
        )
        verdict = check_tally(report, station=station, contest=CONTEST, settings=SETTINGS)
        data.checked.append(Checked(row, report, station, verdict, expected_codes(row)))
    return data


def test_the_snapshot_and_what_is_mapped(dki: Dki) -> None:
    assert len(dki.rows) == ROWS
    assert len(dki.with_votes) == ROWS_WITH_VOTES
    assert len(dki.skipped_no_totals) == ROWS_WITH_VOTES_NO_TOTALS
    assert len(dki.checked) + len(dki.refused) == ROWS_WITH_VOTES - ROWS_WITH_VOTES_NO_TOTALS
    # Every mapped row has the numbers the test relies on: all cells are whole numbers and
    # the DPT of the station is known.
    for c in dki.checked:
        assert all(c.row[k] == "" or c.row[k].isdigit() for k in NUMERIC), c.row
        assert c.row["dpt"] != ""
    print(
        f"\nDKI: {len(dki.rows)} rows, {len(dki.with_votes)} with votes, "
        f"{len(dki.skipped_no_totals)} skipped (no valid/invalid/total), "
        f"{len(dki.checked)} parsed, {len(dki.refused)} refused"
    )


def test_payload_errors_are_exactly_the_invalid_rows(dki: Dki) -> None:
    mapped = [row for row in dki.with_votes if all(row[c] != "" for c in TOTALS)]
    assert len({row["kode_tps"] for row in mapped}) == len(mapped)  # TPS codes are unique
    assert len(mapped) == len(dki.checked) + len(dki.refused)
    invalid = {row["kode_tps"] for row in mapped if invalid_independently(row)}
    assert {row["kode_tps"] for row, _ in dki.refused} == invalid
    for _, error in dki.refused:
        assert error.problems


def test_the_reports_carry_the_csv_values(dki: Dki) -> None:
    for c in dki.checked:
        r, row = c.report, c.row
        assert r.station.compact == row["kode_tps"]
        assert r.monitor == "DKI-TEST"
        assert r.report_id == uuid5(NAMESPACE_URL, row["kode_tps"])
        assert r.observed_at == OBSERVED_AT
        assert dict(r.votes) == {i: int(row[f"paslon_{i}"]) for i in (1, 2, 3)}
        assert (r.valid, r.invalid, r.total) == tuple(int(row[k]) for k in TOTALS)
        assert r.voters is None and r.disability is None and r.ballots is None
        if all(row[k] != "" for k in VOTED):
            assert r.voted is not None
            assert (r.voted.dpt, r.voted.dptb, r.voted.dpk, r.voted.total) == tuple(
                int(row[k]) for k in VOTED
            )
        else:
            assert r.voted is None


def test_check_tally_agrees_with_the_independent_codes(dki: Dki) -> None:
    got_counts: Counter[str] = Counter()
    expected_counts: Counter[str] = Counter()
    disagree = []
    for c in dki.checked:
        got = set(c.verdict.codes)
        got_counts.update(got)
        expected_counts.update(c.expected)
        if got != c.expected:
            disagree.append((c.row["kode_tps"], sorted(c.expected), sorted(got)))
    summary = ", ".join(f"{code}: {n}" for code, n in sorted(expected_counts.items()))
    flagged_hard = sum(1 for c in dki.checked if not c.verdict.ok)
    print(f"\nDKI codes ({len(dki.checked)} TPS; {flagged_hard} with a hard violation): {summary}")
    assert not disagree, f"{len(disagree)} rows disagree (code, expected, got): {disagree[:20]}"
    assert got_counts == expected_counts
    # The real data has errors.
    assert expected_counts["votes.sum_mismatch"] > 0
    assert expected_counts["total.sum_mismatch"] > 0
    # Only the five rules that the data can break ever fire.
    assert set(got_counts) <= HARD | {"turnout.outside_band", "votes.unanimous"}


def test_hard_verdicts_match_the_hard_codes(dki: Dki) -> None:
    for c in dki.checked:
        assert c.verdict.ok is not (c.expected & HARD), c.row["kode_tps"]
        assert {v.code for v in c.verdict.hard} == c.expected & HARD


def test_flagged_rows_are_kept_out_of_the_totals(dki: Dki) -> None:
    all_rows = Counter[int]()
    ok_rows = Counter[int]()
    for c in dki.checked:
        all_rows.update(dict(c.report.votes))
        if c.verdict.ok:
            ok_rows.update(dict(c.report.votes))
    print(f"\nDKI votes, all parsed TPS: {dict(sorted(all_rows.items()))}")
    print(f"DKI votes, TPS without a hard violation: {dict(sorted(ok_rows.items()))}")
    n_hard = sum(1 for c in dki.checked if not c.verdict.ok)
    assert n_hard > 0
    for n in (1, 2, 3):
        assert ok_rows[n] <= all_rows[n]
    assert sum(ok_rows.values()) < sum(all_rows.values())


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("paslon_1", "12000", "number.absurd"),
        ("suara_total", "10001", "number.absurd"),
        ("pengguna_dpt", "99999", "number.absurd"),
        ("kode_tps", "3101011001000", "code.invalid"),
    ],
)
def test_an_absurd_row_is_refused(dki: Dki, column: str, value: str, problem: str) -> None:
    # The snapshot has no such row; a real row made absurd shows the mapping refuses it.
    row = {**dki.checked[0].row, column: value}
    assert invalid_independently(row)
    with pytest.raises(PayloadError) as info:
        parse_report(wire(row))
    assert problem in info.value.codes
    assert not invalid_independently(dki.checked[0].row)
    assert not invalid_independently({**row, column: dki.checked[0].row[column]})


def test_a_station_dpt_of_zero_gives_no_turnout(dki: Dki) -> None:
    # 321 parsed TPS have DPT 0 on the count site (not filled in); turnout is undefined
    # there and neither side flags it, even where people voted.
    zero = [c for c in dki.checked if c.station.registered_voters == 0]
    voted = [c for c in zero if c.report.voted is not None and c.report.voted.computed_total]
    assert (len(zero), len(voted)) == (321, 31)
    assert not any("turnout.outside_band" in c.verdict.codes for c in zero)

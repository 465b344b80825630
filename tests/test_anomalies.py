"""Tests of sipantau_core.anomalies: turnout outliers, one-candidate TPS, digit tests,
the Benford advisory and two-source reconciliation."""

from __future__ import annotations

import csv
import math
import statistics
from collections import Counter
from collections.abc import Hashable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quickcount_helpers import LUBUKLINGGAU_CSV, load_dki
from sipantau_core.anomalies import (
    BENFORD_WARNING,
    AnomalyError,
    Discrepancy,
    chi2_sf,
    last_digit_by_region,
    last_digit_test,
    load_kawalpemilu_csv,
    reconcile,
    second_digit_benford,
    single_candidate_tps,
    turnout_outliers,
)

# ----------------------------------------------------------------------------- χ²


@pytest.mark.parametrize("df", [1, 2, 3, 4, 9, 10, 25])
@pytest.mark.parametrize("x", [0.0, 1e-6, 0.5, 3.3, 9.0, 16.919, 21.67, 60.0, 400.0])
def test_chi2_sf_matches_scipy(x: float, df: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    assert chi2_sf(x, df) == pytest.approx(float(stats.chi2.sf(x, df)), rel=1e-9, abs=1e-300)


def test_chi2_sf_critical_values() -> None:
    assert chi2_sf(16.918977604620448, 9) == pytest.approx(0.05, rel=1e-9)
    assert chi2_sf(21.665994333461924, 9) == pytest.approx(0.01, rel=1e-9)
    with pytest.raises(AnomalyError):
        chi2_sf(3.0, 0)


# ---------------------------------------------------------------------- last digits


def test_last_digit_uniform_is_not_flagged() -> None:
    counts = [10 * k + d for k in range(1, 21) for d in range(10)]  # 20 of each digit
    t = last_digit_test(counts)
    assert t.n == 200 and t.df == 9
    assert t.observed == (20,) * 10 and t.expected == (20.0,) * 10
    assert t.statistic == 0.0 and t.p_value == 1.0 and not t.flag


def test_last_digit_fabricated_is_flagged_and_small_counts_ignored() -> None:
    counts = [10 * k + (0 if k % 2 else 5) for k in range(1, 101)] + list(range(10)) * 50
    t = last_digit_test(counts, alpha=0.01)
    assert t.n == 100  # the 500 counts below 10 do not take part
    assert t.observed == (50, 0, 0, 0, 0, 50, 0, 0, 0, 0)
    assert t.statistic == pytest.approx(2 * 40**2 / 10 + 8 * 10)
    assert t.flag and t.p_value < 1e-30


def test_last_digit_too_few_counts() -> None:
    t = last_digit_test([11, 12, 13])
    assert t.n == 3 and math.isnan(t.p_value) and not t.flag and "needs 50" in t.note
    empty = last_digit_test([])
    assert empty.n == 0 and not empty.flag


def test_last_digit_by_city_on_real_dki_data() -> None:
    dki = load_dki()
    records = [
        (c, {k + 1: int(v) for k, v in enumerate(row)})
        for c, row in zip(dki.tps, dki.votes, strict=True)
    ]
    by_city = last_digit_by_region(records, level="city")
    assert sorted(by_city) == ["31.01", "31.71", "31.72", "31.73", "31.74", "31.75"]
    # recompute one region independently
    counts = [
        int(v)
        for c, row in zip(dki.tps, dki.votes, strict=True)
        if c.startswith("3175")
        for v in row
        if v >= 10
    ]
    observed = Counter(v % 10 for v in counts)
    expected = len(counts) / 10
    stat = sum((observed[d] - expected) ** 2 / expected for d in range(10))
    east = by_city["31.75"]
    assert east.n == len(counts)
    assert east.statistic == pytest.approx(stat)
    # Clean official data: no city is flagged at a Bonferroni-corrected 5 %.
    assert not any(
        last_digit_by_region(records, level="city", alpha=0.05 / 6)[c].flag for c in by_city
    )


# -------------------------------------------------------------------- Benford advisory


def test_benford_second_digit_never_flags_even_when_it_deviates() -> None:
    dki = load_dki()
    result = second_digit_benford(dki.votes.ravel().tolist())
    # On clean official DKI results the test "rejects" overwhelmingly ...
    assert result.deviates and result.p_value < 1e-12
    # ... which is why it is advisory only.
    assert result.flag is False
    assert result.advisory_only is True
    assert result.warning == BENFORD_WARNING and "not evidence of fraud" in result.warning
    assert sum(result.expected) == pytest.approx(result.n)
    assert result.expected[0] / result.n == pytest.approx(0.11968, abs=1e-5)
    assert result.expected[9] / result.n == pytest.approx(0.08500, abs=1e-5)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 100_000), max_size=300))
def test_property_benford_flag_is_always_false(counts: list[int]) -> None:
    result = second_digit_benford(counts)
    assert result.flag is False and result.advisory_only is True
    assert result.n == sum(1 for c in counts if c >= 10)


# ----------------------------------------------------------------------- turnout


def test_turnout_outlier_in_its_own_district() -> None:
    records: list[tuple[str, int | None, int | None]] = [
        (f"3171011001{t:03d}", 250, 190 + t % 7) for t in range(1, 21)
    ]
    records.append(("3171011001099", 250, 249))  # 99.6 % among ~78 %
    records.append(("3171011001098", 0, 10))  # no registered voters: skipped
    records.append(("3171011001097", 250, None))  # not reported: skipped
    # a district where 99 % turnout is normal: nothing there is an outlier
    records += [(f"3171021001{t:03d}", 250, 246 + t % 4) for t in range(1, 21)]
    out = turnout_outliers(records)
    assert [o.tps for o in out] == ["3171011001099"]
    o = out[0]
    assert o.region == "31.71.01"
    values = [v / 250 for c, r, v in records if c.startswith("3171011") and r and v is not None]
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    assert o.median == pytest.approx(med) and o.mad == pytest.approx(mad)
    assert o.robust_z == pytest.approx(0.6745 * (249 / 250 - med) / mad)
    assert turnout_outliers(records, threshold=1000) == []
    assert turnout_outliers(records, min_tps=50) == []


def test_turnout_outliers_when_mad_is_zero() -> None:
    records: list[tuple[str, int | None, int | None]] = [
        (f"3171011001{t:03d}", 200, 150) for t in range(1, 30)
    ]
    records.append(("3171011001099", 200, 60))
    out = turnout_outliers(records)
    assert [o.tps for o in out] == ["3171011001099"]
    assert out[0].mad == 0.0 and out[0].robust_z < -3.5
    assert turnout_outliers(records[:-1]) == []


def test_turnout_outliers_on_real_dki_data() -> None:
    dki = load_dki()
    records = list(zip(dki.tps, dki.registered, dki.total, strict=True))
    out = turnout_outliers(records)
    assert out and all(abs(o.robust_z) > 3.5 for o in out)
    # recheck one flagged TPS against its district with the statistics module
    o = out[len(out) // 2]
    values = [v / r for c, r, v in records if c.startswith(o.tps[:6]) and r and v is not None]
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    assert o.robust_z == pytest.approx(0.6745 * (o.turnout - med) / mad)


def test_turnout_bad_input() -> None:
    with pytest.raises(AnomalyError) as info:
        turnout_outliers([("31.71", 200, 100)])
    assert info.value.code == "anomalies.bad_code"
    with pytest.raises(AnomalyError) as info:
        turnout_outliers([("3171011001001", 200, -1)])
    assert info.value.code == "anomalies.negative_count"
    with pytest.raises(AnomalyError):
        turnout_outliers([], threshold=0)


# ------------------------------------------------------------------ one-candidate TPS


def test_single_candidate_tps() -> None:
    records: list[tuple[str, dict[Hashable, int]]] = [
        ("3171011001001", {1: 0, 2: 51, 3: 0}),
        ("3171011001002", {1: 0, 2: 50, 3: 0}),  # not more than 50 voters
        ("3171011001003", {1: 1, 2: 250, 3: 0}),
        ("3171011001004", {"kotak kosong": 0, "A": 300}),
    ]
    out = single_candidate_tps(records)
    assert [(s.tps, s.candidate, s.votes) for s in out] == [
        ("3171011001001", 2, 51),
        ("3171011001004", "A", 300),
    ]


def test_single_candidate_tps_on_real_dki_data() -> None:
    dki = load_dki()
    expected = sorted(
        c
        for c, row in zip(dki.tps, dki.votes, strict=True)
        if row.sum() > 50 and row.max() == row.sum()
    )
    records = [
        (c, {k + 1: int(v) for k, v in enumerate(row)})
        for c, row in zip(dki.tps, dki.votes, strict=True)
    ]
    assert [s.tps for s in single_candidate_tps(records)] == expected
    assert expected  # DKI 2024 has a few such TPS


# ------------------------------------------------------------------ reconciliation


def test_reconcile_kinds() -> None:
    a: dict[str, dict[str, int | None]] = {
        "t1": {"x": 1, "y": 2},
        "t2": {"x": 5, "y": None},
        "t3": {"x": 1},
        "t4": {"x": None, "y": None},
    }
    b: dict[str, dict[str, int | None]] = {
        "t1": {"x": 1, "y": 3},
        "t2": {"x": None, "y": None},
        "t4": {"x": 7, "y": None},
        "t5": {"x": 0},
    }
    assert reconcile(a, b) == [
        Discrepancy("t1", "y", 2, 3, "differs"),
        Discrepancy("t2", "x", 5, None, "blank_in_b"),
        Discrepancy("t3", None, None, None, "missing_in_b"),
        Discrepancy("t4", "x", None, 7, "blank_in_a"),
        Discrepancy("t5", None, None, None, "missing_in_a"),
    ]
    assert reconcile(a, b, fields=["x"]) == [d for d in reconcile(a, b) if d.field in (None, "x")]
    assert reconcile(a, a) == []


def test_reconcile_finds_every_disagreement_in_lubuklinggau() -> None:
    # the expected set, computed independently with the csv module
    suffixes = {
        "pas1": "paslon_1",
        "pas2": "paslon_2",
        "sah": "suara_sah",
        "tsah": "suara_tidak_sah",
        "jum": "suara_total",
    }
    expected = set()
    with LUBUKLINGGAU_CSV.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = f"{row['kel_id']}/{int(row['tps']):03d}"
            for s, field in suffixes.items():
                if row[f"kpu_{s}"] != row[f"kp_{s}"]:
                    expected.add((key, field, row[f"kpu_{s}"], row[f"kp_{s}"]))
    sources = load_kawalpemilu_csv(LUBUKLINGGAU_CSV)
    assert len(sources.a) == len(sources.b) == 608
    found = reconcile(sources.a, sources.b)
    got = {
        (d.tps, d.field, "" if d.a is None else str(d.a), "" if d.b is None else str(d.b))
        for d in found
    }
    assert got == expected
    assert len(found) == len(expected) == 152
    kinds = Counter(d.kind for d in found)
    assert kinds == {"differs": 78, "blank_in_b": 74}
    assert len({d.tps for d in found}) == 82
    assert sources.places["20679/001"] == ("LUBUK LINGGAU TIMUR I", "AIR KUTI", 1)
    assert sources.registered["20679/001"] == 255


def test_load_kawalpemilu_csv_errors(tmp_path: Path) -> None:
    header = "kecamatan,kelurahan,kel_id,tps,dpt," + ",".join(
        f"{src}_{s}" for src in ("kpu", "kp") for s in ("pas1", "pas2", "sah", "tsah", "jum")
    )
    bad_cell = tmp_path / "bad.csv"
    bad_cell.write_text(header + "\nA,B,1,1,200,1,2,3,0,3,1,2,3,0,x\n", encoding="utf-8")
    with pytest.raises(AnomalyError) as info:
        load_kawalpemilu_csv(bad_cell)
    assert info.value.code == "anomalies.bad_csv" and "line 2, column kp_jum" in info.value.message
    missing = tmp_path / "missing.csv"
    missing.write_text("kecamatan,kelurahan\nA,B\n", encoding="utf-8")
    with pytest.raises(AnomalyError) as info:
        load_kawalpemilu_csv(missing)
    assert "missing columns" in info.value.message
    dup = tmp_path / "dup.csv"
    row = "A,B,1,1,200,1,2,3,0,3,1,2,3,0,3"
    dup.write_text(f"{header}\n{row}\n{row}\n", encoding="utf-8")
    with pytest.raises(AnomalyError) as info:
        load_kawalpemilu_csv(dup)
    assert "appears twice" in info.value.message


def test_numpy_counts_are_accepted() -> None:
    t = last_digit_test(np.arange(10, 210))
    assert t.n == 200 and not t.flag

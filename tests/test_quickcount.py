"""Tests of sipantau_core.quickcount: sample design, estimation, progress count."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter, defaultdict
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from quickcount_helpers import load_dki, naive_difference_se, naive_ratio, stratified_indices
from sipantau_core.quickcount import (
    FrameTps,
    ProgressCount,
    QuickCountError,
    SampledTps,
    TpsResult,
    allocate,
    draw_sample,
    estimate_shares,
    estimate_shares_arrays,
    estimate_shares_batch,
    progress_count,
    progress_count_arrays,
    region_prefix,
    sample_digest,
    sample_size_tps,
    sample_size_voters,
    stratify,
    tally_by_region,
    tps_code_to_int,
    verify_sample,
    z_value,
)

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------ region codes


def test_region_prefix_levels() -> None:
    code = "1673011001001"
    assert region_prefix(code, "province") == "16"
    assert region_prefix(code, "city") == "16.73"
    assert region_prefix(code) == "16.73.01"
    assert region_prefix(code, "village") == "16.73.01.1001"
    assert region_prefix(code, "tps") == "16.73.01.1001.001"
    assert region_prefix("16.73.01.1001", "city") == "16.73"


@pytest.mark.parametrize("bad", ["", "16.7301", "1673x11001001", "123", "16.73.01.1001.01", "١٦"])
def test_region_prefix_rejects_bad_codes(bad: str) -> None:
    with pytest.raises(QuickCountError) as info:
        region_prefix(bad)
    assert info.value.code == "quickcount.bad_code"


def test_region_prefix_level_errors() -> None:
    with pytest.raises(QuickCountError) as info:
        region_prefix("16.73", "village")
    assert info.value.code == "quickcount.bad_code"
    with pytest.raises(QuickCountError) as info:
        region_prefix("16.73", "kabupaten")
    assert info.value.code == "quickcount.bad_level"


def test_error_is_a_value_error_with_code_in_str() -> None:
    err = QuickCountError("something to fix", code="quickcount.test")
    assert isinstance(err, ValueError)
    assert str(err) == "[quickcount.test] something to fix"


# ------------------------------------------------------------------------ sample sizes


def test_sample_size_reproduces_ndi_handbook_peru_2001_exact_formula() -> None:
    # NDI, The Quick Count and Election Observation (2002), ch. 5: Peru 2001,
    # N = 14,570,774 voters, p = 0.5, E = 0.32 %, z = 2.58 (99 %).
    n = sample_size_voters(14_570_774, 0.0032, z=2.58, p=0.5)
    assert round(n, -2) == 160_700
    assert n == pytest.approx(160_717.28, abs=0.01)


def test_sample_size_handbook_rounding_gives_163185() -> None:
    # The handbook rounds E² = 0.00001024 to three significant figures, 0.0000102,
    # divides by z² = 6.6564 and keeps nine decimals: 0.000001532; 0.25 / 0.000001532 =
    # 163,185, the figure it prints. (Its printed split of that 0.000001532 into
    # 0.000001515 + 0.000000017 does not follow from its inputs; the finite-population
    # term 0.25 / N = 0.000000017 is what separates 163,185 from the exact formula.)
    e2 = round(0.0032**2, 7)
    assert e2 == pytest.approx(0.0000102)
    term = round(e2 / 2.58**2, 9)
    assert term == pytest.approx(0.000001532)
    assert round(0.25 / term) == 163_185
    # With the unrounded E² the same infinite-population expression gives ≈162,510 and
    # the exact (finite-population) formula ≈160,717: rounding, not the formula, explains
    # the handbook's figure.
    assert pytest.approx(162_509.8, abs=0.1) == 0.25 * 2.58**2 / 0.0032**2


def test_sample_size_voters_confidence_and_errors() -> None:
    n95 = sample_size_voters(10_000_000, 0.01)
    assert n95 == pytest.approx(
        10_000_000 * 1.959964**2 * 0.25 / (1e-4 * 9_999_999 + 0.9604), rel=1e-5
    )
    assert sample_size_voters(10_000_000, 0.01, confidence=0.99) > n95
    for kwargs in ({"population": 0, "margin": 0.01}, {"population": 100, "margin": 1.5}):
        with pytest.raises(QuickCountError) as info:
            sample_size_voters(**kwargs)  # type: ignore[arg-type]
        assert info.value.code == "quickcount.bad_parameter"
    with pytest.raises(QuickCountError) as info:
        sample_size_voters(100, 0.01, confidence=95)
    assert info.value.code == "quickcount.bad_confidence"


def test_sample_size_tps() -> None:
    # deff 1 and one voter per TPS: the infinite-population voter formula.
    assert sample_size_tps(0.01, voters_per_tps=1, design_effect=1) == math.ceil(
        1.959963984540054**2 * 0.25 / 1e-4
    )
    base = sample_size_tps(0.01, voters_per_tps=230, design_effect=6)
    assert base == math.ceil(6 * 1.959963984540054**2 * 0.25 / (1e-4 * 230))
    assert sample_size_tps(0.01, voters_per_tps=230, design_effect=12) > base
    with_fpc = sample_size_tps(0.01, voters_per_tps=230, design_effect=6, population_tps=2000)
    assert with_fpc < base
    assert (
        480 < sample_size_tps(0.001, voters_per_tps=230, design_effect=6, population_tps=500) <= 500
    )


# ---------------------------------------------------------------------- allocation


def test_allocate_proportional_respects_bounds_and_total() -> None:
    population = {"a": 88, "b": 2624, "c": 2981, "d": 4848, "e": 5478, "f": 6492}
    alloc = allocate(population, 400)
    assert sum(alloc.values()) == 400
    assert alloc["a"] == 2  # 1.56 rounded up to the minimum of 2
    total = sum(population.values())
    for h, k in alloc.items():
        assert abs(k - 400 * population[h] / total) <= 1.5


def test_allocate_equal_minimum_and_caps() -> None:
    alloc = allocate({"a": 3, "b": 100, "c": 100}, 30, method="equal")
    assert alloc == {"a": 3, "b": 14, "c": 13} or alloc == {"a": 3, "b": 13, "c": 14}
    assert allocate({"a": 1, "b": 50, "z": 0}, 10) == {"a": 1, "b": 9, "z": 0}
    with pytest.raises(QuickCountError) as info:
        allocate({"a": 10, "b": 10, "c": 10}, 5)
    assert info.value.code == "quickcount.bad_allocation"
    with pytest.raises(QuickCountError) as info:
        allocate({"a": 10}, 11)
    assert info.value.code == "quickcount.bad_allocation"
    with pytest.raises(QuickCountError) as info:
        allocate({"a": 10}, 5, method="neyman")  # type: ignore[arg-type]
    assert info.value.code == "quickcount.bad_allocation"


@PROPERTY
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=12),
    data=st.data(),
)
def test_allocate_property(sizes: list[int], data: st.DataObject) -> None:
    population = {f"s{i:02d}": v for i, v in enumerate(sizes)}
    total = sum(sizes)
    live = sum(1 for v in sizes if v > 0)
    if total == 0:
        return
    n = data.draw(st.integers(min(total, 2 * live), total))
    alloc = allocate(population, n)
    assert sum(alloc.values()) == n
    for h, k in alloc.items():
        assert min(2, population[h]) <= k <= population[h]


# ----------------------------------------------------------------------- draw & digest


def _frame(n_per: int = 40) -> dict[str, str]:
    codes = [
        f"317{c}0{d}100{v}{t:03d}"
        for c in "12"
        for d in "12"
        for v in "12"
        for t in range(1, n_per + 1)
    ]
    return stratify(codes)


def test_draw_sample_is_reproducible_and_committed() -> None:
    frame = _frame()
    population = Counter(frame.values())
    alloc = allocate(population, 20)
    design = {"margin": 0.01, "design_effect": 6.0, "confidence": 0.95}
    one = draw_sample(frame, alloc, 20240214, design=design)
    two = draw_sample(frame, alloc, 20240214, design=design)
    assert one == two
    assert Counter(one.strata.values()) == Counter({h: k for h, k in alloc.items() if k})
    assert list(one.tps) == sorted(one.tps)
    assert one.digest == hashlib.sha256(one.canonical_json().encode()).hexdigest()
    doc = json.loads(one.canonical_json())
    assert doc["tps"] == list(one.tps) and doc["seed"] == 20240214
    assert doc["design"] == design
    assert one.digest == sample_digest(
        one.tps, seed=20240214, allocation=alloc, population=population, design=design
    )
    assert verify_sample(
        frame, one.tps, seed=20240214, allocation=alloc, digest=one.digest, design=design
    )
    other = draw_sample(frame, alloc, 20240215, design=design)
    assert other.tps != one.tps and other.digest != one.digest
    tampered = (*one.tps[1:], next(c for c in frame if c not in one.tps))
    assert not verify_sample(
        frame, tampered, seed=20240214, allocation=alloc, digest=one.digest, design=design
    )
    assert not verify_sample(
        frame, one.tps, seed=20240214, allocation=alloc, digest="0" * 64, design=design
    )


def test_draw_sample_algorithm_is_pinned() -> None:
    # The digest of a fixed draw must never change: a change means samples committed
    # before an election could no longer be verified after it.
    frame = _frame(10)
    draw = draw_sample(frame, dict.fromkeys(set(frame.values()), 2), 7)
    assert draw.tps[:4] == PINNED_TPS
    assert draw.digest == PINNED_DIGEST


PINNED_TPS = ("3171011001004", "3171011001007", "3171021002003", "3171021002008")
PINNED_DIGEST = "5b959c79231735253f64e17022be1548ebdc83fc1044bdf80e14462816144ece"


def test_draw_sample_does_not_depend_on_frame_order() -> None:
    frame = _frame()
    items = list(frame.items())
    random.Random(3).shuffle(items)
    alloc = allocate(Counter(frame.values()), 16)
    assert draw_sample(dict(items), alloc, 1).digest == draw_sample(frame, alloc, 1).digest


def test_draw_sample_errors() -> None:
    frame = _frame()
    with pytest.raises(QuickCountError) as info:
        draw_sample(frame, {"99.99.99": 1}, 1)
    assert info.value.code == "quickcount.unknown_stratum"
    with pytest.raises(QuickCountError) as info:
        draw_sample(frame, {"31.71.01": 1000}, 1)
    assert info.value.code == "quickcount.bad_allocation"
    with pytest.raises(QuickCountError) as info:
        draw_sample(frame, {"31.71.01": 1}, -1)
    assert info.value.code == "quickcount.bad_seed"
    with pytest.raises(QuickCountError) as info:
        draw_sample(frame, {"31.71.01": 1}, 1, design={"when": object()})
    assert info.value.code == "quickcount.bad_design"


def test_stratify_with_risk() -> None:
    strata = stratify(
        ["3171011001001", "3171011001002"], risk={"3171011001001": "high", "3171011001002": "low"}
    )
    assert strata == {"3171011001001": "31.71.01|high", "3171011001002": "31.71.01|low"}
    with pytest.raises(QuickCountError) as info:
        stratify(["3171011001001"], risk={})
    assert info.value.code == "quickcount.missing_risk"


# -------------------------------------------------------------------------- estimation

EXAMPLE = [
    ("16.73.01", {1: 130, 2: 270}),
    ("16.73.01", {1: 150, 2: 240}),
    ("16.73.01", {1: 110, 2: 260}),
    ("16.73.02", {1: 90, 2: 310}),
    ("16.73.02", {1: 100, 2: 280}),
    ("16.73.02", {1: 120, 2: 250}),
]
POPULATION = {"16.73.01": 41, "16.73.02": 38}


def test_estimate_shares_api_contract() -> None:
    est = estimate_shares(EXAMPLE, population=POPULATION, confidence=0.95)
    assert set(est.share) == {1, 2}
    assert est.share[1] + est.share[2] == pytest.approx(1.0)
    assert 0 < est.share[1] < est.share[2] < 1
    assert est.margin[1] == pytest.approx(z_value(0.95) * est.se[1])
    assert est.low[1] == pytest.approx(est.share[1] - est.margin[1])
    assert est.high[1] == pytest.approx(est.share[1] + est.margin[1])
    assert est.margin_99[1] > est.margin_95[1] == pytest.approx(est.margin[1])
    assert est.design_effect == est.design_effects[est.leader] > 0
    assert est.leader == 2 and est.runner_up == 1
    assert est.callable
    assert est.difference_significant
    assert est.n_tps == 6 and est.n_strata == 2 and est.population_tps == 79
    assert est.collapsed == () and est.notes == ()
    assert "callable at 95%" in est.verdict()


def test_estimate_matches_textbook_formulas() -> None:
    est = estimate_shares(EXAMPLE, population=POPULATION)
    ref = naive_ratio(EXAMPLE, POPULATION)
    for c in (1, 2):
        assert est.share[c] == pytest.approx(ref[c][0], rel=1e-12)
        assert est.se[c] == pytest.approx(math.sqrt(ref[c][1]), rel=1e-9)
    assert est.difference_se == pytest.approx(
        naive_difference_se(EXAMPLE, POPULATION, 2, 1), rel=1e-9
    )


def test_estimate_matches_textbook_on_real_sample() -> None:
    dki = load_dki()
    rng = np.random.default_rng(5)
    idx = rng.choice(len(dki.tps), size=600, replace=False)
    sample = [
        (region_prefix(dki.tps[i], "city"), {k + 1: int(dki.votes[i, k]) for k in range(3)})
        for i in idx
    ]
    population = dict(Counter(region_prefix(c, "city") for c in dki.tps))
    est = estimate_shares(sample, population=population)
    ref = naive_ratio(sample, population)
    for c in (1, 2, 3):
        assert est.share[c] == pytest.approx(ref[c][0], rel=1e-10)
        assert est.se[c] == pytest.approx(math.sqrt(ref[c][1]), rel=1e-8)
    lead, second = est.leader, est.runner_up
    assert second is not None
    assert est.difference_se == pytest.approx(
        naive_difference_se(sample, population, lead, second), rel=1e-8
    )
    # 41.0 % vs 41.5 % in Jakarta: a 600-TPS sample cannot call it.
    assert not est.callable


def test_callable_rule_is_conservative() -> None:
    # x leads y by 5 votes per TPS; their TPS-level deviations are uncorrelated, so the
    # difference has SE sqrt(2)·se while the intervals need 2·se to separate: the
    # difference is significant, yet the race is not called.
    n = 160
    i = np.arange(n)
    s = 20 * np.where(i % 2 == 0, 1, -1)
    t = 20 * np.where((i // 2) % 2 == 0, 1, -1)
    votes = np.stack([105 + s, 100 + t, 50 - s - t], axis=1)
    est = estimate_shares_arrays(["a"] * n, votes, {"a": 100_000}, candidates=("x", "y", "z"))
    assert est.leader == "x" and est.runner_up == "y"
    assert est.difference == pytest.approx(5 / 255)
    assert est.difference_se == pytest.approx(math.hypot(est.se["x"], est.se["y"]), rel=1e-6)
    assert est.difference_significant
    assert est.low["x"] < est.high["y"]
    assert not est.callable
    assert "not callable at 95%" in est.verdict()


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.sampled_from("ab"), st.integers(0, 300), st.integers(0, 300), st.integers(0, 300)
        ),
        min_size=4,
        max_size=40,
    )
)
def test_property_called_implies_difference_significant(
    rows: list[tuple[str, int, int, int]],
) -> None:
    assume(sum(a + b + c for _, a, b, c in rows) > 0)
    sample = [(h, {1: a, 2: b, 3: c}) for h, a, b, c in rows]
    est = estimate_shares(sample, population={"a": 60, "b": 60})
    assert est.runner_up is not None
    assert est.difference_se <= est.se[est.leader] + est.se[est.runner_up] + 1e-12
    if est.callable:
        assert est.difference_significant


def test_turnout_and_invalid_rate() -> None:
    sample = [
        SampledTps("a", {1: 100, 2: 80}, registered=250, invalid=5, total=185),
        SampledTps("a", {1: 90, 2: 95}, registered=260, invalid=4, total=189),
        SampledTps("a", {1: 120, 2: 70}, registered=240, invalid=6, total=196),
        SampledTps("b", {1: 60, 2: 140}, registered=270, invalid=3, total=203),
        SampledTps("b", {1: 75, 2: 130}, registered=280, invalid=None, total=None),
        SampledTps("b", {1: 65, 2: 150}, registered=None, invalid=2, total=217),
        SampledTps("b", {1: 70, 2: 135}, registered=265, invalid=7, total=212),
    ]
    est = estimate_shares(sample, population={"a": 30, "b": 30})
    assert est.turnout is not None and est.invalid_rate is not None
    assert est.turnout.n_tps == 5 and est.invalid_rate.n_tps == 6
    turnout_ref = naive_ratio(
        [
            (s.stratum, {"t": s.total, "rest": s.registered - s.total})
            for s in sample
            if s.total and s.registered
        ],
        {"a": 30, "b": 30},
    )["t"]
    assert est.turnout.estimate == pytest.approx(turnout_ref[0])
    assert est.turnout.se == pytest.approx(math.sqrt(turnout_ref[1]))
    assert 0 < est.invalid_rate.estimate < 0.05
    assert any("turnout estimated from the 5 of 7" in n for n in est.notes)
    plain = estimate_shares([(s.stratum, s.votes) for s in sample], population={"a": 30, "b": 30})
    assert plain.turnout is None and plain.invalid_rate is None
    assert plain.share == est.share


@pytest.mark.parametrize(
    ("sample", "population", "code"),
    [
        ([], {"a": 3}, "quickcount.empty_sample"),
        ([("x", {1: 3})], {"a": 3}, "quickcount.unknown_stratum"),
        ([("a", {1: 3}), ("a", {1: 4})], {"a": 1}, "quickcount.sample_exceeds_population"),
        ([("a", {1: 3})], {"a": 5}, "quickcount.sample_too_small"),
        ([("a", {1: -3}), ("a", {1: 4})], {"a": 5}, "quickcount.negative_count"),
        ([("a", {1: 3.5}), ("a", {1: 4})], {"a": 5}, "quickcount.bad_count"),
        ([("a", {1: 0}), ("a", {1: 0})], {"a": 5}, "quickcount.no_valid_votes"),
        ([("a", {}), ("a", {})], {"a": 5}, "quickcount.no_candidates"),
        ([("a", {1: 3}), ("a", {1: 4})], {"a": -5}, "quickcount.negative_count"),
        ([("a", {1: 3}), ("a", {1: 4})], {}, "quickcount.bad_population"),
        ([("a",)], {"a": 5}, "quickcount.bad_sample"),
    ],
)
def test_estimate_errors_are_typed(sample: list, population: dict, code: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(QuickCountError) as info:
        estimate_shares(sample, population=population)
    assert info.value.code == code
    assert info.value.message


def test_bad_confidence() -> None:
    with pytest.raises(QuickCountError) as info:
        estimate_shares(EXAMPLE, population=POPULATION, confidence=95)
    assert info.value.code == "quickcount.bad_confidence"


def test_empty_stratum_is_merged_with_its_neighbour() -> None:
    population = {"16.73.01": 41, "16.73.02": 38, "16.73.03": 20, "16.74.01": 50}
    sample = [*EXAMPLE, ("16.74.01", {1: 200, 2: 200}), ("16.74.01", {1: 210, 2: 190})]
    est = estimate_shares(sample, population=population)
    assert [(c.stratum, c.into, c.reason) for c in est.collapsed] == [
        ("16.73.03", "16.73.02", "empty")
    ]
    assert "merged with a neighbouring stratum" in est.notes[0]
    # same as giving 16.73.02 the 20 TPS of 16.73.03
    merged = estimate_shares(sample, population={"16.73.01": 41, "16.73.02": 58, "16.74.01": 50})
    assert est.share == pytest.approx(merged.share)
    assert est.se == pytest.approx(merged.se)


def test_single_tps_strata_are_collapsed_for_the_variance() -> None:
    population = {"16.73.01": 41, "16.73.02": 38, "16.73.03": 20, "16.74.01": 50}
    sample = [*EXAMPLE, ("16.73.03", {1: 50, 2: 150}), ("16.74.01", {1: 200, 2: 200})]
    est = estimate_shares(sample, population=population)
    assert {(c.stratum, c.into, c.reason) for c in est.collapsed} == {
        ("16.73.03", "16.73.02", "single"),
        ("16.74.01", "16.73.03", "single"),
    }
    assert any("single sampled TPS" in n for n in est.notes)
    assert math.isfinite(est.se[1]) and est.se[1] > 0
    # the point estimate keeps the original strata weights
    x = dict.fromkeys(population, 0.0)
    y = dict.fromkeys(population, 0.0)
    n = Counter(h for h, _ in sample)
    for h, v in sample:
        x[h] += population[h] / n[h] * sum(v.values())
        y[h] += population[h] / n[h] * v[1]
    assert est.share[1] == pytest.approx(sum(y.values()) / sum(x.values()))


def test_census_stratum_of_one_tps_needs_no_collapse() -> None:
    est = estimate_shares(
        [*EXAMPLE, ("16.75.01", {1: 7, 2: 9})], population={**POPULATION, "16.75.01": 1}
    )
    assert est.collapsed == ()


def test_batch_equals_single_estimates() -> None:
    rng = np.random.default_rng(2)
    strata = ["a"] * 5 + ["b"] * 7 + ["c"] * 1
    votes = rng.integers(0, 200, size=(30, len(strata), 4))
    population = {"a": 50, "b": 70, "c": 9, "d": 4}
    batch = estimate_shares_batch(strata, votes, population, confidence=0.9)
    assert batch.share.shape == (30, 4)
    for b in (0, 17, 29):
        one = estimate_shares_arrays(strata, votes[b], population, confidence=0.9)
        assert batch.share[b] == pytest.approx([one.share[k] for k in range(4)], rel=1e-12)
        assert batch.margin[b] == pytest.approx([one.margin[k] for k in range(4)], rel=1e-9)
    assert batch.collapsed == one.collapsed


def test_array_shape_errors() -> None:
    with pytest.raises(QuickCountError) as info:
        estimate_shares_arrays(["a", "b"], np.ones((3, 2)), {"a": 3, "b": 3})
    assert info.value.code == "quickcount.shape_mismatch"
    with pytest.raises(QuickCountError) as info:
        estimate_shares_batch(["a", "b"], np.ones((3, 2)), {"a": 3, "b": 3})
    assert info.value.code == "quickcount.shape_mismatch"


# ---------------------------------------------------------------- real-data coverage


@pytest.mark.parametrize(("level", "draws"), [("city", 10_000), ("district", 10_000)])
def test_intervals_cover_the_full_count_on_real_dki_data(level: str, draws: int) -> None:
    """Stratified samples of 400 TPS from the 22,511 DKI TPS with complete votes.

    With 10,000 draws the binomial SE of a 95 % coverage is 0.22 points, so 94-96 % is a
    band of ±4.6 SE: an honest assertion, not a lucky seed (at 1,000 draws the SE
    would be 0.69 points). Strata: the 6 cities (Kepulauan Seribu has 88 TPS and gets
    the minimum of 2) or the 44 districts.
    """
    dki = load_dki()
    labels = [region_prefix(c, level) for c in dki.tps]
    names, stratum = np.unique(labels, return_inverse=True)
    population = {str(h): int(v) for h, v in zip(names, np.bincount(stratum), strict=True)}
    alloc = allocate(population, 400)
    rng = np.random.default_rng(20240214)
    idx, layout = stratified_indices(
        stratum.astype(np.int64), [alloc[str(h)] for h in names], draws, rng
    )
    batch = estimate_shares_batch([str(names[h]) for h in layout], dki.votes[idx], population)
    truth = dki.truth()
    covered = np.abs(batch.share - truth) <= batch.margin
    coverage = covered.mean(axis=0)
    assert np.all((coverage >= 0.94) & (coverage <= 0.96)), coverage
    empirical = z_value(0.95) * batch.share.std(axis=0, ddof=1)
    ratio = batch.margin.mean(axis=0) / empirical
    assert np.all(np.abs(ratio - 1) <= 0.10), ratio
    assert np.all(np.abs(batch.share.mean(axis=0) - truth) < 0.1 * empirical)


# ------------------------------------------------------------------------ properties

votes_st = st.dictionaries(st.sampled_from([1, 2, 3, 4]), st.integers(0, 300), min_size=1)
stratum_st = st.sampled_from(["31.71.01", "31.71.02", "31.72.01", "31.73.05"])


@st.composite
def samples(draw: st.DrawFn) -> tuple[list[tuple[str, dict[int, int]]], dict[str, int]]:
    sample = draw(st.lists(st.tuples(stratum_st, votes_st), min_size=2, max_size=40))
    assume(sum(sum(v.values()) for _, v in sample) > 0)
    n = Counter(h for h, _ in sample)
    population = {
        h: n.get(h, 0) + draw(st.integers(0 if n.get(h) else 1, 50))
        for h in ["31.71.01", "31.71.02", "31.72.01", "31.73.05"]
    }
    return sample, population


@PROPERTY
@given(samples())
def test_property_shares_sum_to_one_and_bounds_hold(case: tuple[list, dict]) -> None:  # type: ignore[type-arg]
    sample, population = case
    est = estimate_shares(sample, population=population)
    assert sum(est.share.values()) == pytest.approx(1.0)
    for c in est.candidates:
        assert 0.0 <= est.low[c] <= est.share[c] <= est.high[c] <= 1.0
        assert est.margin[c] >= 0


@PROPERTY
@given(samples(), st.randoms(use_true_random=False))
def test_property_permutation_invariance(case: tuple[list, dict], rnd: random.Random) -> None:  # type: ignore[type-arg]
    sample, population = case
    shuffled = sample[:]
    rnd.shuffle(shuffled)
    a = estimate_shares(sample, population=population)
    b = estimate_shares(shuffled, population=population)
    assert a.candidates == b.candidates
    for c in a.candidates:
        assert b.share[c] == pytest.approx(a.share[c], rel=1e-9, abs=1e-12)
        assert b.se[c] == pytest.approx(a.se[c], rel=1e-7, abs=1e-12)
    assert a.collapsed == b.collapsed
    assert a.leader == b.leader or a.share[a.leader] == pytest.approx(b.share[b.leader])


@PROPERTY
@given(st.lists(st.tuples(stratum_st, votes_st), min_size=1, max_size=40))
def test_property_census_gives_truth_with_zero_margin(
    frame: list[tuple[str, dict[int, int]]],
) -> None:
    assume(sum(sum(v.values()) for _, v in frame) > 0)
    population = dict(Counter(h for h, _ in frame))
    est = estimate_shares(frame, population=population)
    totals: defaultdict[int, int] = defaultdict(int)
    for _, v in frame:
        for c, k in v.items():
            totals[c] += k
    valid = sum(totals.values())
    for c in est.candidates:
        assert est.share[c] == pytest.approx(totals[c] / valid, rel=1e-12, abs=1e-15)
        assert est.margin[c] == 0.0
        assert est.low[c] == est.high[c] == est.share[c]


@PROPERTY
@given(
    st.lists(st.tuples(st.integers(1, 30), votes_st), min_size=2, max_size=25),
    st.lists(st.integers(1, 30), max_size=10),
)
def test_property_single_tps_strata_never_raise(
    singles: list[tuple[int, dict[int, int]]], empty: list[int]
) -> None:
    # every sampled stratum has exactly one TPS; some frame strata have none
    sample = [(f"31.71.{i:02d}", v) for i, (_, v) in enumerate(singles)]
    assume(sum(sum(v.values()) for _, v in sample) > 0)
    population = {f"31.71.{i:02d}": size for i, (size, _) in enumerate(singles)}
    population.update({f"31.72.{i:02d}": size for i, size in enumerate(empty)})
    est = estimate_shares(sample, population=population)
    assert all(math.isfinite(v) for v in est.se.values())
    paired = {c.stratum for c in est.collapsed if c.reason == "single"}
    assert paired >= {h for h, _ in sample if population[h] > 1}
    assert all(population[c.into] >= 1 for c in est.collapsed)
    assert {c.stratum for c in est.collapsed if c.reason == "empty"} == {
        f"31.72.{i:02d}" for i in range(len(empty))
    }


# ----------------------------------------------------------------------- progress count


def _toy_frame() -> dict[str, int]:
    frame = {}
    for d in ("01", "02", "03"):
        for t in range(1, 5):
            frame[f"31710{d[1]}1001{t:03d}"] = 200 + t
    frame["3172011001001"] = 300
    return frame


def test_progress_count_levels_and_shares() -> None:
    frame = _toy_frame()
    reported = [
        TpsResult("3171011001001", {1: 100, 2: 50}, invalid=3, total=153),
        TpsResult("3171011001002", {1: 90, 2: 60}, invalid=None, total=None),
        TpsResult("3171021001001", {1: 40, 2: 120}, invalid=2, total=162),
    ]
    pc = progress_count(reported, frame)
    assert pc.overall.tps_counted == 3 and pc.overall.tps_expected == 13
    assert pc.overall.votes == {1: 230, 2: 230}
    assert pc.overall.invalid == 5 and pc.overall.total == 315
    city = pc.region("31.71")
    assert city.tps_expected == 12 and city.tps_counted == 3
    assert city.share_tps == pytest.approx(3 / 12)
    assert city.registered_counted == 201 + 202 + 201
    assert city.share_registered == pytest.approx(
        604 / sum(v for k, v in frame.items() if k.startswith("3171"))
    )
    assert city.turnout == pytest.approx(315 / (201 + 201))
    d1 = pc.region("31.71.01")
    assert d1.share == {1: pytest.approx(190 / 300), 2: pytest.approx(110 / 300)}
    empty = pc.region("31.72.01")
    assert empty.tps_counted == 0 and empty.share_tps == 0.0
    assert all(math.isnan(v) for v in empty.share.values())
    assert [r.code for r in pc.regions("district")] == [
        "31.71.01",
        "31.71.02",
        "31.71.03",
        "31.72.01",
    ]
    assert len(pc.regions("village")) == 4
    # only district 31.71.01 has 2 reports: 25 % of registered voters < 50 %
    assert pc.projection is None
    assert "Too few strata have reported to project" in pc.projection_note
    assert pc.strata_covered == 1 and pc.strata_total == 4


def test_progress_count_projection_appears_and_converges() -> None:
    frame = _toy_frame()
    rng = random.Random(4)
    results = {code: {1: rng.randint(50, 150), 2: rng.randint(50, 150)} for code in frame}
    some = [
        TpsResult(c, v, total=sum(v.values()) + 2, invalid=2) for c, v in list(results.items())[::2]
    ]
    some += [TpsResult(c, v) for c, v in list(results.items())[1:6:2]]
    pc = progress_count(some, frame)
    assert pc.projection is not None
    assert "assumes that within each stratum" in pc.projection_note
    assert pc.projection.turnout is not None
    full = progress_count([TpsResult(c, v) for c, v in results.items()], frame)
    assert full.projection is not None and full.coverage == 1.0
    valid = sum(sum(v.values()) for v in results.values())
    for c in (1, 2):
        assert full.projection.share[c] == pytest.approx(
            sum(v[c] for v in results.values()) / valid
        )
        assert full.projection.margin[c] == 0.0


def test_progress_count_errors() -> None:
    frame = _toy_frame()
    with pytest.raises(QuickCountError) as info:
        progress_count([TpsResult("3199011001001", {1: 1})], frame)
    assert info.value.code == "quickcount.unknown_tps"
    dup = TpsResult("3171011001001", {1: 1})
    with pytest.raises(QuickCountError) as info:
        progress_count([dup, dup], frame)
    assert info.value.code == "quickcount.duplicate_tps"
    with pytest.raises(QuickCountError) as info:
        progress_count([dup], {"31.71": 5})
    assert info.value.code == "quickcount.bad_code"
    with pytest.raises(QuickCountError) as info:
        progress_count([], {})
    assert info.value.code == "quickcount.empty_population"
    pc: ProgressCount[int] = progress_count([], frame)
    assert pc.projection is None and pc.overall.tps_counted == 0
    with pytest.raises(QuickCountError) as info:
        pc.region("31.99")
    assert info.value.code == "quickcount.unknown_region"


def test_progress_count_custom_strata() -> None:
    frame = [
        FrameTps(code, dpt, stratum="north" if code < "3171021" else "south")
        for code, dpt in _toy_frame().items()
    ]
    reported = [TpsResult(f.tps, {1: 10 + i, 2: 20}) for i, f in enumerate(frame) if i % 2 == 0]
    pc = progress_count(reported, frame)
    assert pc.strata_total == 2 and pc.projection is not None


def test_progress_count_on_real_dki_arrivals() -> None:
    """Report DKI TPS in the order of their time stamps; the projection by district
    holds the truth within a few margins, and the count at every level adds up."""
    dki = load_dki()
    frame_idx = [i for i in range(len(dki.tps)) if dki.registered[i] is not None]
    frame = {dki.tps[i]: int(dki.registered[i] or 0) for i in frame_idx}
    order = sorted(frame_idx, key=lambda i: (dki.ts[i], dki.tps[i]))
    first = order[: len(order) // 3]
    reported = [
        TpsResult(
            dki.tps[i],
            {k + 1: int(dki.votes[i, k]) for k in range(3)},
            invalid=dki.invalid[i],
            total=dki.total[i],
        )
        for i in first
    ]
    pc = progress_count(reported, frame)
    assert pc.overall.tps_counted == len(first)
    cities = pc.regions("city")
    assert sum(c.tps_counted for c in cities) == len(first)
    assert sum(c.registered_expected for c in cities) == sum(frame.values())
    for level in ("district", "village"):
        assert sum(r.votes[2] for r in pc.regions(level)) == pc.overall.votes[2]
    assert pc.projection is not None
    truth_votes = dki.votes[frame_idx].sum(axis=0)
    truth = truth_votes / truth_votes.sum()
    for k in (1, 2, 3):
        assert abs(pc.projection.share[k] - truth[k - 1]) < 0.02


def test_tally_by_region_matches_a_dictionary_sum() -> None:
    rng = np.random.default_rng(9)
    codes = (
        rng.integers(11, 20, 3000) * 10**11
        + rng.integers(1, 4, 3000) * 10**9
        + rng.integers(1, 5, 3000) * 10**7
        + rng.integers(1001, 1004, 3000) * 10**3
        + np.arange(3000) % 997
    )
    values = rng.integers(0, 300, size=(3000, 2))
    tally = tally_by_region(codes, values)
    for level, width in (("province", 2), ("district", 6), ("village", 10)):
        ref: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for code, row in zip(codes.tolist(), values.tolist(), strict=True):
            key = str(code)[:width]
            ref[key][0] += row[0]
            ref[key][1] += row[1]
            ref[key][2] += 1
        t = tally[level]
        got = {
            str(int(c)).zfill(width): [int(s[0]), int(s[1]), int(n)]
            for c, s, n in zip(t.codes, t.sums, t.n_tps, strict=True)
        }
        assert got == dict(ref)
        assert t.label(0) == region_prefix(str(int(codes.min())).zfill(13), level)
    assert tps_code_to_int(["31.71.01.1001.001", "3171011001002"]).tolist() == [
        3171011001001,
        3171011001002,
    ]


def test_progress_count_arrays_equals_records_path() -> None:
    frame = _toy_frame()
    reported = [
        TpsResult(c, {1: i, 2: 2 * i}, total=3 * i, invalid=0)
        for i, c in enumerate(sorted(frame))
        if i % 3
    ]
    a = progress_count(reported, frame)
    b = progress_count_arrays(
        tps_code_to_int(frame),
        np.asarray(list(frame.values())),
        tps_code_to_int([r.tps for r in reported]),
        np.asarray([[r.votes[1], r.votes[2]] for r in reported]),
        candidates=(1, 2),
        total=[3 * i for i in range(len(frame)) if i % 3],
        invalid=[0] * len(reported),
    )
    assert a.regions("district") == b.regions("district")
    assert a.overall == b.overall
    assert (a.projection is None) == (b.projection is None)


def test_one_candidate_and_non_string_keys() -> None:
    sample: Any = [(1, {"A": 100}), (1, {"A": 80}), (2, {"A": 90})]  # strata need not be str
    est = estimate_shares(sample, population=cast(Any, {1: 5, 2: 1}))
    assert est.share == {"A": 1.0} and est.runner_up is None and est.callable
    assert math.isnan(est.difference)
    assert "only candidate" in est.verdict()
    with pytest.raises(QuickCountError) as info:
        estimate_shares(cast(Any, [([1], {"A": 1})]), population=cast(Any, {1: 5}))
    assert info.value.code == "quickcount.bad_sample"


def test_mixed_candidate_keys_keep_first_appearance_order() -> None:
    est = estimate_shares([("a", {"x": 5, 2: 7}), ("a", {2: 1, "x": 3})], population={"a": 9})
    assert est.candidates == ("x", 2)

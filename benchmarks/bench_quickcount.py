"""Benchmark of the quick count, run by hand:

    PYTHONPATH=src .venv/bin/python benchmarks/bench_quickcount.py [--tps 823000] [--repeat 5]

Every figure is compared with a baseline measured in the same run:

* a 3,000-TPS national sample (38 province strata): ``estimate_shares`` against a
  textbook estimator written as plain Python loops (same formulas, no numpy);
* the full count of a synthetic national frame of 823,000 TPS (38 provinces, 532
  cities, 7,448 districts, 89,376 villages): ``tally_by_region`` and ``progress_count_arrays``
  against ``numpy.unique`` + ``numpy.bincount`` per level and column.

Prints times (best of ``--repeat``) and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sipantau_core.quickcount import (
    TpsResult,
    allocate,
    draw_sample,
    estimate_shares,
    estimate_shares_arrays,
    estimate_shares_batch,
    progress_count,
    progress_count_arrays,
    tally_by_region,
)

LEVELS = ("province", "city", "district", "village")
DIVISORS = {"province": 10**11, "city": 10**9, "district": 10**7, "village": 10**3}


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def row(label: str, seconds: float, baseline: float | None = None) -> None:
    ratio = "" if baseline is None else f"   baseline/this = {baseline / seconds:5.2f}"
    print(f"  {label:<44}{1e3 * seconds:9.2f} ms{ratio}")


def synthetic_nation(n_tps: int, seed: int = 2024) -> dict[str, Any]:
    """A national frame shaped like Indonesia's: 38 provinces of 14 cities of 14
    districts of 12 villages, TPS spread at random over villages, 150-300 voters per
    TPS, three candidates whose support varies by district."""
    rng = np.random.default_rng(seed)
    prov, city, dist, vill = np.meshgrid(
        np.arange(11, 49), np.arange(1, 15), np.arange(1, 15), np.arange(1001, 1013), indexing="ij"
    )
    vcode = (((prov * 100 + city) * 100 + dist) * 10_000 + vill).ravel()  # 89,376 villages
    per_village = rng.multinomial(n_tps, np.full(vcode.size, 1 / vcode.size))
    first = np.repeat(np.cumsum(per_village) - per_village, per_village)
    codes = np.repeat(vcode * 1000, per_village) + (np.arange(n_tps) - first + 1)
    n = codes.size
    registered = rng.integers(150, 301, n)
    district = codes // 10**7
    _, d_idx = np.unique(district, return_inverse=True)
    lean = rng.dirichlet([6, 10, 4], size=int(d_idx.max()) + 1)
    probs = lean[d_idx] * rng.uniform(0.8, 1.2, (n, 3))
    probs /= probs.sum(axis=1, keepdims=True)
    voters = rng.binomial(registered, 0.8)
    valid = voters - rng.binomial(voters, 0.02)
    votes = rng.multinomial(valid, probs).astype(np.int64)
    return {
        "codes": codes.astype(np.int64),
        "registered": registered.astype(np.int64),
        "votes": votes,
        "invalid": (voters - valid).astype(np.float64),
        "total": voters.astype(np.float64),
    }


def naive_estimate(
    sample: Sequence[tuple[str, Mapping[int, int]]], population: Mapping[str, int]
) -> dict[int, tuple[float, float]]:
    """Combined ratio estimate and linearised SE, plain Python loops (the baseline)."""
    strata: dict[str, list[Mapping[int, int]]] = {}
    for h, v in sample:
        strata.setdefault(h, []).append(v)
    cands = sorted({c for _, v in sample for c in v})
    x_hat = 0.0
    y_hat = dict.fromkeys(cands, 0.0)
    for h, rows in strata.items():
        w = population[h] / len(rows)
        for r in rows:
            x_hat += w * sum(r.values())
            for c in cands:
                y_hat[c] += w * r.get(c, 0)
    out = {}
    for c in cands:
        ratio = y_hat[c] / x_hat
        var = 0.0
        for h, rows in strata.items():
            n_h, big_n = len(rows), population[h]
            e = [r.get(c, 0) - ratio * sum(r.values()) for r in rows]
            m = sum(e) / n_h
            var += big_n**2 * (1 - n_h / big_n) * sum((v - m) ** 2 for v in e) / (n_h - 1) / n_h
        out[c] = (ratio, math.sqrt(var) / x_hat)
    return out


def baseline_bincount(codes: npt.NDArray[np.int64], columns: npt.NDArray[np.int64]) -> None:
    for level in LEVELS:
        _, inverse = np.unique(codes // DIVISORS[level], return_inverse=True)
        for j in range(columns.shape[1]):
            np.bincount(inverse, weights=columns[:, j])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tps", type=int, default=823_000)
    parser.add_argument("--sample", type=int, default=3_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--records", action="store_true", help="also time progress_count on records"
    )
    args = parser.parse_args()

    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    t0 = time.perf_counter()
    nation = synthetic_nation(args.tps)
    codes, votes = nation["codes"], nation["votes"]
    n = codes.size
    print(f"synthetic frame: {n:,} TPS, built in {time.perf_counter() - t0:.2f} s\n")

    # ------------------------------------------------------------- 3,000-TPS sample
    province = [f"{c // 10**11}" for c in codes.tolist()]
    frame = dict(zip((f"{c:013d}" for c in codes.tolist()), province, strict=True))
    population = dict.fromkeys(set(province), 0)
    for h in province:
        population[h] += 1
    alloc = allocate(population, args.sample)
    t_draw = best(lambda: draw_sample(frame, alloc, 20240214), 1)
    draw = draw_sample(frame, alloc, 20240214)
    pos = np.searchsorted(codes, np.asarray([int(c) for c in draw.tps]))
    sample = [
        (draw.strata[c], {1: int(votes[i, 0]), 2: int(votes[i, 1]), 3: int(votes[i, 2])})
        for c, i in zip(draw.tps, pos.tolist(), strict=True)
    ]
    strata = [h for h, _ in sample]
    sample_votes = votes[pos]
    t_naive = best(lambda: naive_estimate(sample, population), args.repeat)
    t_est = best(lambda: estimate_shares(sample, population=population), args.repeat)
    t_arr = best(lambda: estimate_shares_arrays(strata, sample_votes, population), args.repeat)
    est = estimate_shares(sample, population=population)
    ref = naive_estimate(sample, population)
    agree = max(abs(est.share[c] - ref[c][0]) + abs(est.se[c] - ref[c][1]) for c in (1, 2, 3))
    print(f"sample of {len(sample):,} TPS in {len(alloc)} strata (draw from frame: {t_draw:.2f} s)")
    row("baseline, plain-Python estimator", t_naive)
    row("estimate_shares (tuples of dicts)", t_est, t_naive)
    row("estimate_shares_arrays (numpy input)", t_arr, t_naive)
    print(f"  max |difference| vs baseline (share + SE): {agree:.1e}")
    lead = est.leader
    print(f"  leader {lead}: {100 * est.share[lead]:.2f} % ± {100 * est.margin[lead]:.2f}")

    # ------------------------------------------------------ 1,000 simulated samples
    rng = np.random.default_rng(1)
    draws = 1_000
    idx = np.stack([rng.choice(n, size=400, replace=False) for _ in range(draws)])
    t_batch = best(
        lambda: estimate_shares_batch(["all"] * 400, votes[idx], {"all": n}), args.repeat
    )
    print(f"\n{draws:,} samples of 400 TPS (estimate_shares_batch): {1e3 * t_batch:.1f} ms")

    # ---------------------------------------------------------------- full count
    columns = np.concatenate([votes, nation["registered"][:, None]], axis=1)
    shuffled = np.random.default_rng(3).permutation(n)
    unsorted_codes, unsorted_cols = codes[shuffled], columns[shuffled]
    t_base = best(lambda: baseline_bincount(unsorted_codes, unsorted_cols), args.repeat)
    t_tally = best(
        lambda: tally_by_region(unsorted_codes, unsorted_cols, levels=LEVELS), args.repeat
    )
    t_tally_sorted = best(lambda: tally_by_region(codes, columns, levels=LEVELS), args.repeat)

    def full_count() -> None:
        progress_count_arrays(
            unsorted_codes,
            nation["registered"][shuffled],
            unsorted_codes,
            votes[shuffled],
            invalid=nation["invalid"][shuffled],
            total=nation["total"][shuffled],
        )

    t_full = best(full_count, args.repeat)
    print(
        f"\nfull count of {n:,} TPS, 4 levels, {columns.shape[1]} columns (input in random order)"
    )
    row("baseline, np.unique + np.bincount", t_base)
    row("tally_by_region", t_tally, t_base)
    row("tally_by_region, input already sorted", t_tally_sorted, t_base)
    row("progress_count_arrays (count + projection)", t_full, t_base)
    if args.records:
        results = [
            TpsResult(f"{c:013d}", {1: int(a), 2: int(b), 3: int(d)})
            for c, (a, b, d) in zip(codes.tolist(), votes.tolist(), strict=True)
        ]
        dpt = dict(
            zip((f"{c:013d}" for c in codes.tolist()), nation["registered"].tolist(), strict=True)
        )
        t_rec = best(lambda: progress_count(results, dpt), 1)
        row(f"progress_count on {n:,} TpsResult records", t_rec, t_base)


if __name__ == "__main__":
    main()

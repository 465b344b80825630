"""Shared test code for the quick count: real data loaders, a naive reference estimator
written with plain loops (independent of the vectorised one), and a fast stratified
sampler for simulations."""

from __future__ import annotations

import csv
import math
from collections.abc import Hashable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TypeVar

import attrs
import numpy as np
import numpy.typing as npt

K = TypeVar("K", bound=Hashable)

DATA = Path(__file__).parents[2] / "shared" / "data"
DKI_CSV = DATA / "dki_pilpres2024_sirekap.csv"
LUBUKLINGGAU_CSV = DATA / "lubuklinggau_pilpres2019_kawalpemilu.csv"


@attrs.frozen(eq=False)
class Dki:
    """The DKI TPS with all three candidate counts (22,511 of 30,766)."""

    tps: list[str]
    votes: npt.NDArray[np.int64]  # (n, 3)
    registered: list[int | None]
    total: list[int | None]
    invalid: list[int | None]
    ts: list[str]

    def truth(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.votes.sum(axis=0) / self.votes.sum(), dtype=np.float64)


def _int(text: str) -> int | None:
    return int(text) if text != "" else None


@cache
def load_dki() -> Dki:
    tps: list[str] = []
    votes: list[list[int]] = []
    registered: list[int | None] = []
    total: list[int | None] = []
    invalid: list[int | None] = []
    ts: list[str] = []
    with DKI_CSV.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if not all(row[f"paslon_{k}"] for k in (1, 2, 3)):
                continue
            tps.append(row["kode_tps"])
            votes.append([int(row[f"paslon_{k}"]) for k in (1, 2, 3)])
            registered.append(_int(row["dpt"]))
            total.append(_int(row["suara_total"]))
            invalid.append(_int(row["suara_tidak_sah"]))
            ts.append(row["ts"])
    return Dki(tps, np.asarray(votes, dtype=np.int64), registered, total, invalid, ts)


def naive_ratio(
    sample: Sequence[tuple[str, Mapping[K, int]]],
    population: Mapping[str, int],
) -> dict[K, tuple[float, float]]:
    """Combined ratio estimate and its linearised variance per candidate, textbook
    formulas with plain loops. Every stratum present must have >= 2 TPS, none empty."""
    candidates = sorted({c for _, v in sample for c in v}, key=repr)
    strata: dict[str, list[Mapping[K, int]]] = {}
    for h, votes in sample:
        strata.setdefault(h, []).append(votes)
    x_hat = 0.0
    y_hat = dict.fromkeys(candidates, 0.0)
    for h, rows in strata.items():
        n_h = len(rows)
        x_hat += population[h] * sum(sum(r.values()) for r in rows) / n_h
        for c in candidates:
            y_hat[c] += population[h] * sum(r.get(c, 0) for r in rows) / n_h
    out: dict[K, tuple[float, float]] = {}
    for c in candidates:
        ratio = y_hat[c] / x_hat
        var = 0.0
        for h, rows in strata.items():
            n_h, big_n = len(rows), population[h]
            e = [r.get(c, 0) - ratio * sum(r.values()) for r in rows]
            mean = sum(e) / n_h
            s2 = sum((v - mean) ** 2 for v in e) / (n_h - 1)
            var += big_n * big_n * (1 - n_h / big_n) * s2 / n_h
        out[c] = (ratio, var / (x_hat * x_hat))
    return out


def naive_difference_se(
    sample: Sequence[tuple[str, Mapping[K, int]]],
    population: Mapping[str, int],
    lead: K,
    second: K,
) -> float:
    """Standard error of share(lead) - share(second) with plain loops."""
    est = naive_ratio(sample, population)
    r_l, r_s = est[lead][0], est[second][0]
    strata: dict[str, list[Mapping[K, int]]] = {}
    for h, votes in sample:
        strata.setdefault(h, []).append(votes)
    x_hat = sum(
        population[h] * sum(sum(r.values()) for r in rows) / len(rows) for h, rows in strata.items()
    )
    var = 0.0
    for h, rows in strata.items():
        n_h, big_n = len(rows), population[h]
        d = [
            (r.get(lead, 0) - r_l * sum(r.values())) - (r.get(second, 0) - r_s * sum(r.values()))
            for r in rows
        ]
        mean = sum(d) / n_h
        var += big_n * big_n * (1 - n_h / big_n) * sum((v - mean) ** 2 for v in d) / (n_h - 1) / n_h
    return math.sqrt(var) / x_hat


def stratified_indices(
    stratum_of_unit: npt.NDArray[np.int64],
    allocation: Sequence[int],
    draws: int,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``draws`` stratified samples without replacement, as a (draws, n) index array
    whose columns keep one stratum layout; also returns the stratum of each column.
    Sampling with replacement and redrawing rows with a repeat is exact for SRSWOR."""
    blocks: list[npt.NDArray[np.int64]] = []
    layout: list[npt.NDArray[np.int64]] = []
    for h, k in enumerate(allocation):
        if k == 0:
            continue
        members = np.flatnonzero(stratum_of_unit == h)
        pick = rng.integers(0, members.size, size=(draws, k))
        while True:
            s = np.sort(pick, axis=1)
            bad = (np.diff(s, axis=1) == 0).any(axis=1)
            if not bad.any():
                break
            pick[bad] = rng.integers(0, members.size, size=(int(bad.sum()), k))
        blocks.append(members[pick])
        layout.append(np.full(k, h, dtype=np.int64))
    return np.concatenate(blocks, axis=1), np.concatenate(layout)

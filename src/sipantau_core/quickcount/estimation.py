"""The stratified combined ratio estimator: shares of the valid votes with
finite-population correction, linearised variance, margins and design effects, for
one sample (:func:`estimate_shares`, :func:`estimate_shares_arrays`) or many at once
(:func:`estimate_shares_batch`), and turnout and the invalid rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic

import attrs
import numpy as np
import numpy.typing as npt

from sipantau_core.quickcount._common import (
    C,
    FloatArray,
    IntArray,
    QuickCountError,
    _check_count,
    _vote_matrix,
    z_value,
)
from sipantau_core.quickcount.strata import Collapse, _Design, _design_from_ids, _strata_ids
from sipantau_core.quickcount.verdict import (
    RatioEstimate,
    ShareEstimate,
    _is_callable,
    _is_significant,
)


def _ratio_core(
    design: _Design, numer: FloatArray, denom: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Combined ratio estimates for ``numer`` (B, n, K) over ``denom`` (B, n), rows
    already in design order. Returns R (B, K), Var (B, K), X̂ (B,), centred scores (B, n, K)."""
    w = design.weights
    x_hat = denom @ w
    y_hat = np.matmul(numer.transpose(0, 2, 1), w)
    safe = np.where(x_hat > 0, x_hat, 1.0)
    r = y_hat / safe[:, None]
    uc = numer - r[:, None, :] * denom[:, :, None]
    uc *= w[None, :, None]
    means = np.add.reduceat(uc, design.starts, axis=1) / design.sizes[None, :, None]
    uc -= np.repeat(means, design.sizes, axis=1)
    var = np.matmul((uc * uc).transpose(0, 2, 1), design.factor) / (safe * safe)[:, None]
    return r, var, x_hat, uc


def _srs_deff(var: float, ratio: float, m: float, total: float) -> float:
    if m <= 0 or total <= 0:
        return math.nan
    v_srs = ratio * (1.0 - ratio) / m * max(0.0, 1.0 - m / total)
    return var / v_srs if v_srs > 0 else math.nan


def _ratio_estimate(
    ids_all: IntArray,
    labels: Sequence[str],
    big_n: IntArray,
    numer: FloatArray,
    denom: FloatArray,
    confidence: float,
    what: str,
    notes: list[str],
    full_design: _Design,
) -> RatioEstimate | None:
    keep = ~(np.isnan(numer) | np.isnan(denom))
    n_keep = int(keep.sum())
    if n_keep < 2:
        if n_keep < keep.size:
            notes.append(f"{what} not estimated: fewer than 2 sampled TPS report it.")
        return None
    if n_keep == keep.size:
        design = full_design
    else:
        try:
            design = _design_from_ids(ids_all[keep], labels, big_n)
        except QuickCountError as exc:
            notes.append(f"{what} not estimated: {exc.message}")
            return None
    y = numer[keep][design.order][None, :, None]
    x = denom[keep][design.order][None, :]
    r, var, x_hat, _ = _ratio_core(design, y, x)
    if not x_hat[0] > 0:
        notes.append(f"{what} not estimated: its denominator is zero in the sample.")
        return None
    est = float(r[0, 0])
    se = math.sqrt(max(float(var[0, 0]), 0.0))
    if n_keep < keep.size:
        notes.append(
            f"{what} estimated from the {n_keep} of {keep.size} sampled TPS that report it."
        )
    z = z_value(confidence)
    return RatioEstimate(
        estimate=est,
        se=se,
        margin=z * se,
        low=max(0.0, est - z * se),
        high=min(1.0, est + z * se),
        margin_95=z_value(0.95) * se,
        margin_99=z_value(0.99) * se,
        confidence=float(confidence),
        design_effect=_srs_deff(float(var[0, 0]), est, float(x.sum()), float(x_hat[0])),
        n_tps=n_keep,
    )


@attrs.frozen
class SampledTps(Generic[C]):
    """One sampled TPS: its stratum, votes per candidate and, optionally, registered
    voters (DPT), invalid votes and total votes for turnout and invalid rate."""

    stratum: str
    votes: Mapping[C, int]
    registered: int | None = None
    invalid: int | None = None
    total: int | None = None


def estimate_shares(
    sample: Iterable[tuple[str, Mapping[C, int]] | SampledTps[C]],
    population: Mapping[str, int],
    *,
    confidence: float = 0.95,
) -> ShareEstimate[C]:
    """Estimate each candidate's share of the valid votes from a stratified TPS sample.

    ``sample`` holds ``(stratum, {candidate: votes})`` pairs or :class:`SampledTps`;
    ``population`` maps every stratum of the frame to its number of TPS. The valid
    votes of a TPS are the sum of its candidate votes (checking them against the tally
    sheet is ``check_tally``'s job). Turnout and the invalid rate are estimated when
    sampled TPS carry ``registered``/``total`` and ``invalid``/``total``.
    """
    z_value(confidence)
    strata: list[str] = []
    rows: list[Mapping[C, int]] = []
    rich: list[tuple[int, SampledTps[C]]] = []
    for item in sample:
        if isinstance(item, SampledTps):
            rich.append((len(rows), item))
            strata.append(item.stratum)
            rows.append(item.votes)
            continue
        try:
            stratum, votes = item
        except (TypeError, ValueError):
            raise QuickCountError(
                "each sampled TPS must be a (stratum, votes) pair or a SampledTps",
                code="quickcount.bad_sample",
            ) from None
        strata.append(stratum)
        rows.append(votes)
    if not rows:
        raise QuickCountError("the sample has no TPS", code="quickcount.empty_sample")
    candidates, matrix = _vote_matrix(rows)
    columns = np.full((3, len(rows)), math.nan)
    for i, tps in rich:
        for j, (value, what) in enumerate(
            ((tps.registered, "registered"), (tps.invalid, "invalid"), (tps.total, "total"))
        ):
            if value is not None:
                columns[j, i] = _check_count(value, what)
    return estimate_shares_arrays(
        strata,
        matrix,
        population,
        candidates=candidates,
        confidence=confidence,
        registered=columns[0],
        invalid=columns[1],
        total=columns[2],
    )


def estimate_shares_arrays(
    strata: Sequence[str],
    votes: npt.ArrayLike,
    population: Mapping[str, int],
    *,
    candidates: Sequence[C] | None = None,
    confidence: float = 0.95,
    registered: npt.ArrayLike | None = None,
    invalid: npt.ArrayLike | None = None,
    total: npt.ArrayLike | None = None,
) -> ShareEstimate[Any]:
    """:func:`estimate_shares` over arrays: ``votes`` is (n TPS, K candidates); optional
    ``registered``, ``invalid`` and ``total`` are length n with NaN for "not reported".
    ``candidates`` names the columns (default 0..K-1)."""
    z_value(confidence)
    y = np.asarray(votes, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != len(strata) or y.shape[1] == 0:
        raise QuickCountError(
            f"votes must be an (n, K) array with one row per stratum label; got shape "
            f"{y.shape} for {len(strata)} labels",
            code="quickcount.shape_mismatch",
        )
    if np.isnan(y).any() or (y < 0).any():
        raise QuickCountError(
            "votes must be non-negative and complete", code="quickcount.negative_count"
        )
    names: tuple[Any, ...] = tuple(range(y.shape[1])) if candidates is None else tuple(candidates)
    if len(names) != y.shape[1]:
        raise QuickCountError(
            "candidates must name every column of votes", code="quickcount.shape_mismatch"
        )
    ids, labels, big_n = _strata_ids(strata, population)
    n = len(strata)
    return _estimate(
        ids,
        labels,
        big_n,
        y,
        names,
        confidence,
        _optional_column(registered, n, "registered"),
        _optional_column(invalid, n, "invalid"),
        _optional_column(total, n, "total"),
    )


def _optional_column(a: npt.ArrayLike | None, n: int, what: str) -> FloatArray:
    if a is None:
        return np.full(n, math.nan)
    arr = np.asarray(a, dtype=np.float64)
    if arr.shape != (n,):
        raise QuickCountError(
            f"{what} must have one value per TPS (NaN for not reported)",
            code="quickcount.shape_mismatch",
        )
    if (arr < 0).any():
        raise QuickCountError(f"{what} must not be negative", code="quickcount.negative_count")
    return arr


def _estimate(
    ids: IntArray,
    labels: Sequence[str],
    big_n: IntArray,
    y: FloatArray,
    names: tuple[Any, ...],
    confidence: float,
    reg: FloatArray,
    inv: FloatArray,
    tot: FloatArray,
) -> ShareEstimate[Any]:
    z = z_value(confidence)
    design = _design_from_ids(ids, labels, big_n)
    yo = y[design.order]
    x = yo.sum(axis=1)
    r3, var3, x_hat3, uc3 = _ratio_core(design, yo[None], x[None])
    if not x_hat3[0] > 0:
        raise QuickCountError(
            "the sampled TPS have no valid votes, so shares are undefined",
            code="quickcount.no_valid_votes",
        )
    r = r3[0]
    var = np.maximum(var3[0], 0.0)
    se = np.sqrt(var)
    cov = (uc3[0] * design.factor[:, None]).T @ uc3[0] / (x_hat3[0] ** 2)
    m = float(x.sum())
    x_total = float(x_hat3[0])
    deff = [_srs_deff(float(var[j]), float(r[j]), m, x_total) for j in range(len(names))]
    # vs SRS of TPS: weighted population variance of the residuals y - R x
    e = yo - r[None, :] * x[:, None]
    w = design.weights
    sw = float(w.sum())
    e_bar = (w @ e) / sw
    s2 = (w @ ((e - e_bar) ** 2)) / max(sw - 1.0, 1e-300)
    n = design.n_tps
    big_total = design.population_tps
    x_bar = x_total / big_total
    v_tps = (1.0 - n / big_total) * s2 / (n * x_bar * x_bar)
    deff_tps = [float(var[j] / v_tps[j]) if v_tps[j] > 0 else math.nan for j in range(len(names))]

    order = sorted(range(len(names)), key=lambda j: (-r[j], j))
    lead = order[0]
    z95, z99 = z_value(0.95), z_value(0.99)
    low = np.clip(r - z * se, 0.0, 1.0)
    high = np.clip(r + z * se, 0.0, 1.0)
    notes = list(design.notes)
    if len(names) > 1:
        second = order[1]
        diff = float(r[lead] - r[second])
        var_d = float(cov[lead, lead] + cov[second, second] - 2.0 * cov[lead, second])
        diff_se = math.sqrt(max(var_d, 0.0))
        callable_ = _is_callable(low, high, order)
        significant = _is_significant(diff, diff_se, z)
        runner: Any = names[second]
    else:
        diff, diff_se, callable_, significant, runner = math.nan, math.nan, True, True, None
        notes.append("only one candidate appears in the sample.")

    def as_map(values: Any) -> dict[Any, float]:
        return {c: float(values[j]) for j, c in enumerate(names)}

    turnout = None
    invalid_rate = None
    if not np.isnan(reg).all() and not np.isnan(tot).all():
        turnout = _ratio_estimate(
            ids, labels, big_n, tot, reg, confidence, "turnout", notes, design
        )
    if not np.isnan(inv).all() and not np.isnan(tot).all():
        invalid_rate = _ratio_estimate(
            ids, labels, big_n, inv, tot, confidence, "invalid rate", notes, design
        )
    return ShareEstimate(
        candidates=names,
        share=as_map(r),
        se=as_map(se),
        margin=as_map(z * se),
        low=as_map(low),
        high=as_map(high),
        margin_95=as_map(z95 * se),
        margin_99=as_map(z99 * se),
        confidence=float(confidence),
        design_effect=deff[lead],
        design_effects=as_map(deff),
        design_effects_tps=as_map(deff_tps),
        leader=names[lead],
        runner_up=runner,
        difference=diff,
        difference_se=diff_se,
        difference_margin=z * diff_se,
        difference_significant=bool(significant),
        callable=bool(callable_),
        n_tps=design.n_tps,
        n_strata=design.n_strata,
        population_tps=design.population_tps,
        sample_valid_votes=round(m),
        turnout=turnout,
        invalid_rate=invalid_rate,
        collapsed=design.collapsed,
        notes=tuple(notes),
    )


@attrs.frozen(eq=False)
class BatchEstimate:
    """Estimates for B samples sharing one stratum layout: ``share``, ``se`` and
    ``margin`` are (B, K) arrays of fractions; ``margin`` is at ``confidence``."""

    share: FloatArray
    se: FloatArray
    margin: FloatArray
    confidence: float
    collapsed: tuple[Collapse, ...]
    notes: tuple[str, ...]


def estimate_shares_batch(
    strata: Sequence[str],
    votes: npt.ArrayLike,
    population: Mapping[str, int],
    *,
    confidence: float = 0.95,
) -> BatchEstimate:
    """The estimator of :func:`estimate_shares` for B samples at once (simulations).

    ``votes`` is (B, n, K): B samples of n TPS whose i-th TPS lies in stratum
    ``strata[i]`` in every sample. Vectorised; memory is bounded by working in chunks.
    """
    z = z_value(confidence)
    y = np.asarray(votes, dtype=np.float64)
    if y.ndim != 3 or y.shape[1] != len(strata) or y.shape[2] == 0:
        raise QuickCountError(
            f"votes must be a (B, n, K) array with n = {len(strata)}; got shape {y.shape}",
            code="quickcount.shape_mismatch",
        )
    if np.isnan(y).any() or (y < 0).any():
        raise QuickCountError(
            "votes must be non-negative and complete", code="quickcount.negative_count"
        )
    ids, labels, big_n = _strata_ids(strata, population)
    design = _design_from_ids(ids, labels, big_n)
    chunk = max(1, 2_000_000 // max(1, y.shape[1] * y.shape[2]))
    shares: list[FloatArray] = []
    ses: list[FloatArray] = []
    for start in range(0, y.shape[0], chunk):
        part = y[start : start + chunk][:, design.order, :]
        x = part.sum(axis=2)
        r, var, x_hat, _ = _ratio_core(design, part, x)
        r[~(x_hat > 0)] = math.nan
        shares.append(r)
        ses.append(np.sqrt(np.maximum(var, 0.0)))
    share = np.concatenate(shares) if shares else np.zeros((0, y.shape[2]))
    se = np.concatenate(ses) if ses else np.zeros((0, y.shape[2]))
    return BatchEstimate(
        share=share,
        se=se,
        margin=z * se,
        confidence=float(confidence),
        collapsed=design.collapsed,
        notes=design.notes,
    )

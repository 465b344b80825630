"""Statistical anomaly screens over per-TPS results, and two-source reconciliation.

Pure functions. A screen points a human at TPS or regions worth a second look; it
proves nothing by itself. The tally-rule verdicts per TPS (sums, caps) come from the
core's ``check_tally``; this module adds what only shows across many TPS:

* :func:`turnout_outliers` — turnout far from the TPS's own district (robust z-score on
  median and MAD, Iglewicz–Hoaglin, threshold 3.5 by default);
* :func:`single_candidate_tps` — one candidate with every valid vote at a TPS with more
  than 50 valid votes;
* :func:`last_digit_test` / :func:`last_digit_by_region` — χ² test (9 df) of the last
  digits of vote counts of at least 10 against the uniform distribution;
* :func:`second_digit_benford` — **advisory only**: capped TPS sizes make the Benford
  second-digit test fail on clean data, so it never raises a flag (see
  :data:`BENFORD_WARNING`);
* :func:`reconcile` and :func:`load_kawalpemilu_csv` — every TPS where two sources
  disagree, field by field.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Generic, Literal, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from sipantau_core.errors import SipantauError
from sipantau_core.quickcount import QuickCountError, region_prefix

__all__ = [
    "BENFORD_WARNING",
    "AnomalyError",
    "BenfordAdvisory",
    "DigitTest",
    "Discrepancy",
    "SingleCandidateTps",
    "TurnoutOutlier",
    "TwoSources",
    "chi2_sf",
    "last_digit_by_region",
    "last_digit_test",
    "load_kawalpemilu_csv",
    "reconcile",
    "second_digit_benford",
    "single_candidate_tps",
    "turnout_outliers",
]

C = TypeVar("C", bound=Hashable)
FloatArray = npt.NDArray[np.float64]


class AnomalyError(SipantauError, ValueError):
    """Invalid input to an anomaly screen; ``code`` is stable (e.g. ``anomalies.bad_csv``)."""

    code: str = "anomalies.error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)


def _region(code: str, level: str) -> str:
    try:
        return region_prefix(code, level)
    except QuickCountError as exc:
        raise AnomalyError(exc.message, code="anomalies.bad_code") from None


# ----------------------------------------------------------------------------- turnout


@attrs.frozen
class TurnoutOutlier:
    """A TPS whose turnout lies far from its region's: ``robust_z`` is
    ``0.6745 (turnout - median) / MAD`` over the region's TPS (fractions, not %)."""

    tps: str
    region: str
    turnout: float
    median: float
    mad: float
    robust_z: float


def _group_median(values: FloatArray, gid: npt.NDArray[np.int64], n_groups: int) -> FloatArray:
    order = np.lexsort((values, gid))
    xs = values[order]
    counts = np.bincount(gid, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    lo = xs[np.maximum(starts + (counts - 1) // 2, 0)]
    hi = xs[np.maximum(starts + counts // 2, 0)]
    return np.where(counts > 0, (lo + hi) / 2.0, math.nan)


def turnout_outliers(
    records: Iterable[tuple[str, int | None, int | None]],
    *,
    threshold: float = 3.5,
    level: str = "district",
    min_tps: int = 5,
) -> list[TurnoutOutlier]:
    """TPS whose turnout is an outlier within their own region (district by default).

    ``records`` are ``(tps code, registered voters, voters)``; a TPS with no registered
    voters or a missing figure is skipped, as is a region with fewer than ``min_tps``
    usable TPS. Modified z-score of Iglewicz and Hoaglin: ``0.6745 (x - median) / MAD``;
    when the MAD is 0 it falls back to ``(x - median) / (1.2533 · mean absolute
    deviation)``. Flagged when ``|z| > threshold``. Sorted by TPS code.
    """
    if not threshold > 0:
        raise AnomalyError("threshold must be positive", code="anomalies.bad_parameter")
    tps: list[str] = []
    regions: list[str] = []
    turnout: list[float] = []
    for code, registered, voters in records:
        if registered is None or voters is None or registered <= 0:
            continue
        if voters < 0:
            raise AnomalyError(
                f"TPS {code}: voters must not be negative", code="anomalies.negative_count"
            )
        tps.append(code)
        regions.append(_region(code, level))
        turnout.append(voters / registered)
    if not tps:
        return []
    labels, gid_raw = np.unique(np.asarray(regions), return_inverse=True)
    gid = gid_raw.astype(np.int64).ravel()
    x = np.asarray(turnout, dtype=np.float64)
    n_groups = len(labels)
    counts = np.bincount(gid, minlength=n_groups)
    med = _group_median(x, gid, n_groups)
    dev = np.abs(x - med[gid])
    mad = _group_median(dev, gid, n_groups)
    mean_ad = np.bincount(gid, weights=dev, minlength=n_groups) / np.maximum(counts, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(
            mad[gid] > 0,
            0.6745 * (x - med[gid]) / mad[gid],
            np.where(mean_ad[gid] > 0, (x - med[gid]) / (1.253314 * mean_ad[gid]), 0.0),
        )
    flagged = np.flatnonzero((np.abs(z) > threshold) & (counts[gid] >= min_tps))
    out = [
        TurnoutOutlier(
            tps=tps[i],
            region=str(labels[gid[i]]),
            turnout=float(x[i]),
            median=float(med[gid[i]]),
            mad=float(mad[gid[i]]),
            robust_z=float(z[i]),
        )
        for i in flagged.tolist()
    ]
    return sorted(out, key=lambda o: o.tps)


# ------------------------------------------------------------------- one-candidate TPS


@attrs.frozen
class SingleCandidateTps(Generic[C]):
    """A TPS where ``candidate`` received every one of the ``votes`` valid votes."""

    tps: str
    candidate: C
    votes: int


def single_candidate_tps(
    records: Iterable[tuple[str, Mapping[C, int]]],
    *,
    min_votes: int = 50,
) -> list[SingleCandidateTps[C]]:
    """TPS with more than ``min_votes`` valid votes (the sum of the candidate votes), all
    of them for one candidate. Sorted by TPS code."""
    out: list[SingleCandidateTps[C]] = []
    for code, votes in records:
        valid = 0
        top: C | None = None
        top_votes = -1
        for cand, v in votes.items():
            if v < 0:
                raise AnomalyError(
                    f"TPS {code}: votes must not be negative", code="anomalies.negative_count"
                )
            valid += v
            if v > top_votes:
                top, top_votes = cand, v
        if valid > min_votes and top is not None and top_votes == valid:
            out.append(SingleCandidateTps(tps=code, candidate=top, votes=valid))
    return sorted(out, key=lambda s: s.tps)


# ------------------------------------------------------------------------- digit tests


def chi2_sf(x: float, df: int) -> float:
    """Upper tail P(X ≥ x) of the χ² distribution with integer ``df`` (closed form)."""
    if df < 1 or int(df) != df:
        raise AnomalyError("df must be a positive integer", code="anomalies.bad_parameter")
    if math.isnan(x):
        return math.nan
    if x <= 0:
        return 1.0
    half = x / 2.0
    if df % 2 == 0:
        total = sum(
            math.exp(j * math.log(half) - half - math.lgamma(j + 1)) for j in range(df // 2)
        )
    else:
        total = math.erfc(math.sqrt(half))
        log_odd = 0.0  # log(1 · 3 · ... · (2r - 1))
        for r in range(1, (df - 1) // 2 + 1):
            log_odd += math.log(2 * r - 1)
            total += 2.0 * math.exp(
                -half - 0.5 * math.log(2 * math.pi) + (r - 0.5) * math.log(x) - log_odd
            )
    return min(1.0, max(0.0, total))


@attrs.frozen
class DigitTest:
    """χ² goodness-of-fit of the last digits (0-9) against uniform.

    ``n`` counts used (those ≥ ``min_count``); ``observed`` per digit 0-9; ``flag`` is
    ``p_value < alpha``. With fewer than ``min_n`` counts (expected < 5 per digit) the
    p-value is NaN, ``flag`` is False and ``note`` says why.
    """

    statistic: float
    p_value: float
    df: int
    n: int
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    alpha: float
    flag: bool
    note: str = ""


def _chi2(observed: npt.NDArray[np.int64], probs: FloatArray) -> tuple[float, FloatArray]:
    n = int(observed.sum())
    expected = n * probs
    stat = float((((observed - expected) ** 2) / expected).sum()) if n else math.nan
    return stat, expected


def last_digit_test(
    counts: Iterable[int],
    *,
    alpha: float = 0.05,
    min_count: int = 10,
    min_n: int = 50,
) -> DigitTest:
    """Last-digit test over vote counts: only counts ≥ ``min_count`` take part (small
    counts do not have uniform last digits). 9 degrees of freedom."""
    if not 0.0 < alpha < 1.0:
        raise AnomalyError("alpha must be in (0, 1)", code="anomalies.bad_parameter")
    arr = np.asarray([int(c) for c in counts], dtype=np.int64)
    used = arr[arr >= min_count]
    observed = np.bincount(used % 10, minlength=10).astype(np.int64)
    stat, expected = _chi2(observed, np.full(10, 0.1))
    n = int(used.size)
    note = ""
    p = chi2_sf(stat, 9) if n else math.nan
    if n < min_n:
        p = math.nan
        note = f"only {n} counts of at least {min_count}; the test needs {min_n}"
    return DigitTest(
        statistic=stat,
        p_value=p,
        df=9,
        n=n,
        observed=tuple(int(v) for v in observed),
        expected=tuple(float(v) for v in expected),
        alpha=float(alpha),
        flag=bool(n >= min_n and p < alpha),
        note=note,
    )


def last_digit_by_region(
    records: Iterable[tuple[str, Mapping[C, int]]],
    *,
    level: str = "city",
    alpha: float = 0.05,
    min_count: int = 10,
    min_n: int = 50,
) -> dict[str, DigitTest]:
    """:func:`last_digit_test` per region over every candidate count at its TPS.

    At ``alpha`` about ``alpha`` of clean regions are flagged by chance; divide alpha by
    the number of regions (Bonferroni) to control the desk-wide false-alarm rate.
    """
    by_region: dict[str, list[int]] = {}
    for code, votes in records:
        by_region.setdefault(_region(code, level), []).extend(int(v) for v in votes.values())
    return {
        region: last_digit_test(values, alpha=alpha, min_count=min_count, min_n=min_n)
        for region, values in sorted(by_region.items())
    }


BENFORD_WARNING = (
    "Advisory only: the second-digit Benford test is not evidence of fraud in TPS "
    "results. Vote counts at a TPS are bounded by its register (at most 300 voters per "
    "TPS in the 2024 general election, 600 in the 2024 Pilkada), so they span less than "
    "one order of magnitude and their second digits do not follow Benford's law even "
    "when every count is honest. A deviation here never raises an anomaly flag."
)
"""Why :func:`second_digit_benford` never flags."""


def _benford_second() -> FloatArray:
    d1 = np.arange(1, 10)
    return np.asarray(
        [float(np.log10(1.0 + 1.0 / (10 * d1 + d)).sum()) for d in range(10)], dtype=np.float64
    )


@attrs.frozen
class BenfordAdvisory:
    """Second-digit Benford χ² (9 df), **advisory only**: ``flag`` is always False and
    ``advisory_only`` always True; ``deviates`` says whether ``p_value < alpha``, which
    on TPS data happens for clean elections too (see ``warning``)."""

    statistic: float
    p_value: float
    df: int
    n: int
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    alpha: float
    deviates: bool
    warning: str = BENFORD_WARNING
    flag: bool = attrs.field(default=False, init=False)
    advisory_only: bool = attrs.field(default=True, init=False)


def second_digit_benford(
    counts: Iterable[int],
    *,
    alpha: float = 0.05,
    min_count: int = 10,
) -> BenfordAdvisory:
    """Second digits of counts ≥ ``min_count`` against Benford's second-digit law.
    Never flags: read :data:`BENFORD_WARNING` before showing it to anyone."""
    if not 0.0 < alpha < 1.0:
        raise AnomalyError("alpha must be in (0, 1)", code="anomalies.bad_parameter")
    arr = np.asarray([int(c) for c in counts], dtype=np.int64)
    used = arr[arr >= max(10, min_count)]
    digits = np.asarray([int(str(v)[1]) for v in used.tolist()], dtype=np.int64)
    observed = np.bincount(digits, minlength=10).astype(np.int64)
    stat, expected = _chi2(observed, _benford_second())
    p = chi2_sf(stat, 9) if used.size else math.nan
    return BenfordAdvisory(
        statistic=stat,
        p_value=p,
        df=9,
        n=int(used.size),
        observed=tuple(int(v) for v in observed),
        expected=tuple(float(v) for v in expected),
        alpha=float(alpha),
        deviates=bool(used.size and p < alpha),
    )


# ---------------------------------------------------------------------- reconciliation

DiscrepancyKind = Literal["differs", "blank_in_a", "blank_in_b", "missing_in_a", "missing_in_b"]


@attrs.frozen
class Discrepancy:
    """Where two sources disagree on a TPS.

    ``kind``: ``differs`` (both give the field, different values); ``blank_in_a`` /
    ``blank_in_b`` (one source leaves the field empty); ``missing_in_a`` /
    ``missing_in_b`` (the TPS is absent from one source: ``field`` is None).
    """

    tps: str
    field: str | None
    a: int | None
    b: int | None
    kind: DiscrepancyKind


def reconcile(
    a: Mapping[str, Mapping[str, int | None]],
    b: Mapping[str, Mapping[str, int | None]],
    *,
    fields: Sequence[str] | None = None,
) -> list[Discrepancy]:
    """Every disagreement between two sources of per-TPS figures (TPS code -> {field:
    value or None}), sorted by TPS then field order. A field absent from a TPS's mapping
    counts as blank; blank in both is agreement. ``fields`` restricts the comparison
    (default: every field either source gives, in order of appearance)."""
    out: list[Discrepancy] = []
    for tps in sorted(set(a) | set(b)):
        in_a, in_b = tps in a, tps in b
        if not in_b:
            out.append(Discrepancy(tps, None, None, None, "missing_in_b"))
            continue
        if not in_a:
            out.append(Discrepancy(tps, None, None, None, "missing_in_a"))
            continue
        ra, rb = a[tps], b[tps]
        names = list(fields) if fields is not None else list(dict.fromkeys([*ra, *rb]))
        for field in names:
            va, vb = ra.get(field), rb.get(field)
            if va == vb:
                continue
            if va is None:
                kind: DiscrepancyKind = "blank_in_a"
            elif vb is None:
                kind = "blank_in_b"
            else:
                kind = "differs"
            out.append(Discrepancy(tps, field, va, vb, kind))
    return out


@attrs.frozen
class TwoSources:
    """Two readings of the same TPS: ``a`` and ``b`` map a TPS key to its fields;
    ``places`` gives (district, village, TPS number) and ``registered`` the DPT per key."""

    a: Mapping[str, Mapping[str, int | None]]
    b: Mapping[str, Mapping[str, int | None]]
    a_name: str
    b_name: str
    places: Mapping[str, tuple[str, str, int]]
    registered: Mapping[str, int | None]


KAWALPEMILU_FIELDS: Mapping[str, str] = {
    "pas1": "paslon_1",
    "pas2": "paslon_2",
    "sah": "suara_sah",
    "tsah": "suara_tidak_sah",
    "jum": "suara_total",
}
"""Column suffixes of the kawalpemilu extract and the field names they become."""


def _cell(row: Mapping[str, str], column: str, line: int) -> int | None:
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise AnomalyError(
            f"line {line}, column {column}: {text!r} is not an integer",
            code="anomalies.bad_csv",
        ) from None
    if value < 0:
        raise AnomalyError(
            f"line {line}, column {column}: negative count", code="anomalies.bad_csv"
        )
    return value


def load_kawalpemilu_csv(path: str | os.PathLike[str]) -> TwoSources:
    """Read a kawalpemilu 2019 extract (``kpu_*`` official site, ``kp_*`` crowdsourced
    photo reading) into two sources for :func:`reconcile`.

    The TPS key is ``"<kel_id>/<tps, 3 digits>"`` (e.g. ``"20679/001"``); fields are
    ``paslon_1``, ``paslon_2``, ``suara_sah``, ``suara_tidak_sah``, ``suara_total``; an
    empty cell is ``None``.
    """
    needed = ["kecamatan", "kelurahan", "kel_id", "tps", "dpt"]
    for src in ("kpu", "kp"):
        needed += [f"{src}_{s}" for s in KAWALPEMILU_FIELDS]
    a: dict[str, dict[str, int | None]] = {}
    b: dict[str, dict[str, int | None]] = {}
    places: dict[str, tuple[str, str, int]] = {}
    registered: dict[str, int | None] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise AnomalyError(
                f"{os.fspath(path)}: missing columns {', '.join(missing)}",
                code="anomalies.bad_csv",
            )
        for line, row in enumerate(reader, start=2):
            tps_no = _cell(row, "tps", line)
            kel = (row["kel_id"] or "").strip()
            if tps_no is None or not kel:
                raise AnomalyError(
                    f"line {line}: kel_id and tps are required", code="anomalies.bad_csv"
                )
            key = f"{kel}/{tps_no:03d}"
            if key in a:
                raise AnomalyError(
                    f"line {line}: TPS {key} appears twice", code="anomalies.bad_csv"
                )
            a[key] = {f: _cell(row, f"kpu_{s}", line) for s, f in KAWALPEMILU_FIELDS.items()}
            b[key] = {f: _cell(row, f"kp_{s}", line) for s, f in KAWALPEMILU_FIELDS.items()}
            places[key] = (row["kecamatan"], row["kelurahan"], tps_no)
            registered[key] = _cell(row, "dpt", line)
    return TwoSources(
        a=a, b=b, a_name="kpu", b_name="kawalpemilu", places=places, registered=registered
    )

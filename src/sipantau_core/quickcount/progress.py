"""The progress count: every reported TPS tallied at every region level, and a projection
of the final shares by stratum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic

import attrs
import numpy as np
import numpy.typing as npt

from sipantau_core.quickcount._common import (
    _DIVISOR,
    _LEVEL_OF_LENGTH,
    C,
    FloatArray,
    IntArray,
    QuickCountError,
    _check_count,
    _check_level,
    _digits,
    _format_prefix,
    _vote_matrix,
    region_prefix,
    tps_code_to_int,
    z_value,
)
from sipantau_core.quickcount.estimation import _estimate
from sipantau_core.quickcount.verdict import ShareEstimate


@attrs.frozen(eq=False)
class RegionTotals:
    """Column sums per region at one level: ``codes`` are the regions' compact codes as
    integers (3171 for 31.71), ``n_tps`` the TPS per region, ``sums`` (regions, columns)."""

    level: str
    codes: IntArray
    n_tps: IntArray
    sums: IntArray

    def label(self, i: int) -> str:
        """The dotted code of region ``i``."""
        return _format_prefix(int(self.codes[i]), self.level)


def tally_by_region(
    tps: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    levels: Sequence[str] = ("province", "city", "district", "village"),
) -> dict[str, RegionTotals]:
    """Sum per-TPS ``values`` (n,) or (n, m) over the regions of each level.

    ``tps`` are 13-digit TPS codes as int64 (see :func:`tps_code_to_int`). One sort, then
    ``numpy.add.reduceat`` per level: a full national count in well under a second.
    """
    codes = np.asarray(tps, dtype=np.int64)
    vals = np.asarray(values, dtype=np.int64)
    if vals.ndim == 1:
        vals = vals[:, None]
    if codes.ndim != 1 or vals.ndim != 2 or vals.shape[0] != codes.shape[0]:
        raise QuickCountError(
            "tps must be (n,) and values (n,) or (n, m)", code="quickcount.shape_mismatch"
        )
    for level in levels:
        _check_level(level)
    if codes.size and (codes.min() < 10**12 or codes.max() >= 10**13):
        raise QuickCountError(
            "tps must be 13-digit TPS codes as integers", code="quickcount.bad_code"
        )
    if codes.size > 1 and not bool(np.all(codes[1:] >= codes[:-1])):
        order = np.argsort(codes)  # integer sums do not depend on the order
        codes = codes[order]
        vals = vals[order]
    out: dict[str, RegionTotals] = {}
    for level in levels:
        prefix = codes // _DIVISOR[level]
        if codes.size == 0:
            out[level] = RegionTotals(
                level,
                np.zeros(0, dtype=np.int64),
                np.zeros(0, dtype=np.int64),
                np.zeros((0, vals.shape[1]), dtype=np.int64),
            )
            continue
        starts = np.concatenate(([0], np.flatnonzero(prefix[1:] != prefix[:-1]) + 1))
        out[level] = RegionTotals(
            level=level,
            codes=prefix[starts],
            n_tps=np.diff(np.append(starts, codes.size)).astype(np.int64),
            sums=np.add.reduceat(vals, starts, axis=0),
        )
    return out


@attrs.frozen
class TpsResult(Generic[C]):
    """The result of one reported TPS for the progress count. ``tps`` is its 13-digit
    code; ``invalid`` and ``total`` may be ``None`` (not reported)."""

    tps: str
    votes: Mapping[C, int]
    invalid: int | None = None
    total: int | None = None


@attrs.frozen
class FrameTps:
    """One expected TPS: its code, registered voters (DPT) and, optionally, a stratum
    label (default: its region at the progress count's ``stratum_level``)."""

    tps: str
    registered: int
    stratum: str | None = None


@attrs.frozen
class RegionCount(Generic[C]):
    """The count so far in one region. ``share`` is of the counted valid votes (NaN
    when none); ``turnout`` is total votes over the DPT of the TPS that reported a total."""

    code: str
    level: str
    tps_expected: int
    tps_counted: int
    registered_expected: int
    registered_counted: int
    votes: Mapping[C, int]
    valid: int
    invalid: int
    total: int
    registered_with_total: int

    @property
    def share_tps(self) -> float:
        """Fraction of the region's TPS counted."""
        return self.tps_counted / self.tps_expected if self.tps_expected else math.nan

    @property
    def share_registered(self) -> float:
        """Fraction of the region's registered voters whose TPS is counted."""
        if not self.registered_expected:
            return math.nan
        return self.registered_counted / self.registered_expected

    @property
    def share(self) -> dict[C, float]:
        if not self.valid:
            return dict.fromkeys(self.votes, math.nan)
        return {c: v / self.valid for c, v in self.votes.items()}

    @property
    def turnout(self) -> float:
        if not self.registered_with_total:
            return math.nan
        return self.total / self.registered_with_total


# columns of the reported table
_R_VALID, _R_INVALID, _R_TOTAL, _R_REG_TOTAL, _R_REG, _R_TPS = range(6)


@attrs.frozen(eq=False)
class RegionTable(Generic[C]):
    """All regions of one level, as arrays (rows sorted by code)."""

    level: str
    candidates: tuple[C, ...]
    codes: IntArray
    tps_expected: IntArray
    registered_expected: IntArray
    counted: IntArray  # (regions, 6 + K): see the _R_* columns, then votes per candidate

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def row(self, i: int) -> RegionCount[C]:
        c = self.counted[i]
        return RegionCount(
            code=_format_prefix(int(self.codes[i]), self.level),
            level=self.level,
            tps_expected=int(self.tps_expected[i]),
            tps_counted=int(c[_R_TPS]),
            registered_expected=int(self.registered_expected[i]),
            registered_counted=int(c[_R_REG]),
            votes={k: int(c[6 + j]) for j, k in enumerate(self.candidates)},
            valid=int(c[_R_VALID]),
            invalid=int(c[_R_INVALID]),
            total=int(c[_R_TOTAL]),
            registered_with_total=int(c[_R_REG_TOTAL]),
        )

    def find(self, code: str) -> RegionCount[C] | None:
        digits = _digits(code)
        value = int(digits)
        i = int(np.searchsorted(self.codes, value))
        if i < len(self) and int(self.codes[i]) == value:
            return self.row(i)
        return None


@attrs.frozen(eq=False)
class ProgressCount(Generic[C]):
    """The count as reports arrive: every region of every level with the share of its
    TPS and registered voters counted, and a projection by stratum when enough strata
    have reported (``projection`` is ``None`` otherwise and ``projection_note`` says
    why). ``coverage`` is the fraction of the frame's registered voters in strata with
    at least ``min_reports_per_stratum`` reported TPS."""

    candidates: tuple[C, ...]
    overall: RegionCount[C]
    tables: Mapping[str, RegionTable[C]]
    projection: ShareEstimate[C] | None
    projection_note: str
    stratum_level: str
    strata_total: int
    strata_covered: int
    coverage: float

    def region(self, code: str) -> RegionCount[C]:
        """The count in one region, e.g. ``"31.71.01"``."""
        digits = _digits(code)
        level = _LEVEL_OF_LENGTH[len(digits)]
        found = self.tables[level].find(code) if level in self.tables else None
        if found is None:
            raise QuickCountError(
                f"region {code!r} is not in the frame or its level is not tallied",
                code="quickcount.unknown_region",
            )
        return found

    def regions(self, level: str) -> list[RegionCount[C]]:
        """Every region of ``level``, sorted by code."""
        if level not in self.tables:
            raise QuickCountError(f"level {level!r} was not tallied", code="quickcount.bad_level")
        table = self.tables[level]
        return [table.row(i) for i in range(len(table))]


def progress_count(
    reported: Iterable[TpsResult[C]],
    frame: Mapping[str, int] | Iterable[FrameTps],
    *,
    stratum_level: str = "district",
    levels: Sequence[str] = ("province", "city", "district", "village"),
    confidence: float = 0.95,
    min_reports_per_stratum: int = 2,
    min_coverage: float = 0.5,
) -> ProgressCount[C]:
    """Tally the reported TPS at every level and project the final shares by stratum.

    ``frame`` lists every expected TPS: a mapping TPS code -> registered voters, or
    :class:`FrameTps` items (which may carry their own stratum). See
    :func:`progress_count_arrays` for the projection rule.
    """
    labels: list[str | None]
    if isinstance(frame, Mapping):
        codes = list(frame)
        dpt = list(frame.values())
        labels = []
    else:
        items = list(frame)
        codes = [f.tps for f in items]
        dpt = [f.registered for f in items]
        labels = [f.stratum for f in items]
    if {type(v) for v in dpt} - {int}:
        for code, reg in zip(codes, dpt, strict=True):
            _check_count(reg, f"registered voters of TPS {code}")
    frame_int = tps_code_to_int(codes)
    strata: list[str] | None = None
    if any(lab is not None for lab in labels):
        strata = [
            lab if lab is not None else region_prefix(code, stratum_level)
            for lab, code in zip(labels, codes, strict=True)
        ]
    rows = list(reported)
    rep_codes = [r.tps for r in rows]
    vote_rows: list[Mapping[C, int]] = [r.votes for r in rows]
    inv = [r.invalid for r in rows]
    tot = [r.total for r in rows]
    for what, values in (("invalid", inv), ("total", tot)):
        if {type(v) for v in values} - {int, type(None)}:
            for v in values:
                if v is not None:
                    _check_count(v, what)
    if vote_rows:
        candidates, matrix = _vote_matrix(vote_rows)
    else:
        candidates, matrix = (), np.zeros((0, 0), dtype=np.int64)
    return progress_count_arrays(
        frame_int,
        np.asarray(dpt, dtype=np.int64),
        tps_code_to_int(rep_codes),
        matrix,
        candidates=candidates,
        invalid=np.asarray([math.nan if v is None else v for v in inv], dtype=np.float64),
        total=np.asarray([math.nan if v is None else v for v in tot], dtype=np.float64),
        strata=strata,
        stratum_level=stratum_level,
        levels=levels,
        confidence=confidence,
        min_reports_per_stratum=min_reports_per_stratum,
        min_coverage=min_coverage,
    )


def progress_count_arrays(
    frame_tps: npt.ArrayLike,
    frame_registered: npt.ArrayLike,
    reported_tps: npt.ArrayLike,
    votes: npt.ArrayLike,
    *,
    candidates: Sequence[C] | None = None,
    invalid: npt.ArrayLike | None = None,
    total: npt.ArrayLike | None = None,
    strata: Sequence[str] | None = None,
    stratum_level: str = "district",
    levels: Sequence[str] = ("province", "city", "district", "village"),
    confidence: float = 0.95,
    min_reports_per_stratum: int = 2,
    min_coverage: float = 0.5,
) -> ProgressCount[Any]:
    """:func:`progress_count` over arrays: TPS codes as int64 (:func:`tps_code_to_int`),
    ``votes`` (reported, K), ``invalid``/``total`` with NaN for "not reported",
    ``strata`` one label per frame TPS (default: region at ``stratum_level``).

    Projection: the reported TPS are treated as a stratified sample of the frame
    (stratified combined ratio estimator, FPC, linearised variance; strata without
    reports are merged with a neighbour). This assumes that within a stratum the TPS
    that have reported vote like those that have not — nothing guarantees it. The
    projection is given only when the strata with at least
    ``min_reports_per_stratum`` reports hold at least ``min_coverage`` of the frame's
    registered voters.
    """
    z_value(confidence)
    _check_level(stratum_level)
    for level in levels:
        _check_level(level)
    f_codes = np.asarray(frame_tps, dtype=np.int64)
    f_reg = np.asarray(frame_registered, dtype=np.int64)
    r_codes = np.asarray(reported_tps, dtype=np.int64)
    y = np.asarray(votes, dtype=np.int64)
    if y.ndim == 1 and y.size == 0:
        y = y.reshape(0, 0)
    n_rep = int(r_codes.shape[0])
    if f_codes.ndim != 1 or f_reg.shape != f_codes.shape or y.ndim != 2 or y.shape[0] != n_rep:
        raise QuickCountError(
            "frame_tps/frame_registered must be (F,), reported_tps (n,) and votes (n, K)",
            code="quickcount.shape_mismatch",
        )
    if f_codes.size == 0:
        raise QuickCountError("the frame has no TPS", code="quickcount.empty_population")
    if (y < 0).any() or (f_reg < 0).any():
        raise QuickCountError(
            "votes and registered voters must not be negative", code="quickcount.negative_count"
        )
    names: tuple[Any, ...] = tuple(range(y.shape[1])) if candidates is None else tuple(candidates)
    if len(names) != y.shape[1]:
        raise QuickCountError(
            "candidates must name every column of votes", code="quickcount.shape_mismatch"
        )

    def optional(a: npt.ArrayLike | None) -> FloatArray:
        if a is None:
            return np.full(n_rep, math.nan)
        arr = np.asarray(a, dtype=np.float64)
        if arr.shape != (n_rep,):
            raise QuickCountError(
                "invalid and total need one value per reported TPS",
                code="quickcount.shape_mismatch",
            )
        if (arr < 0).any():
            raise QuickCountError(
                "invalid and total must not be negative", code="quickcount.negative_count"
            )
        return arr

    inv = optional(invalid)
    tot = optional(total)
    # one sort of the frame and one of the reports; everything after works on sorted codes
    f_order = np.argsort(f_codes)
    fs = f_codes[f_order]
    f_reg = f_reg[f_order]
    if fs.size > 1 and bool((fs[1:] == fs[:-1]).any()):
        dup = int(fs[1:][fs[1:] == fs[:-1]][0])
        raise QuickCountError(
            f"TPS {dup:013d} appears twice in the frame", code="quickcount.duplicate_tps"
        )
    r_order = np.argsort(r_codes)
    rs = r_codes[r_order]
    y, inv, tot = y[r_order], inv[r_order], tot[r_order]
    if n_rep > 1 and bool((rs[1:] == rs[:-1]).any()):
        dup = int(rs[1:][rs[1:] == rs[:-1]][0])
        raise QuickCountError(
            f"TPS {dup:013d} is reported twice; keep one report per TPS",
            code="quickcount.duplicate_tps",
        )
    frame_idx = np.minimum(np.searchsorted(fs, rs), fs.size - 1)
    unknown = fs[frame_idx] != rs
    if unknown.any():
        bad = int(rs[np.flatnonzero(unknown)[0]])
        raise QuickCountError(
            f"reported TPS {bad:013d} is not in the frame", code="quickcount.unknown_tps"
        )
    rep_reg = f_reg[frame_idx]
    table = np.empty((n_rep, 6 + y.shape[1]), dtype=np.int64)
    table[:, _R_VALID] = y.sum(axis=1)
    table[:, _R_INVALID] = np.nan_to_num(inv, nan=0.0).astype(np.int64)
    table[:, _R_TOTAL] = np.nan_to_num(tot, nan=0.0).astype(np.int64)
    table[:, _R_REG_TOTAL] = np.where(np.isnan(tot), 0, rep_reg)
    table[:, _R_REG] = rep_reg
    table[:, _R_TPS] = 1
    table[:, 6:] = y
    frame_tally = tally_by_region(fs, np.stack([f_reg, np.ones_like(f_reg)], axis=1), levels=levels)
    rep_tally = tally_by_region(rs, table, levels=levels)
    tables: dict[str, RegionTable[Any]] = {}
    for level in levels:
        ft, rt = frame_tally[level], rep_tally[level]
        counted = np.zeros((ft.codes.size, table.shape[1]), dtype=np.int64)
        counted[np.searchsorted(ft.codes, rt.codes)] = rt.sums
        tables[level] = RegionTable(
            level=level,
            candidates=names,
            codes=ft.codes,
            tps_expected=ft.sums[:, 1],
            registered_expected=ft.sums[:, 0],
            counted=counted,
        )
    sums = table.sum(axis=0)
    overall: RegionCount[Any] = RegionCount(
        code="",
        level="all",
        tps_expected=int(fs.size),
        tps_counted=n_rep,
        registered_expected=int(f_reg.sum()),
        registered_counted=int(sums[_R_REG]),
        votes={k: int(sums[6 + j]) for j, k in enumerate(names)},
        valid=int(sums[_R_VALID]),
        invalid=int(sums[_R_INVALID]),
        total=int(sums[_R_TOTAL]),
        registered_with_total=int(sums[_R_REG_TOTAL]),
    )

    # strata of the frame, as integer ids
    if strata is None:
        prefixes = fs // _DIVISOR[stratum_level]
        new = np.concatenate(([True], prefixes[1:] != prefixes[:-1]))
        f_sid = np.cumsum(new) - 1
        labels = [_format_prefix(int(v), stratum_level) for v in prefixes[new]]
        level_name = {"province": "provinces", "city": "cities", "district": "districts"}.get(
            stratum_level, "strata"
        )
    else:
        if len(strata) != f_codes.size:
            raise QuickCountError(
                "strata needs one label per frame TPS", code="quickcount.shape_mismatch"
            )
        labels_arr, f_sid = np.unique(np.asarray(strata, dtype=str)[f_order], return_inverse=True)
        labels = [str(s) for s in labels_arr]
        level_name = "strata"
    f_sid = f_sid.astype(np.int64).ravel()
    big_n = np.bincount(f_sid, minlength=len(labels)).astype(np.int64)
    rep_sid = f_sid[frame_idx]
    reports = np.bincount(rep_sid, minlength=len(labels))
    covered = reports >= np.minimum(max(1, int(min_reports_per_stratum)), big_n)
    dpt_by_stratum = np.bincount(f_sid, weights=f_reg.astype(np.float64), minlength=len(labels))
    all_dpt = float(dpt_by_stratum.sum())
    coverage = float(dpt_by_stratum[covered].sum() / all_dpt) if all_dpt > 0 else 0.0
    projection: ShareEstimate[Any] | None = None
    head = (
        f"{int(covered.sum())} of {len(labels)} {level_name} have at least "
        f"{min_reports_per_stratum} reported TPS, holding {100 * coverage:.1f}% of "
        "registered voters"
    )
    if n_rep == 0 or coverage < min_coverage:
        note = (
            f"Too few strata have reported to project: {head} (a projection needs "
            f"{100 * min_coverage:.0f}%). Only the count so far is given."
        )
    elif int(table[:, _R_VALID].sum()) == 0:
        note = "No valid votes have been reported yet; nothing to project."
    else:
        try:
            projection = _project(rep_sid, labels, big_n, y, names, rep_reg, inv, tot, confidence)
            note = (
                f"Projection by stratum: {head}. It assumes that within each stratum the "
                "TPS that have reported vote like those that have not; early returns are "
                "not a random sample, so treat the margin as a lower bound on the "
                "uncertainty."
            )
        except QuickCountError as exc:
            note = f"No projection: {exc.message}"
    return ProgressCount(
        candidates=names,
        overall=overall,
        tables=tables,
        projection=projection,
        projection_note=note,
        stratum_level=stratum_level,
        strata_total=len(labels),
        strata_covered=int(covered.sum()),
        coverage=coverage,
    )


def _project(
    rep_sid: IntArray,
    labels: list[str],
    big_n: IntArray,
    y: IntArray,
    names: tuple[Any, ...],
    rep_reg: IntArray,
    inv: FloatArray,
    tot: FloatArray,
    confidence: float,
) -> ShareEstimate[Any]:
    return _estimate(
        rep_sid,
        labels,
        big_n,
        y.astype(np.float64),
        names,
        confidence,
        rep_reg.astype(np.float64),
        inv,
        tot,
    )

"""Quick count: sample design, stratified ratio estimation and the progress count.

Everything here is a pure function over plain values and numpy arrays; nothing reads a
clock, a file or a database. Shares, rates and margins are **fractions in [0, 1]**
(0.4147 means 41.47 %), never percentages.

Three parts:

* **Sample design** — :func:`sample_size_voters`, :func:`sample_size_tps`,
  :func:`allocate`, :func:`stratify`, :func:`draw_sample` (a reproducible stratified
  draw from a seed with a canonical SHA-256 digest that can be published before
  election day) and :func:`verify_sample`.
* **Estimation** (parallel vote tabulation) — :func:`estimate_shares` and its array
  twins :func:`estimate_shares_arrays` / :func:`estimate_shares_batch`: the stratified
  combined ratio estimator with finite-population correction, the linearised (Taylor)
  variance, margins at 95 % and 99 %, design effects, strata collapsing and the
  "callable" verdict.
* **Progress count** — :func:`progress_count` / :func:`progress_count_arrays` tally every
  reported TPS at every region level and project the final result by stratum, and
  :func:`tally_by_region` is the vectorised engine underneath.

The method, its formulas and its caveats are written up in ``docs/quick-count.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import chain
from operator import methodcaller
from statistics import NormalDist
from typing import Any, Generic, Literal, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from sipantau_core.errors import SipantauError

__all__ = [
    "LEVELS",
    "BatchEstimate",
    "Collapse",
    "FrameTps",
    "ProgressCount",
    "QuickCountError",
    "RatioEstimate",
    "RegionCount",
    "RegionTable",
    "RegionTotals",
    "SampleDraw",
    "SampledTps",
    "ShareEstimate",
    "TpsResult",
    "allocate",
    "draw_sample",
    "estimate_shares",
    "estimate_shares_arrays",
    "estimate_shares_batch",
    "progress_count",
    "progress_count_arrays",
    "region_prefix",
    "sample_digest",
    "sample_size_tps",
    "sample_size_voters",
    "stratify",
    "tally_by_region",
    "tps_code_to_int",
    "verify_sample",
    "z_value",
]

C = TypeVar("C", bound=Hashable)
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DRAW_ALGORITHM = "sipantau.quickcount.draw_sample/1"
"""Name and version of the sampling algorithm, part of every sample digest."""


class QuickCountError(SipantauError, ValueError):
    """Invalid input to a quick-count function.

    ``code`` is stable (part of the public contract), e.g. ``quickcount.empty_sample``;
    ``message`` is English and says what to change. Messages name strata, TPS codes and
    parameters, never vote figures.
    """

    code: str = "quickcount.error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)


# --------------------------------------------------------------------------- region codes

LEVELS: Mapping[str, int] = {"province": 2, "city": 4, "district": 6, "village": 10, "tps": 13}
"""Region levels and the number of digits of their compact code."""

_WIDTHS = (2, 2, 2, 4, 3)
_DIVISOR: Mapping[str, int] = {
    "province": 10**11,
    "city": 10**9,
    "district": 10**7,
    "village": 10**3,
    "tps": 1,
}
_LEVEL_OF_LENGTH = {v: k for k, v in LEVELS.items()}


def _dot(digits: str) -> str:
    parts: list[str] = []
    pos = 0
    for width in _WIDTHS:
        if pos >= len(digits):
            break
        parts.append(digits[pos : pos + width])
        pos += width
    return ".".join(parts)


def _digits(code: str) -> str:
    if not isinstance(code, str):
        raise QuickCountError(
            f"a region or TPS code must be a string, got {type(code).__name__}",
            code="quickcount.bad_code",
        )
    digits = code.replace(".", "")
    if not (digits.isascii() and digits.isdigit()) or len(digits) not in _LEVEL_OF_LENGTH:
        raise QuickCountError(
            f"{code!r} is not a region code (16, 16.73, 16.73.01, 16.73.01.1001) "
            "or a TPS code (1673011001001 or 16.73.01.1001.001)",
            code="quickcount.bad_code",
        )
    if "." in code and _dot(digits) != code:
        raise QuickCountError(
            f"{code!r}: dotted codes have segments of 2, 2, 2, 4 and 3 digits",
            code="quickcount.bad_code",
        )
    return digits


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise QuickCountError(
            f"unknown level {level!r}; use one of {', '.join(LEVELS)}",
            code="quickcount.bad_level",
        )


def region_prefix(code: str, level: str = "district") -> str:
    """The dotted region code of ``code`` at ``level``.

    ``region_prefix("1673011001001", "district") == "16.73.01"``; dotted input works
    too. A stand-in for the core's ``RegionCode`` until the two are joined.
    """
    _check_level(level)
    digits = _digits(code)
    width = LEVELS[level]
    if len(digits) < width:
        raise QuickCountError(
            f"{code!r} is coarser than the level {level!r}", code="quickcount.bad_code"
        )
    return _dot(digits[:width])


def tps_code_to_int(codes: Iterable[str]) -> IntArray:
    """13-digit TPS codes (compact or dotted) as an int64 array, for the array functions."""
    codes = list(codes)
    if codes and {type(c) for c in codes} == {str}:
        try:
            raw = np.asarray(codes, dtype="S13")  # non-ASCII raises; longer codes are cut
        except UnicodeEncodeError:
            raw = None
        if (
            raw is not None
            and bool(np.all(np.char.str_len(raw) == 13))
            and bool(np.all(np.char.isdigit(raw)))
            and all(len(c) == 13 for c in codes)
        ):
            return raw.astype(np.int64)
    out: list[int] = []
    for code in codes:
        digits = _digits(code)
        if len(digits) != 13:
            raise QuickCountError(
                f"{code!r} is not a TPS code (13 digits)", code="quickcount.bad_code"
            )
        out.append(int(digits))
    return np.asarray(out, dtype=np.int64)


def _format_prefix(value: int, level: str) -> str:
    return _dot(str(int(value)).zfill(LEVELS[level]))


def _common_prefix(a: str, b: str) -> int:
    """Characters shared at the start of two stratum labels (codes sort geographically)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


# ------------------------------------------------------------------------ small helpers


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile: ``z_value(0.95) == 1.959963984540054``."""
    if not isinstance(confidence, (int, float)) or not 0.0 < float(confidence) < 1.0:
        raise QuickCountError(
            f"confidence must be a fraction strictly between 0 and 1 (e.g. 0.95), "
            f"got {confidence!r}",
            code="quickcount.bad_confidence",
        )
    return NormalDist().inv_cdf(0.5 + float(confidence) / 2.0)


def _check_count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise QuickCountError(
            f"{what} must be an integer, got {type(value).__name__}",
            code="quickcount.bad_count",
        )
    if value < 0:
        raise QuickCountError(f"{what} must not be negative", code="quickcount.negative_count")
    return int(value)


def _order_candidates(keys: Iterable[C]) -> tuple[C, ...]:
    unique = list(dict.fromkeys(keys))
    try:
        return tuple(sorted(unique))  # type: ignore[type-var]
    except TypeError:
        return tuple(unique)


# ------------------------------------------------------------------------- sample sizes


def sample_size_voters(
    population: int,
    margin: float,
    *,
    confidence: float = 0.95,
    z: float | None = None,
    p: float = 0.5,
) -> float:
    """Voters a simple random sample needs for a margin of error ``margin`` (a fraction).

    ``n = N z² p(1-p) / (E² (N-1) + z² p(1-p))`` (Cochran, with the finite-population
    correction). ``z`` overrides ``confidence`` (the NDI handbook uses z = 2.58 for 99 %).
    The result is not rounded.
    """
    if isinstance(population, bool) or not isinstance(population, (int, np.integer)):
        raise QuickCountError("population must be an integer", code="quickcount.bad_parameter")
    if population < 1:
        raise QuickCountError("population must be at least 1", code="quickcount.bad_parameter")
    if not 0.0 < margin < 1.0:
        raise QuickCountError(
            f"margin must be a fraction in (0, 1), e.g. 0.01 for 1 point; got {margin!r}",
            code="quickcount.bad_parameter",
        )
    if not 0.0 < p < 1.0:
        raise QuickCountError(
            f"p must be a fraction in (0, 1); got {p!r}", code="quickcount.bad_parameter"
        )
    zz = z_value(confidence) if z is None else float(z)
    if not zz > 0:
        raise QuickCountError("z must be positive", code="quickcount.bad_parameter")
    big_n = float(population)
    pq = p * (1.0 - p)
    return big_n * zz * zz * pq / (margin * margin * (big_n - 1.0) + zz * zz * pq)


def sample_size_tps(
    margin: float,
    *,
    voters_per_tps: float,
    design_effect: float = 1.0,
    confidence: float = 0.95,
    z: float | None = None,
    p: float = 0.5,
    population_tps: int | None = None,
) -> int:
    """TPS to sample for a margin of error ``margin`` on a share near ``p``.

    ``n0 = deff · z² p(1-p) / (E² · m)`` with ``m`` the valid votes per TPS and ``deff``
    the design effect *relative to simple random sampling of voters* (what
    :attr:`ShareEstimate.design_effect` reports); with ``population_tps`` the
    finite-population correction ``n = n0 / (1 + (n0 - 1)/N)`` is applied. Rounded up.
    """
    if not 0.0 < margin < 1.0:
        raise QuickCountError(
            f"margin must be a fraction in (0, 1); got {margin!r}", code="quickcount.bad_parameter"
        )
    if not voters_per_tps > 0 or not design_effect > 0 or not 0.0 < p < 1.0:
        raise QuickCountError(
            "voters_per_tps and design_effect must be positive and p in (0, 1)",
            code="quickcount.bad_parameter",
        )
    zz = z_value(confidence) if z is None else float(z)
    n0 = design_effect * zz * zz * p * (1.0 - p) / (margin * margin * voters_per_tps)
    if population_tps is not None:
        if population_tps < 1:
            raise QuickCountError(
                "population_tps must be at least 1", code="quickcount.bad_parameter"
            )
        n0 = n0 / (1.0 + (n0 - 1.0) / population_tps)
        return min(int(population_tps), max(1, math.ceil(n0 - 1e-9)))
    return max(1, math.ceil(n0 - 1e-9))


# --------------------------------------------------------------------- allocation & draw


def stratify(
    tps: Iterable[str],
    *,
    level: str = "district",
    risk: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Map each TPS code to its stratum: its region at ``level``, optionally by risk.

    With ``risk`` (TPS code -> risk level, e.g. ``"high"``) the stratum is
    ``"16.73.01|high"``; a TPS missing from ``risk`` is an error.
    """
    _check_level(level)
    out: dict[str, str] = {}
    for code in tps:
        label = region_prefix(code, level)
        if risk is not None:
            if code not in risk:
                raise QuickCountError(
                    f"TPS {code} has no risk level in the risk mapping",
                    code="quickcount.missing_risk",
                )
            label = f"{label}|{risk[code]}"
        out[code] = label
    return out


def allocate(
    population: Mapping[str, int],
    n: int,
    *,
    method: Literal["proportional", "equal"] = "proportional",
    minimum: int = 2,
) -> dict[str, int]:
    """Split a sample of ``n`` TPS between strata.

    ``proportional`` to the number of TPS, or ``equal``; every stratum gets at least
    ``min(minimum, N_h)`` and at most ``N_h``; rounding by largest remainder (ties by
    stratum label). A hand-chosen allocation can be passed to :func:`draw_sample`
    directly.
    """
    sizes = {str(h): _check_count(v, f"population of stratum {h!r}") for h, v in population.items()}
    labels = sorted(h for h, v in sizes.items() if v > 0)
    big_n = np.asarray([sizes[h] for h in labels], dtype=np.int64)
    total = int(big_n.sum())
    n = _check_count(n, "sample size n")
    if not labels or total == 0:
        raise QuickCountError("the population has no TPS", code="quickcount.empty_population")
    if n > total:
        raise QuickCountError(
            f"sample size {n} exceeds the {total} TPS of the population",
            code="quickcount.bad_allocation",
        )
    lower = np.minimum(big_n, max(0, int(minimum)))
    if int(lower.sum()) > n:
        raise QuickCountError(
            f"a sample of {n} cannot give each of the {len(labels)} strata its minimum of "
            f"{minimum} TPS; raise n or lower minimum",
            code="quickcount.bad_allocation",
        )
    if method == "proportional":
        ideal = n * big_n / total
    elif method == "equal":
        ideal = np.full(len(labels), n / len(labels))
    else:
        raise QuickCountError(
            f"unknown allocation method {method!r}; use 'proportional' or 'equal'",
            code="quickcount.bad_allocation",
        )
    alloc = np.clip(np.floor(ideal).astype(np.int64), lower, big_n)
    rank = np.arange(len(labels))
    while int(alloc.sum()) != n:
        gap = n - int(alloc.sum())
        rest = ideal - alloc
        if gap > 0:
            room = np.flatnonzero(alloc < big_n)
            chosen = room[np.lexsort((rank[room], -rest[room]))][:gap]
            alloc[chosen] += 1
        else:
            room = np.flatnonzero(alloc > lower)
            chosen = room[np.lexsort((rank[room], rest[room]))][:-gap]
            alloc[chosen] -= 1
    out = {h: int(a) for h, a in zip(labels, alloc, strict=True)}
    out.update({h: 0 for h, v in sizes.items() if v == 0})
    return out


def _jsonable(value: Any, where: str) -> Any:
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise QuickCountError(
            f"{where} must be JSON data (str, int, float, bool, None, lists, dicts): {exc}",
            code="quickcount.bad_design",
        ) from None
    return json.loads(text)


def sample_digest(
    tps: Iterable[str],
    *,
    seed: int,
    allocation: Mapping[str, int],
    population: Mapping[str, int],
    design: Mapping[str, Any] | None = None,
) -> str:
    """SHA-256 (hex) of the canonical JSON of a sample, see :meth:`SampleDraw.canonical_json`."""
    return hashlib.sha256(
        _canonical_json(tps, seed, allocation, population, design or {}).encode("utf-8")
    ).hexdigest()


def _canonical_json(
    tps: Iterable[str],
    seed: int,
    allocation: Mapping[str, int],
    population: Mapping[str, int],
    design: Mapping[str, Any],
) -> str:
    strata = {
        str(h): {"population": int(population.get(h, 0)), "sample": int(allocation.get(h, 0))}
        for h in sorted(set(population) | set(allocation))
    }
    doc = {
        "algorithm": DRAW_ALGORITHM,
        "design": _jsonable(dict(design), "design"),
        "seed": int(seed),
        "strata": strata,
        "tps": sorted(tps),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@attrs.frozen
class SampleDraw:
    """A drawn stratified sample of TPS, with everything needed to verify it later.

    ``tps`` are sorted; ``strata`` maps each sampled TPS to its stratum; ``population``
    (TPS per stratum) is what :func:`estimate_shares` takes as ``population``.
    """

    tps: tuple[str, ...]
    strata: Mapping[str, str]
    seed: int
    allocation: Mapping[str, int]
    population: Mapping[str, int]
    design: Mapping[str, Any]
    digest: str

    def canonical_json(self) -> str:
        """The committed document: sorted TPS codes, seed, strata sizes and design, as
        JSON with sorted keys, no spaces, UTF-8. Its SHA-256 is :attr:`digest`."""
        return _canonical_json(self.tps, self.seed, self.allocation, self.population, self.design)


def draw_sample(
    frame: Mapping[str, str],
    allocation: Mapping[str, int],
    seed: int,
    *,
    design: Mapping[str, Any] | None = None,
) -> SampleDraw:
    """Draw a stratified random sample of TPS without replacement, reproducibly.

    ``frame`` maps every TPS code of the sampling frame to its stratum (see
    :func:`stratify`); ``allocation`` gives the TPS to draw per stratum (see
    :func:`allocate`; a stratum it omits gets none); ``design`` holds any further
    parameters to commit (target margin, assumed design effect, ...).

    Algorithm (version ``sipantau.quickcount.draw_sample/1``): one PCG64 bit generator
    seeded with ``numpy.random.SeedSequence(seed)``; strata in sorted order; within a
    stratum its TPS sorted by code, each given one raw 64-bit output of the generator
    (``random_raw``), and the ``n_h`` TPS with the smallest values are drawn. It depends
    only on PCG64 and SeedSequence, whose streams numpy keeps stable.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise QuickCountError("seed must be a non-negative integer", code="quickcount.bad_seed")
    by_stratum: dict[str, list[str]] = {}
    for code, stratum in frame.items():
        by_stratum.setdefault(str(stratum), []).append(code)
    population = {h: len(v) for h, v in by_stratum.items()}
    alloc: dict[str, int] = {}
    for h, k in allocation.items():
        if h not in population:
            raise QuickCountError(
                f"allocation names stratum {h!r}, which has no TPS in the frame",
                code="quickcount.unknown_stratum",
            )
        k = _check_count(k, f"allocation of stratum {h!r}")
        if k > population[h]:
            raise QuickCountError(
                f"allocation of stratum {h!r} exceeds its TPS in the frame",
                code="quickcount.bad_allocation",
            )
        alloc[h] = k
    for h in population:
        alloc.setdefault(h, 0)
    design_doc: dict[str, Any] = _jsonable(dict(design or {}), "design")
    bitgen = np.random.PCG64(np.random.SeedSequence(int(seed)))
    chosen: list[str] = []
    strata: dict[str, str] = {}
    for h in sorted(by_stratum):
        codes = sorted(by_stratum[h])
        keys = bitgen.random_raw(len(codes))
        picked = np.argsort(keys, kind="stable")[: alloc[h]]
        for i in np.sort(picked):
            chosen.append(codes[int(i)])
            strata[codes[int(i)]] = h
    tps = tuple(sorted(chosen))
    digest = sample_digest(
        tps, seed=int(seed), allocation=alloc, population=population, design=design_doc
    )
    return SampleDraw(
        tps=tps,
        strata={c: strata[c] for c in tps},
        seed=int(seed),
        allocation=alloc,
        population=population,
        design=design_doc,
        digest=digest,
    )


def verify_sample(
    frame: Mapping[str, str],
    tps: Iterable[str],
    *,
    seed: int,
    allocation: Mapping[str, int],
    digest: str,
    design: Mapping[str, Any] | None = None,
) -> bool:
    """True when ``tps`` is exactly what :func:`draw_sample` draws from ``frame`` with this
    seed, allocation and design, and ``digest`` is its committed digest."""
    again = draw_sample(frame, allocation, seed, design=design)
    return again.tps == tuple(sorted(tps)) and again.digest == digest


# ------------------------------------------------------------------ design preparation


@attrs.frozen
class Collapse:
    """A stratum merged with a neighbour: ``reason`` is ``"empty"`` (no sampled TPS: its
    TPS are represented by the neighbour's sample) or ``"single"`` (one sampled TPS:
    paired with the neighbour for the variance only)."""

    stratum: str
    into: str
    reason: Literal["empty", "single"]


@attrs.frozen(eq=False)
class _Design:
    order: IntArray  # sample rows sorted by variance group
    weights: FloatArray  # expansion weight per sorted row
    starts: IntArray  # offset of each variance group in sorted order
    sizes: IntArray  # rows per variance group
    factor: FloatArray  # per sorted row: (1 - f_g) n_g / (n_g - 1), 0 for a census group
    n_tps: int
    n_strata: int  # strata with at least one sampled TPS
    population_tps: int
    collapsed: tuple[Collapse, ...]
    notes: tuple[str, ...]


def _list_some(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _design_from_ids(row_ids: IntArray, labels: Sequence[str], big_n: IntArray) -> _Design:
    """Design for sample rows in strata ``row_ids`` (indices into sorted ``labels``)."""
    n_rows = int(row_ids.shape[0])
    if n_rows == 0:
        raise QuickCountError("the sample has no TPS", code="quickcount.empty_sample")
    n_h = np.bincount(row_ids, minlength=len(labels)).astype(np.int64)
    over = np.flatnonzero(n_h > big_n)
    if over.size:
        raise QuickCountError(
            f"stratum {labels[int(over[0])]!r} has more sampled TPS than its population; "
            "check the population mapping and for duplicate TPS",
            code="quickcount.sample_exceeds_population",
        )
    live = np.flatnonzero(big_n > 0)  # strata of the frame, in label order
    sampled = live[n_h[live] > 0]
    collapsed: list[Collapse] = []
    notes: list[str] = []
    # 1. estimation: every empty stratum joins the nearest sampled stratum (longest
    #    common code prefix; ties go to the preceding one).
    n_eff = big_n.astype(np.float64).copy()
    empty = live[n_h[live] == 0]
    if empty.size:
        pos = np.searchsorted(sampled, empty)
        for h, p in zip(empty.tolist(), pos.tolist(), strict=True):
            prev = int(sampled[p - 1]) if p > 0 else -1
            nxt = int(sampled[p]) if p < sampled.size else -1
            if prev < 0 or (
                nxt >= 0
                and _common_prefix(labels[h], labels[nxt]) > _common_prefix(labels[h], labels[prev])
            ):
                target = nxt
            else:
                target = prev
            n_eff[target] += big_n[h]
            n_eff[h] = 0.0
            collapsed.append(Collapse(labels[h], labels[target], "empty"))
        notes.append(
            f"{empty.size} of {live.size} strata had no sampled TPS "
            f"({_list_some([labels[int(h)] for h in empty])}); each was merged with a "
            "neighbouring stratum, whose sample now also represents its TPS."
        )
    # 2. variance: a stratum with one sampled TPS (not a census) is paired with a
    #    neighbouring sampled stratum (collapsed-strata variance, conservative).
    m = sampled.size
    parent = np.arange(m)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    single = [t for t in range(m) if n_h[sampled[t]] == 1 and n_eff[sampled[t]] > 1]
    if single and m == 1:
        raise QuickCountError(
            "a single sampled TPS cannot give a margin of error; sample at least 2 TPS",
            code="quickcount.sample_too_small",
        )
    for t in single:
        me = labels[int(sampled[t])]
        if t == 0:
            other = 1
        elif t == m - 1:
            other = m - 2
        else:
            before = _common_prefix(me, labels[int(sampled[t - 1])])
            after = _common_prefix(me, labels[int(sampled[t + 1])])
            other = t + 1 if after > before else t - 1
        parent[find(t)] = find(other)
        collapsed.append(Collapse(me, labels[int(sampled[other])], "single"))
    if single:
        notes.append(
            f"{len(single)} strata had a single sampled TPS "
            f"({_list_some([labels[int(sampled[t])] for t in single])}); each was paired "
            "with a neighbouring stratum for the variance (collapsed strata; the margin "
            "errs on the wide side)."
        )
    roots = np.asarray([find(t) for t in range(m)], dtype=np.int64)
    _, group_of_sampled = np.unique(roots, return_inverse=True)
    group_of_stratum = np.full(len(labels), -1, dtype=np.int64)
    group_of_stratum[sampled] = group_of_sampled
    row_group = group_of_stratum[row_ids]
    if n_rows < 2 or bool(np.all(row_group[1:] >= row_group[:-1])):
        order = np.arange(n_rows, dtype=np.int64)
    elif row_group.max() < 2**16:  # stable radix sort on 16-bit keys
        order = np.argsort(row_group.astype(np.uint16), kind="stable").astype(np.int64)
    else:
        order = np.argsort(row_group, kind="stable").astype(np.int64)
    g_sorted = row_group[order]
    n_groups = int(group_of_sampled.max()) + 1
    sizes = np.bincount(g_sorted, minlength=n_groups).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    n_g = np.bincount(group_of_sampled, weights=n_h[sampled], minlength=n_groups)
    big_n_g = np.bincount(group_of_sampled, weights=n_eff[sampled], minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        fac = np.where(n_g > 1, (1.0 - n_g / big_n_g) * n_g / (n_g - 1.0), 0.0)
    fac = np.maximum(fac, 0.0)
    weights = (n_eff / np.maximum(n_h, 1))[row_ids[order]]
    return _Design(
        order=order,
        weights=weights.astype(np.float64),
        starts=starts,
        sizes=sizes,
        factor=fac[g_sorted].astype(np.float64),
        n_tps=n_rows,
        n_strata=int(sampled.size),
        population_tps=int(big_n.sum()),
        collapsed=tuple(collapsed),
        notes=tuple(notes),
    )


def _strata_ids(
    strata: Sequence[str], population: Mapping[str, int]
) -> tuple[IntArray, list[str], IntArray]:
    if not isinstance(population, Mapping) or not population:
        raise QuickCountError(
            "population must map each stratum to its number of TPS in the frame",
            code="quickcount.bad_population",
        )
    by_label = {str(h): h for h in population}  # labels are strings; keys may not be
    if len(by_label) != len(population):
        raise QuickCountError(
            "two strata of the population have the same label once written as text",
            code="quickcount.bad_population",
        )
    labels = sorted(by_label)
    big_n = np.asarray(
        [_check_count(population[by_label[h]], f"population of stratum {h!r}") for h in labels],
        dtype=np.int64,
    )
    index = {by_label[h]: i for i, h in enumerate(labels)}
    try:
        ids = np.fromiter((index[s] for s in strata), dtype=np.int64, count=len(strata))
    except KeyError as exc:
        raise QuickCountError(
            f"sampled stratum {exc.args[0]!r} is not in the population mapping",
            code="quickcount.unknown_stratum",
        ) from None
    except TypeError:
        raise QuickCountError(
            "stratum labels must be strings", code="quickcount.bad_sample"
        ) from None
    return ids, labels, big_n


# ------------------------------------------------------------------------- the estimator


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


@attrs.frozen
class RatioEstimate:
    """A ratio (turnout, invalid rate) estimated from the sample, as a fraction.

    ``design_effect`` is relative to a simple random sample of the persons in the
    denominator (registered voters for turnout, voters for the invalid rate).
    """

    estimate: float
    se: float
    margin: float
    low: float
    high: float
    margin_95: float
    margin_99: float
    confidence: float
    design_effect: float
    n_tps: int


@attrs.frozen
class ShareEstimate(Generic[C]):
    """A quick-count estimate of each candidate's share of the valid votes.

    All shares, standard errors, margins and bounds are fractions in [0, 1]. ``margin``,
    ``low`` and ``high`` are at ``confidence``; ``margin_95`` / ``margin_99`` at 95 % /
    99 %; bounds are clipped to [0, 1].

    Design effects: ``design_effects`` (and ``design_effect``, the leader's) compare the
    variance with a simple random sample of *voters* casting the same number of valid
    votes; ``design_effects_tps`` compare with a simple random sample of the same
    number of *TPS* (the gain from stratification).

    ``callable`` is the conservative rule: the leader's lower bound exceeds the upper
    bound of every other candidate. ``difference`` (leader minus runner-up) has its own
    standard error (covariance included); ``difference_significant`` says whether its
    interval at ``confidence`` excludes 0. ``collapsed`` and ``notes`` record what was
    done about empty and single-TPS strata.
    """

    candidates: tuple[C, ...]
    share: Mapping[C, float]
    se: Mapping[C, float]
    margin: Mapping[C, float]
    low: Mapping[C, float]
    high: Mapping[C, float]
    margin_95: Mapping[C, float]
    margin_99: Mapping[C, float]
    confidence: float
    design_effect: float
    design_effects: Mapping[C, float]
    design_effects_tps: Mapping[C, float]
    leader: C
    runner_up: C | None
    difference: float
    difference_se: float
    difference_margin: float
    difference_significant: bool
    callable: bool
    n_tps: int
    n_strata: int
    population_tps: int
    sample_valid_votes: int
    turnout: RatioEstimate | None
    invalid_rate: RatioEstimate | None
    collapsed: tuple[Collapse, ...]
    notes: tuple[str, ...]

    def verdict(self) -> str:
        """One English sentence for the desk."""
        pct = f"{100 * self.share[self.leader]:.2f}% ± {100 * self.margin[self.leader]:.2f}"
        level = f"{100 * self.confidence:g}%"
        if self.runner_up is None:
            return f"Candidate {self.leader} is the only candidate in the sample."
        if self.callable:
            return (
                f"Candidate {self.leader} leads with {pct} points; callable at {level}: "
                "its interval lies above every other candidate's."
            )
        return (
            f"Candidate {self.leader} leads with {pct} points; not callable at {level}: "
            f"its interval overlaps that of {self.runner_up}."
        )


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


def _vote_matrix(rows: Sequence[Mapping[C, int]]) -> tuple[tuple[C, ...], IntArray]:
    """Candidates (sorted when sortable) and the (n, K) vote matrix, validated."""
    try:
        candidates = _order_candidates(chain.from_iterable(rows))
    except TypeError:
        raise QuickCountError(
            "votes must be mappings from candidate to count", code="quickcount.bad_sample"
        ) from None
    if not candidates:
        raise QuickCountError("the sample names no candidate", code="quickcount.no_candidates")
    if {type(v) for votes in rows for v in votes.values()} - {int}:
        for votes in rows:
            for c, v in votes.items():
                _check_count(v, f"votes for {c!r}")
    try:
        columns = [
            np.fromiter(map(methodcaller("get", c, 0), rows), dtype=np.int64, count=len(rows))
            for c in candidates
        ]
        matrix = np.stack(columns, axis=1)
    except OverflowError:
        raise QuickCountError(
            "a vote count does not fit in 64 bits", code="quickcount.bad_count"
        ) from None
    if (matrix < 0).any():
        raise QuickCountError("votes must not be negative", code="quickcount.negative_count")
    return candidates, matrix


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
        callable_ = all(low[lead] > high[j] for j in order[1:])
        significant = diff - z * diff_se > 0
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


# ------------------------------------------------------------------------ progress count


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

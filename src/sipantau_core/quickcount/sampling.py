"""Sample design: sample sizes, strata, allocation and the reproducible, committed draw."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs
import numpy as np

from sipantau_core.quickcount._common import (
    QuickCountError,
    _check_count,
    _check_level,
    region_prefix,
    z_value,
)

DRAW_ALGORITHM = "sipantau.quickcount.draw_sample/1"
"""Name and version of the sampling algorithm, part of every sample digest."""


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

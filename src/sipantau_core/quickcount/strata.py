"""From sampled strata to the estimator's design: stratum ids, collapsed strata and
the variance groups with their weights and finite-population factors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import attrs
import numpy as np

from sipantau_core.quickcount._common import (
    FloatArray,
    IntArray,
    QuickCountError,
    _check_count,
    _common_prefix,
)


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

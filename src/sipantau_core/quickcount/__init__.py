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

Where each part lives (every public name is imported here, so import from
``sipantau_core.quickcount``); each module imports only those above it:

* ``_common`` — :class:`QuickCountError`, region codes (:data:`LEVELS`,
  :func:`region_prefix`, :func:`tps_code_to_int`), :func:`z_value`, checks of counts
  and vote rows.
* ``sampling`` — sample sizes, :func:`stratify`, :func:`allocate`,
  :func:`sample_digest`, :class:`SampleDraw`, :func:`draw_sample`,
  :func:`verify_sample`.
* ``strata`` — from sampled strata to the estimator's design: :class:`Collapse` of
  empty and single-TPS strata, variance groups, weights.
* ``verdict`` — :class:`ShareEstimate` with its verdict, :class:`RatioEstimate`, and
  the rules for "callable" and a significant lead.
* ``estimation`` — the ratio estimator: :class:`SampledTps`, :func:`estimate_shares`,
  :func:`estimate_shares_arrays`, :func:`estimate_shares_batch`,
  :class:`BatchEstimate`.
* ``progress`` — :class:`RegionTotals`, :func:`tally_by_region`, :class:`TpsResult`,
  :class:`FrameTps`, :class:`RegionCount`, :class:`RegionTable`,
  :class:`ProgressCount`, :func:`progress_count`, :func:`progress_count_arrays`.

The method, its formulas and its caveats are written up in ``docs/quick-count.md``.
"""

from __future__ import annotations

from sipantau_core.quickcount._common import (
    LEVELS,
    QuickCountError,
    region_prefix,
    tps_code_to_int,
    z_value,
)
from sipantau_core.quickcount._common import C as C
from sipantau_core.quickcount._common import FloatArray as FloatArray
from sipantau_core.quickcount._common import IntArray as IntArray
from sipantau_core.quickcount.estimation import (
    BatchEstimate,
    SampledTps,
    estimate_shares,
    estimate_shares_arrays,
    estimate_shares_batch,
)
from sipantau_core.quickcount.progress import (
    FrameTps,
    ProgressCount,
    RegionCount,
    RegionTable,
    RegionTotals,
    TpsResult,
    progress_count,
    progress_count_arrays,
    tally_by_region,
)
from sipantau_core.quickcount.sampling import DRAW_ALGORITHM as DRAW_ALGORITHM
from sipantau_core.quickcount.sampling import (
    SampleDraw,
    allocate,
    draw_sample,
    sample_digest,
    sample_size_tps,
    sample_size_voters,
    stratify,
    verify_sample,
)
from sipantau_core.quickcount.strata import Collapse
from sipantau_core.quickcount.verdict import RatioEstimate, ShareEstimate

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

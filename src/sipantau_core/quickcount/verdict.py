"""What an estimate says: :class:`ShareEstimate` with its verdict, :class:`RatioEstimate`
(turnout, invalid rate), and the rules for "callable" and a significant lead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Generic

import attrs

from sipantau_core.quickcount._common import C, FloatArray
from sipantau_core.quickcount.strata import Collapse


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


def _is_callable(low: FloatArray, high: FloatArray, order: Sequence[int]) -> bool:
    """The leader (``order[0]``) is callable: its lower bound exceeds every other
    candidate's upper bound."""
    lead = order[0]
    return all(low[lead] > high[j] for j in order[1:])


def _is_significant(diff: float, diff_se: float, z: float) -> bool:
    """The interval of the difference leader minus runner-up excludes 0."""
    return diff - z * diff_se > 0

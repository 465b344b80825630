"""What every part of the quick count shares: :class:`QuickCountError`, the region-code
helpers (:data:`LEVELS`, :func:`region_prefix`, :func:`tps_code_to_int`), :func:`z_value`
and the checks of counts and vote rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import chain
from operator import methodcaller
from statistics import NormalDist
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from sipantau_core.errors import SipantauError

C = TypeVar("C", bound=Hashable)
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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

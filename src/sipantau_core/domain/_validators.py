"""Small attrs validators shared by the domain classes (readable by hypothesis)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

__all__ = ["MAX_COUNT", "aware_datetime", "count", "optional_count"]

#: The largest count any field of a report may carry. A TPS serves at most a few hundred
#: voters; anything above this is a typing error, not a count.
MAX_COUNT = 10_000


def _count(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name}: expected a whole number, got {type(value).__name__}")
    if not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{attribute.name}: {value} is not in 0..{MAX_COUNT}")


count = _count


def optional_count(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _count(instance, attribute, value)


def aware_datetime(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{attribute.name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{attribute.name}: the time must carry its UTC offset (e.g. +07:00)")

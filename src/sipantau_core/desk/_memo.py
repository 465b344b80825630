"""What a desk computed from a region's station states, kept while the region's counter of
changes (``CHANGES_KEY`` of :mod:`sipantau_core.desk._records`) stays where it was.

The counter grows in the transaction that changes a counted tally, so a result stored
under the counter's value is the result for as long as that value is read: the memo never
serves a count that a newer read would not give. Each process keeps its own (the counter
is in the storage, shared). Read the counter *before* the states it versions: a change
that commits in between then leaves a result newer than its key, never older.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class Memo:
    """A least-recently-used map, safe across threads. A result is kept under what it is
    of (without the version) with its version: a newer version replaces it, so the memo
    holds one result per region asked for, at most ``size`` (a district's TPS results, a
    region's progress count: a country has some 7,000 districts)."""

    def __init__(self, size: int = 16384) -> None:
        self._size = size
        self._found: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
            return found

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._found[key] = value
            self._found.move_to_end(key)
            while len(self._found) > self._size:
                self._found.popitem(last=False)

    def at(self, key: Hashable, version: int) -> Any | None:
        """The result kept under ``key`` if it is of ``version``."""
        found = self.get(key)
        if found is None or found[0] != version:
            return None
        return found[1]

    def keep(self, key: Hashable, version: int, value: Any) -> None:
        self.put(key, (version, value))

"""Group commit: concurrent submissions written together, each acknowledged after its commit.

Requests put ``(submission, principal, future)`` on a bounded :class:`asyncio.Queue`
(full: :class:`Busy`, answered 429), and wait for their outcome at most ``max_wait``
seconds (then :class:`TimedOut`, answered 503: a request never waits unboundedly, even
when the database hangs). One writer task takes the first waiting submission,
collects more for up to the batch window (or until the batch is full), and hands the batch
to a *batch function* in a worker thread. The default batch function,
:func:`per_principal`, calls ``desk.submit_many`` once per principal in the batch (the
desk's bulk call takes one principal). Each request's future is then resolved with its own
:class:`~sipantau_core.desk.Receipt` or error: only after the transaction that holds it has
committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Final

import anyio
import anyio.to_thread
import attrs

from sipantau_adapters.http._errors import log_unexpected
from sipantau_core.access import Principal
from sipantau_core.desk import Desk, Receipt, Submission
from sipantau_core.errors import SipantauError

__all__ = [
    "BatchFunction",
    "BatchStats",
    "Busy",
    "Closed",
    "GroupCommitter",
    "TimedOut",
    "per_principal",
]

#: A batch of (submission, principal) → one result per item, in order: a receipt, the
#: library error for that item, or an unexpected exception.
Outcome = Receipt | SipantauError | BaseException
BatchFunction = Callable[[Sequence[tuple[Submission, Principal]]], list[Outcome]]

_STOP: Final = object()


class Busy(Exception):
    """The submission queue is full."""


class Closed(Exception):
    """The server is shutting down and takes no new submissions."""


class TimedOut(Exception):
    """The submission's outcome did not come within ``max_wait``: it was dropped from the
    queue if it was still waiting there, and may still be written if it was being
    written (a resend is then a duplicate)."""


def per_principal(desk: Desk) -> BatchFunction:
    """The batch function on the desk's public bulk call: one ``desk.submit_many`` with
    each item's own principal, so the whole window is one transaction. An exception of
    the call (a storage failure) is the outcome of each item."""

    def run(items: Sequence[tuple[Submission, Principal]]) -> list[Outcome]:
        try:
            result = desk.submit_many(
                [submission for submission, _ in items],
                principal=[principal for _, principal in items],
            )
        except Exception as e:  # noqa: BLE001 - the outcome of each item of the call
            return [e for _ in items]
        return list(result.items)

    return run


@attrs.define
class BatchStats:
    """What the writer did so far (for tests and the benchmark)."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    busy_seconds: float = 0.0
    #: submissions answered "busy" (the queue was full) and "timed out" (``max_wait``)
    refused: int = 0
    timed_out: int = 0
    #: submissions whose waiter had timed out before the writer took them (not written)
    dropped: int = 0


class GroupCommitter:
    """The queue and its single writer task. Start it inside the server's event loop
    (:meth:`start`, or lazily on the first :meth:`submit`); :meth:`close` drains it."""

    def __init__(
        self,
        batch: BatchFunction,
        *,
        window_ms: float = 5,
        max_batch: int = 256,
        max_queue: int = 1024,
        max_wait: float | None = 10,
    ):
        if window_ms < 0 or max_batch < 1 or max_queue < 1:
            raise ValueError("window_ms >= 0, max_batch >= 1 and max_queue >= 1")
        if max_wait is not None and max_wait <= 0:
            raise ValueError("max_wait > 0 (or None: no bound)")
        self._batch = batch
        self._window = window_ms / 1000
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._max_wait = max_wait
        self._queue: asyncio.Queue[tuple[Submission, Principal, asyncio.Future[Outcome]]] | None
        self._queue = None
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._pending = 0
        self._limiter = anyio.CapacityLimiter(1)
        self.stats = BatchStats()

    @property
    def queued(self) -> int:
        """Submissions waiting in the queue (not yet taken by the writer)."""
        return self._queue.qsize() if self._queue is not None else 0

    @property
    def pending(self) -> int:
        """Submissions taken and not yet answered (queued or being written)."""
        return self._pending

    def start(self) -> None:
        if self._task is None:
            self._queue = asyncio.Queue(self._max_queue)
            self._arrived = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="sipantau-group-commit"
            )

    async def submit(self, item: Submission, principal: Principal) -> Outcome:
        """Queue ``item`` and wait for its outcome (after its transaction committed).
        Raises :class:`Busy` when the queue is full, :class:`Closed` when closing, and
        :class:`TimedOut` when no outcome came within ``max_wait`` seconds."""
        if self._closing:
            raise Closed
        self.start()
        assert self._queue is not None
        assert self._arrived is not None
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, principal, future))
        except asyncio.QueueFull:
            self.stats.refused += 1
            raise Busy from None
        self._arrived.set()
        self._pending += 1
        try:
            # The outcome is delivered even when this request is cancelled (client
            # gone): shield, so that a cancelled waiter does not cancel the future.
            async with asyncio.timeout(self._max_wait):
                return await asyncio.shield(future)
        except TimeoutError:
            # Still queued: the writer skips it (a cancelled future). Being written: it
            # commits or not, and the client's resend learns which (a duplicate).
            future.cancel()
            self.stats.timed_out += 1
            raise TimedOut from None
        finally:
            self._pending -= 1

    async def close(self) -> None:
        """Take no new submissions, commit those queued, stop the writer."""
        self._closing = True
        if self._task is None:
            return
        assert self._arrived is not None
        self._arrived.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _collect(self) -> list[tuple[Submission, Principal, asyncio.Future[Outcome]]]:
        assert self._queue is not None
        assert self._arrived is not None
        queue, arrived = self._queue, self._arrived
        batch: list[tuple[Submission, Principal, asyncio.Future[Outcome]]] = []
        while not batch:
            while queue.empty():
                if self._closing:
                    return []
                arrived.clear()
                await arrived.wait()
            self._take(queue.get_nowait(), batch)
        deadline = time.monotonic() + self._window
        while len(batch) < self._max_batch:
            if not queue.empty():
                self._take(queue.get_nowait(), batch)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                break
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), remaining)
        return batch

    def _take(
        self,
        entry: tuple[Submission, Principal, asyncio.Future[Outcome]],
        batch: list[tuple[Submission, Principal, asyncio.Future[Outcome]]],
    ) -> None:
        """Add ``entry`` to ``batch`` unless its waiter gave up (timed out) meanwhile."""
        if entry[2].cancelled():
            self.stats.dropped += 1
        else:
            batch.append(entry)

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            if not batch:
                return
            started = time.perf_counter()
            items = [(item, principal) for item, principal, _ in batch]
            try:
                outcomes = await anyio.to_thread.run_sync(self._batch, items, limiter=self._limiter)
                if len(outcomes) != len(batch):
                    raise RuntimeError("the batch function returned a wrong number of outcomes")
            except Exception as e:  # noqa: BLE001 - every waiting request answers with it
                log_unexpected(e, "the group commit")
                outcomes = [e] * len(batch)
            stats = self.stats
            stats.batches += 1
            stats.items += len(batch)
            stats.largest = max(stats.largest, len(batch))
            stats.busy_seconds += time.perf_counter() - started
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

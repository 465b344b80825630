"""Live updates of the overview by Server-Sent Events, with no polling storm.

One hub per server process watches the desk's audit log (every change to the count is an
entry: a submission, a decision, a release, an acknowledgement), a cheap read of the
entries after the last one seen, every ``poll_s``. When entries arrive that concern a
region someone watches, the hub renders that region's panels once for all the viewers who
see it alike (same role, scope, region, contest and language), at most once per
``min_interval_s`` (or twice the time its last render took, when that is longer), and
pushes the HTML to each of them. The renders read through the
desk's queries as one of those viewers, so the access policy and the audit log apply to
them as to a page.

Each message carries the audit sequence number it reflects as its SSE ``id``. A browser
that reconnects sends it back (``Last-Event-ID``); it gets the current panels at once,
and the number of changes it missed is in the message, so nothing is lost by a dropped
connection: the panels are the whole state, not a diff.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from anyio.streams.memory import MemoryObjectSendStream
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sipantau_adapters.web.overview import default_region, overview
from sipantau_adapters.web.snapshot import overview_from, read_snapshot
from sipantau_core.access import Principal, Role
from sipantau_core.domain import NATION, RegionCode

if TYPE_CHECKING:
    from sipantau_adapters.web.app import WebApp

__all__ = ["CHANGES", "LiveHub", "stream"]

log = logging.getLogger("sipantau_adapters.web")

#: The audit actions that change what the overview shows.
#: (a batch of reports is one ``submit_batch`` entry about the region holding them)
CHANGES = frozenset({"submit", "submit_batch", "override", "reject", "release", "acknowledge"})
#: A comment line now and then keeps proxies from closing an idle stream.
KEEPALIVE_S = 15.0
#: A stream ends after this long; the browser reconnects at once (``retry``), signing in
#: again from its cookie, so a revoked token or an expired session stops its updates.
MAX_STREAM_S = 300.0


@attrs.frozen
class Group:
    """Viewers who see the same panels: the same role on the same region (each of them
    was allowed it when it connected, by its own first render; what a role may see of a
    region it covers does not depend on how much more its scope covers), the same
    contest and language."""

    role: str
    region: str
    contest: str | None
    lang: str


@attrs.define
class _Watch:
    principal: Principal
    send: MemoryObjectSendStream[str]


@attrs.define
class _GroupState:
    watchers: list[_Watch] = attrs.field(factory=list)
    dirty: bool = False
    changes: int = 0
    rendered_at: float = 0.0
    cost: float = 0.0  # how long its last render took


class LiveHub:
    """The process's watcher of the audit log and its SSE subscribers."""

    def __init__(self, web: WebApp, *, poll_s: float = 0.25, min_interval_s: float = 1.0):
        self.web = web
        self.poll_s = poll_s
        self.min_interval_s = min_interval_s
        self.seq = 0
        self.groups: dict[Group, _GroupState] = {}

    # -- rendering -------------------------------------------------------------------------

    def render_panels(
        self, principal: Principal, region: str, contest: str | None, lang: str
    ) -> str:
        """The overview's panels of ``region`` as ``principal`` sees them (blocking)."""
        web = self.web
        view = overview(web.desk, region, principal=principal, contest=contest)
        context = web.context_for_lang(lang, view=view, seq=self.seq)
        return web.render("_panels.html", context)

    # -- the watcher -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.seq = await self.web.run(self._head)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    def _head(self) -> int:
        with self.web.desk.storage.transaction() as tx:
            return tx.audit_head()[0]

    def _tail(self, after: int) -> list[tuple[int, str, str]]:
        """(seq, action, region) of the entries after ``after`` (the log's metadata only:
        no figures, no text)."""
        with self.web.desk.storage.transaction() as tx:
            entries = tx.audit(after=after, limit=5000)
        return [(e.seq, e.action, e.region) for e in entries]

    def missed(self, after: int, region: str) -> tuple[int, int]:
        """The log's newest sequence number, and how many changes concerning ``region``
        came after ``after`` (what a viewer who reconnects missed)."""
        entries = self._tail(after)
        seq = entries[-1][0] if entries else after
        count = sum(1 for _, a, r in entries if a in CHANGES and _concerns(region, r))
        return max(seq, self.seq), count

    async def _watch(self) -> None:
        took = 0.0
        while True:
            await anyio.sleep(max(0.05, self.poll_s - took))
            started = time.monotonic()
            try:
                await self._step()
            except Exception as e:  # noqa: BLE001 - the watcher must outlive one failure
                log.warning("sipantau web: live update failed: %s", type(e).__name__)
            took = time.monotonic() - started

    async def _step(self) -> None:
        if not self.groups:
            self.seq = await self.web.run(self._head)
            return
        entries = await self.web.run(self._tail, self.seq)
        if entries:
            self.seq = entries[-1][0]
            changed = [region for _, action, region in entries if action in CHANGES]
            for group, state in self.groups.items():
                hits = sum(1 for region in changed if _concerns(group.region, region))
                if hits:
                    state.dirty = True
                    state.changes += hits
        now = time.monotonic()
        due: list[tuple[Group, _GroupState]] = []
        for group, state in list(self.groups.items()):
            # Desk staff share one read per update, so theirs are all made at each step
            # that found changes; a viewers' region, read on its own, is rendered at most
            # once per min_interval_s, or twice its last render's time when that is longer.
            if group.role == Role.VIEWER.value:
                interval = max(self.min_interval_s, 2 * state.cost)
            else:
                interval = 0.0
            if state.dirty and state.watchers and now - state.rendered_at >= interval:
                state.dirty = False
                state.rendered_at = now
                due.append((group, state))
        staff = [(g, st) for g, st in due if g.role != Role.VIEWER.value]
        by_contest: dict[str | None, list[tuple[Group, _GroupState]]] = {}
        for group, state in staff:
            by_contest.setdefault(group.contest, []).append((group, state))
        for contest, groups in by_contest.items():
            # desk staff: one read of the desk for all their groups, cut by region
            pages = await self.web.run(self._render_staff, contest, [g for g, _ in groups])
            cost = time.monotonic() - now
            for (_, state), html in zip(groups, pages, strict=True):
                self._send(state, html)
                state.cost = cost
        for group, state in due:
            if group.role == Role.VIEWER.value:
                started = time.monotonic()
                principal = state.watchers[0].principal
                html = await self.web.run(
                    self.render_panels, principal, group.region, group.contest, group.lang
                )
                self._send(state, html)
                state.cost = time.monotonic() - started

    def _render_staff(self, contest: str | None, groups: list[Group]) -> list[str]:
        """The panels of every group of desk staff, from one snapshot (blocking)."""
        web = self.web
        snapshot = read_snapshot(web.desk, [g.region for g in groups], contest)
        out = []
        for group in groups:
            view = overview_from(web.desk, snapshot, group.region)
            context = web.context_for_lang(group.lang, view=view, seq=self.seq)
            out.append(web.render("_panels.html", context))
        return out

    def _send(self, state: _GroupState, html: str) -> None:
        message = _event("panels", self.seq, {"html": html, "changes": state.changes})
        state.changes = 0
        for watch in list(state.watchers):
            try:
                watch.send.send_nowait(message)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                # a slow viewer skips a snapshot; the next one holds everything
                continue

    # -- subscribers -----------------------------------------------------------------------

    def subscribe(
        self, group: Group, principal: Principal, send: MemoryObjectSendStream[str]
    ) -> _Watch:
        watch = _Watch(principal, send)
        self.groups.setdefault(group, _GroupState()).watchers.append(watch)
        return watch

    def unsubscribe(self, group: Group, watch: _Watch) -> None:
        state = self.groups.get(group)
        if state is None:
            return
        with contextlib.suppress(ValueError):
            state.watchers.remove(watch)
        if not state.watchers:
            del self.groups[group]


def _concerns(watched: str, region: str) -> bool:
    """Whether an audit entry about ``region`` (a TPS's 13 digits or a region code)
    concerns the region ``watched``."""
    if not region:
        return False
    if NATION.value in (watched, region):  # the whole country holds every region
        return True
    if "." not in region and len(region) == 13:
        digits = watched.replace(".", "")
        return region.startswith(digits)
    return region == watched or region.startswith(watched + ".") or watched.startswith(region)


def _event(name: str, seq: int, data: Any) -> str:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {seq}\nevent: {name}\ndata: {body}\n\n"


async def stream(web: WebApp, request: Request) -> Response:
    """``GET /live?region=…&contest=…``: the overview's panels as Server-Sent Events."""
    principal, _ = await web.signed_in(request)
    region = request.query_params.get("region") or default_region(web.desk, principal)
    contest = request.query_params.get("contest") or None
    lang = web.lang(request)
    code = RegionCode.parse(region).value
    hub: LiveHub = web.live
    # the first snapshot is read now, so a refusal is an error answer, not a stream
    html = await web.run(hub.render_panels, principal, code, contest, lang)
    try:
        last: int | None = int(request.headers.get("last-event-id", ""))
    except ValueError:
        last = None
    if last is not None:
        seq, missed = await web.run(hub.missed, last, code)
    else:
        seq, missed = hub.seq, 0
    group = Group(principal.role.value, code, contest, lang)
    send, receive = anyio.create_memory_object_stream[str](4)
    watch = hub.subscribe(group, principal, send)
    first = _event("panels", seq, {"html": html, "changes": missed, "resumed": last is not None})

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            yield first
            ends = time.monotonic() + MAX_STREAM_S
            while time.monotonic() < ends:
                with anyio.move_on_after(min(KEEPALIVE_S, max(0.0, ends - time.monotonic()))):
                    yield await receive.receive()
                    continue
                yield ": keep-alive\n\n"
        finally:
            hub.unsubscribe(group, watch)
            send.close()
            receive.close()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )

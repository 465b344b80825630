"""Redaction: an alert rendered at a channel's clearance, and the messages it goes out in.

A line about an alert (:func:`render_line`) never carries personal data or an incident's
free text, and carries figures only where :func:`figures_allowed`. The pending alerts of
one channel and recipient go out as one message, or as digests within the channel's
limits (``_compose``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from sipantau_core.access import Classification
from sipantau_core.domain import RegionCode, StationCode
from sipantau_core.events import Channel, Message, MessageItem
from sipantau_core.notify.routing import Alert
from sipantau_core.ports import NotificationRecord, ReleaseRecord

if TYPE_CHECKING:
    from sipantau_core.deployment import Deployment

_OPEN_DESK = "buka desk"


def _percent(fraction: float, digits: int = 1) -> str:
    return f"{100 * fraction:.{digits}f}".replace(".", ",") + "%"


@attrs.frozen
class _Labels:
    """Names from the deployment for rendering (no storage)."""

    deployment: Deployment
    catalogue: Mapping[str, Any]

    def station(self, compact: str | None) -> str:
        if compact is None:
            return "TPS"
        code = StationCode.parse(compact)
        station = self.deployment.stations.get(code)
        if station is not None and station.name:
            return station.name
        return f"TPS {code.number:03d} {self.region(code.village.value)}"

    def region(self, code: str | None) -> str:
        if code is None:
            return self.deployment.name
        return self.deployment.region_names.get(RegionCode.parse(code), code)

    def contest(self, contest: str | None) -> str:
        found = self.deployment.contests.get(contest or "")
        return (found.name or found.id) if found is not None else "pemilihan"

    def option(self, contest: str | None, option: int) -> str:
        found = self.deployment.contests.get(contest or "")
        if found is None:
            return f"nomor urut {option}"
        try:
            return found.label(option)
        except (KeyError, LookupError, ValueError):
            return f"nomor urut {option}"

    def category(self, code: str) -> str:
        found = self.catalogue.get(code)
        return str(found.label_id) if found is not None else code


def figures_allowed(clearance: Classification, *, released: bool) -> bool:
    """Figures (votes, shares, a flagged tally's numbers) go to a SECRET channel, and to a
    RESTRICTED one once the region's figures are released; never below."""
    return clearance >= Classification.SECRET or (
        released and clearance >= Classification.RESTRICTED
    )


def render_line(
    alert: Alert,
    clearance: Classification,
    *,
    deployment: Deployment,
    catalogue: Mapping[str, Any] | None = None,
    released: bool = False,
) -> str:
    """One line about ``alert`` for a channel of ``clearance`` (without the closing
    "buka desk"). PUBLIC gets only that there is news; INTERNAL and up the TPS, village,
    category, severity, stage, deadline and counts of TPS; figures only where
    :func:`figures_allowed`. Never personal data, never an incident's text."""
    labels = _Labels(deployment, catalogue or {})
    if clearance < Classification.INTERNAL:
        return "Pemberitahuan baru"
    facts = alert.facts
    figures = figures_allowed(clearance, released=released)
    where = labels.station(alert.station)
    if alert.kind == "incident":
        raised = " (TPS rawan)" if facts.get("high_risk") else ""
        return (
            f"Kejadian baru tingkat {facts['severity']} di {where}{raised}: "
            f"{labels.category(str(facts['category']))}"
        )
    if alert.kind == "tally_flagged":
        line = f"Hasil {where} ditandai: {', '.join(facts['codes'])}"
        if clearance >= Classification.SECRET and facts.get("details"):
            line += " (" + "; ".join(str(d) for d in facts["details"]) + ")"
        return line
    if alert.kind == "station_silent":
        return f"{where} belum melapor tahap {facts['stage']} (batas {facts['deadline']})"
    if alert.kind == "milestone":
        return (
            f"Progres {labels.contest(alert.contest)}: {_percent(facts['threshold'], 0)} TPS di "
            f"{labels.region(alert.region)} sudah masuk ({facts['counted']}/{facts['expected']})"
        )
    if alert.kind == "quickcount_callable":
        line = (
            f"Hitung cepat {labels.contest(alert.contest)} di {labels.region(alert.region)} "
            f"sudah dapat ditetapkan ({facts['counted']}/{facts['expected']} TPS)"
        )
        if figures:
            line += (
                f": {labels.option(alert.contest, int(facts['leader']))} unggul "
                f"{_percent(facts['share'], 2)} ± {_percent(facts['margin'], 2)} "
                f"(kepercayaan {_percent(facts['confidence'], 0)})"
            )
        return line
    return f"Pemberitahuan {alert.kind}"  # a kind a newer release added


def _released(releases: Sequence[ReleaseRecord], region: str | None, contest: str | None) -> bool:
    """What :meth:`Desk.is_released` answers, from the releases read in a transaction."""
    if region is None or contest is None:
        return False
    return any(r.region == region and r.contest in (None, contest) for r in releases)


def _compose(
    lines: Sequence[tuple[MessageItem, tuple[NotificationRecord, ...]]],
    channel: Channel,
    clearance: Classification,
    *,
    recipient: str,
    desk: str,
    now: datetime,
) -> Iterator[tuple[Message, tuple[NotificationRecord, ...]]]:
    """The messages for one recipient: one line alone, or digests of at most the
    channel's ``max_items`` lines and ``max_chars`` characters."""

    def message(
        chunk: Sequence[tuple[MessageItem, tuple[NotificationRecord, ...]]],
    ) -> tuple[Message, tuple[NotificationRecord, ...]]:
        records = tuple(r for _, recs in chunk for r in recs)
        items = tuple(item for item, _ in chunk)
        digest = hashlib.sha256("\n".join(sorted(r.dedupe_key for r in records)).encode())
        if clearance < Classification.INTERNAL:
            subject = f"[{desk}] {len(items)} pemberitahuan baru"
            text = f"{desk}: {len(items)} pemberitahuan baru — {_OPEN_DESK}"
        elif len(items) == 1:
            subject = f"[{desk}] {items[0].text}"[:200]
            text = f"{items[0].text} — {_OPEN_DESK}"
        else:
            subject = f"[{desk}] {len(items)} pemberitahuan baru"
            body = "\n".join(f"• {i.text}" for i in items)
            text = f"{desk}: {len(items)} pemberitahuan baru\n{body}\n— {_OPEN_DESK}"
        return (
            Message(
                id=f"msg_{digest.hexdigest()[:32]}",
                channel=channel.name,
                recipient=recipient,
                subject=subject,
                text=text,
                items=items,
                desk=desk,
                clearance=clearance,
                created_at=now,
            ),
            records,
        )

    if clearance < Classification.INTERNAL:
        # nothing but a count: one message for everything (the items are identical)
        for start in range(0, len(lines), 1000):
            yield message(lines[start : start + 1000])
        return
    budget = channel.max_chars - len(desk) - 60  # the header and the closing line
    chunk: list[tuple[MessageItem, tuple[NotificationRecord, ...]]] = []
    used = 0
    for item, records in lines:
        if len(item.text) > budget:
            item = attrs.evolve(item, text=item.text[: budget - 1] + "…")
        cost = len(item.text) + 3
        if chunk and (len(chunk) >= channel.max_items or used + cost > budget):
            yield message(chunk)
            chunk, used = [], 0
        chunk.append((item, records))
        used += cost
    if chunk:
        yield message(chunk)

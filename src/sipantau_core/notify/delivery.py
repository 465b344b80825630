"""Delivery: the notifier, its durable queue, and the messages sent.

:class:`Notifier` queues one :class:`~sipantau_core.ports.NotificationRecord` per alert
(found by :mod:`~sipantau_core.notify.finding`), matching rule and target, unique by its
``dedupe_key``: written in the transaction of the report that caused it, or by
:meth:`Notifier.tick` before anything is sent. At each tick the pending records of each
channel and recipient become messages (:mod:`~sipantau_core.notify.redaction`), are
claimed, sent one recipient at a time, retried with backoff until sent or given up, and
their outcomes recorded.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from sipantau_core.access import Classification
from sipantau_core.domain import Stage, StationCode
from sipantau_core.errors import SipantauError
from sipantau_core.events import (
    Channel,
    DeliveryError,
    DeskView,
    Message,
    MessageItem,
    ReportEvent,
)
from sipantau_core.notify.finding import Finding
from sipantau_core.notify.redaction import _compose, _released, render_line
from sipantau_core.notify.routing import Alert, EscalationRule, NotificationSettings, dedupe_key
from sipantau_core.ports import NotificationRecord, NotificationStatus, ReleaseRecord, WriteBatch

if TYPE_CHECKING:
    from sipantau_core.deployment import Deployment
    from sipantau_core.plugins import Plugins

# the name the notifier has always logged under
log = logging.getLogger("sipantau_core.notify")


@attrs.frozen
class TickResult:
    """What one :meth:`Desk.tick` did: ``found`` alerts (silent stations, milestones,
    quick count), ``queued`` records written for them (the queue skips those it holds),
    ``messages`` sent, carrying ``sent`` records; ``failed`` records to be retried and
    ``given_up`` ones."""

    found: int = 0
    queued: int = 0
    messages: int = 0
    sent: int = 0
    failed: int = 0
    given_up: int = 0


@attrs.frozen
class _Delivery:
    message: Message
    records: tuple[NotificationRecord, ...]


def _interleave(groups: Sequence[Sequence[_Delivery]]) -> list[_Delivery]:
    """One message of each recipient in turn (so no chat's rate limit holds up the
    others)."""
    out: list[_Delivery] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def make_channel(
    plugins: Plugins, name: str, config: Mapping[str, Any], deployment: Deployment
) -> Channel:
    """The channel ``name`` of ``config["kind"]``, from the first plugin that makes it."""
    kind = str(config["kind"])
    channel = plugins.notification_channel(name, kind, config, deployment)
    if channel is None:
        raise SipantauError(
            f"no plugin makes notification channels of kind {kind!r} (channel {name!r})",
            code="notify.unknown_kind",
        )
    if not isinstance(channel, Channel):
        raise SipantauError(
            f"the plugin that makes {kind!r} channels returned a {type(channel).__name__}, "
            "not a sipantau_core.notify.Channel",
            code="notify.unknown_kind",
        )
    return channel


class Notifier(Finding):
    """The desk's notifier: turns lifecycle events and what :meth:`tick` finds into
    queued alerts, and delivers them. Built by ``Desk.open`` when the deployment has
    ``[settings.notifications]`` (``desk.notifier``; ``None`` otherwise). What it finds
    comes from :class:`~sipantau_core.notify.finding.Finding`."""

    def __init__(
        self, desk: DeskView, settings: NotificationSettings, channels: Mapping[str, Channel]
    ):
        self.desk = desk
        self.settings = settings
        self.channels = dict(channels)
        missing = set(settings.channels) - set(self.channels)
        if missing:
            raise SipantauError(f"no channel object for {sorted(missing)}", code="notify.config")
        self._lock = threading.Lock()
        self._queued: set[tuple[str, str]] = set()  # (rule, event) queued by this process
        self._deadlines: dict[tuple[str, Stage], datetime] = {}
        self._settled: set[tuple[str, str, Stage]] = set()  # (rule, TPS, stage) decided
        self._quick_seen: dict[tuple[str, str, str], int] = {}  # TPS counted when last asked
        self._expected: dict[str, int] = {}

    @classmethod
    def for_desk(cls, desk: DeskView, plugins: Plugins) -> Notifier | None:
        """The notifier configured by the desk's ``[settings.notifications]``, its
        channels made by ``plugins``; ``None`` when the deployment has none."""
        raw = desk.deployment.settings.get("notifications")
        if raw is None:
            return None
        settings = NotificationSettings.parse(
            raw, desk.deployment, categories=desk.incident_categories
        )
        channels: dict[str, Channel] = {}
        try:
            for name, config in settings.channels.items():
                channels[name] = make_channel(plugins, name, config, desk.deployment)
        except BaseException:
            for made in channels.values():
                made.close()
            raise
        return cls(desk, settings, channels)

    def close(self) -> None:
        for channel in self.channels.values():
            try:
                channel.close()
            except Exception:
                log.exception("sipantau: closing the notification channel %s failed", channel.name)

    def clearance(self, channel: str) -> Classification:
        """What the channel is rendered for: the lower of the configured clearance and
        the channel object's own."""
        return min(self.settings.clearance(channel), self.channels[channel].clearance)

    # -- alerts → records --------------------------------------------------------------------

    def records(self, alerts: Iterable[Alert], now: datetime) -> list[NotificationRecord]:
        """One queue record per alert, matching rule and target."""
        stations = self.desk.deployment.stations
        found: list[tuple[EscalationRule, Alert]] = []
        for alert in alerts:
            station = stations.get(StationCode.parse(alert.station)) if alert.station else None
            found.extend(
                (rule, alert) for rule in self.settings.rules if rule.matches(alert, station)
            )
        return self._records(found, now)

    def _records(
        self, found: Iterable[tuple[EscalationRule, Alert]], now: datetime
    ) -> list[NotificationRecord]:
        """One queue record per rule's alert and target."""
        out: dict[str, NotificationRecord] = {}
        payloads: dict[str, str] = {}
        for rule, alert in found:
            payload = payloads.setdefault(alert.event, alert.to_payload())
            wait = rule.digest if rule.digest is not None else self.settings.digest
            for target in rule.to:
                key = dedupe_key(alert.event, rule.id, target)
                out.setdefault(
                    key,
                    NotificationRecord(
                        dedupe_key=key,
                        event=alert.event,
                        rule=rule.id,
                        channel=target.channel,
                        recipient=target.recipient,
                        kind=alert.kind,
                        payload=payload,
                        created_at=now,
                        next_attempt_at=now + wait,
                    ),
                )
        return list(out.values())

    def queue(self, events: Iterable[ReportEvent], now: datetime) -> list[NotificationRecord]:
        """The records for report events, for the desk to write in the transaction that
        stores the reports (pure: reads nothing)."""
        return self.records((a for e in events for a in self.alerts_of(e)), now)

    # -- the periodic job -------------------------------------------------------------------

    def tick(self, now: datetime) -> TickResult:
        """Find silent stations, milestones and a callable quick count; queue their alerts
        (durably, before anything is sent); send what is due; record the outcomes."""
        with self._lock:
            # each found by a rule, for that rule alone (its own grace, thresholds, …)
            found = [*self._silent_stations(now), *self._progress(now)]
            records = self._records(found, now)
            if records:
                with self.desk.storage.transaction() as tx:
                    tx.write(WriteBatch(notifications=records))
            self._queued.update((rule.id, alert.event) for rule, alert in found)
            result = self._deliver(now)
            alerts = {alert.event for _, alert in found}
            return attrs.evolve(result, found=len(alerts), queued=len(records))

    # -- delivery ------------------------------------------------------------------------

    def _plan(
        self,
        pending: Sequence[NotificationRecord],
        releases: Sequence[ReleaseRecord],
        now: datetime,
    ) -> tuple[list[_Delivery], list[NotificationRecord]]:
        """The messages due now (interleaved by recipient), and the records of channels
        the desk no longer has (to give up)."""
        groups: dict[tuple[str, str], list[NotificationRecord]] = defaultdict(list)
        for record in pending:
            groups[(record.channel, record.recipient)].append(record)
        orphans: list[NotificationRecord] = []
        planned: list[list[_Delivery]] = []
        deployment = self.desk.deployment
        catalogue = self.desk.incident_categories
        for (name, recipient), records in groups.items():
            if name not in self.channels:
                orphans.extend(records)
                continue
            if not any(r.next_attempt_at <= now for r in records):
                continue
            # the due ones, and the fresh ones waiting for their digest window: together
            take = [r for r in records if r.next_attempt_at <= now or r.attempts == 0]
            channel = self.channels[name]
            clearance = self.clearance(name)
            by_event: dict[str, tuple[MessageItem, list[NotificationRecord]]] = {}
            for record in take:
                if record.event in by_event:  # the same event by two rules: one line
                    by_event[record.event][1].append(record)
                    continue
                alert = Alert.from_payload(record.payload)
                text = render_line(
                    alert,
                    clearance,
                    deployment=deployment,
                    catalogue=catalogue,
                    released=_released(releases, alert.region, alert.contest),
                )
                item = MessageItem(record.dedupe_key, alert.kind, text, alert.at)
                by_event[record.event] = (item, [record])
            lines = [(item, tuple(recs)) for item, recs in by_event.values()]
            messages = _compose(
                lines, channel, clearance, recipient=recipient, desk=deployment.name, now=now
            )
            deliveries: list[_Delivery] = []
            for message, recs in messages:
                if len(deliveries) >= self.settings.max_messages_per_tick:
                    break
                deliveries.append(_Delivery(message, recs))
            planned.append(deliveries)
        return _interleave(planned), orphans

    def _deliver(self, now: datetime) -> TickResult:
        settings = self.settings
        with self.desk.storage.transaction() as tx:
            pending = tx.notifications(statuses=[NotificationStatus.PENDING], lock=True)
            if not pending:
                return TickResult()
            deliveries, orphans = self._plan(pending, tx.releases(), now)
            # claim: another sender leaves them alone until the claim runs out
            claimed = [
                attrs.evolve(r, attempts=r.attempts + 1, next_attempt_at=now + settings.claim)
                for d in deliveries
                for r in d.records
            ]
            dropped = [
                attrs.evolve(
                    r,
                    status=NotificationStatus.GIVEN_UP,
                    given_up_reason=f"the desk has no channel {r.channel!r} any more",
                )
                for r in orphans
            ]
            if claimed or dropped:
                tx.write(WriteBatch(notification_updates=[*claimed, *dropped]))
        claims = {r.dedupe_key: r for r in claimed}
        sent = messages = failed = 0
        given_up = len(dropped)
        down: dict[tuple[str, str], tuple[datetime, str]] = {}
        for delivery in deliveries:
            message = delivery.message
            records = tuple(claims[r.dedupe_key] for r in delivery.records)
            blocked = down.get((message.channel, "")) or down.get(
                (message.channel, message.recipient)
            )
            if blocked is not None:
                # the channel failed a moment ago: not tried, the attempt not counted
                until, why = blocked
                self._write_outcome(
                    attrs.evolve(r, attempts=r.attempts - 1, next_attempt_at=until, last_error=why)
                    for r in records
                )
                failed += len(records)
                continue
            error = self._send(message)
            if error is None:
                self._write_outcome(
                    attrs.evolve(
                        r,
                        status=NotificationStatus.SENT,
                        sent_at=now,
                        message_id=message.id,
                        last_error="",
                    )
                    for r in records
                )
                sent += len(records)
                messages += 1
                continue
            outcome = [self._failed(r, error, now) for r in records]
            self._write_outcome(outcome)
            gave_up = sum(1 for r in outcome if r.status is NotificationStatus.GIVEN_UP)
            given_up += gave_up
            failed += len(records) - gave_up
            if not error.permanent:
                retry = now + max(
                    settings.retry_delay(records[0].attempts),
                    timedelta(seconds=error.retry_after or 0),
                )
                scope = message.recipient if error.recipient_only else ""
                down[(message.channel, scope)] = (retry, error.message)
        return TickResult(messages=messages, sent=sent, failed=failed, given_up=given_up)

    def _send(self, message: Message) -> DeliveryError | None:
        channel = self.channels[message.channel]
        try:
            channel.send(message)
        except DeliveryError as e:
            log.warning(
                "sipantau: notification message %s via %s failed: %s",
                message.id,
                message.channel,
                e.message,
            )
            return e
        except Exception as e:
            log.exception("sipantau: the notification channel %s failed", message.channel)
            return DeliveryError(f"{message.channel}: {type(e).__name__}")
        return None

    def _failed(
        self, record: NotificationRecord, error: DeliveryError, now: datetime
    ) -> NotificationRecord:
        settings = self.settings
        reason = ""
        if error.permanent:
            reason = f"permanent failure: {error.message}"
        elif record.attempts >= settings.max_attempts:
            reason = f"not delivered in {record.attempts} attempts: {error.message}"
        elif now - record.created_at >= settings.give_up_after:
            reason = f"not delivered within {settings.give_up_after}: {error.message}"
        if reason:
            log.warning(
                "sipantau: notification %s via %s given up: %s",
                record.dedupe_key[:16],
                record.channel,
                reason,
            )
            return attrs.evolve(
                record,
                status=NotificationStatus.GIVEN_UP,
                last_error=error.message,
                given_up_reason=reason,
            )
        wait = max(settings.retry_delay(record.attempts), timedelta(seconds=error.retry_after or 0))
        return attrs.evolve(record, next_attempt_at=now + wait, last_error=error.message)

    def _write_outcome(self, records: Iterable[NotificationRecord]) -> None:
        updates = list(records)
        if updates:
            with self.desk.storage.transaction() as tx:
                tx.write(WriteBatch(notification_updates=updates))

"""Finding: the alerts a report event raises, and those the periodic job finds.

Incidents of an accepted or corrected situation report (their severity raised at a TPS
mapped as high-risk) and a tally flagged by a hard rule; at each tick, a TPS silent past
a stage deadline (in its own time zone), a progress milestone reached, a quick count that
became callable, each found by a rule for that rule alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sipantau_core.access import Principal, Role
from sipantau_core.domain import PollingStation, SituationReport, Stage, TallyReport
from sipantau_core.events import DeskView, ReportEvent
from sipantau_core.notify.routing import Alert, EscalationRule, NotificationSettings
from sipantau_core.rules import HARD

#: The principal the desk's notifier reads as (its reads of status and of the quick count
#: are audited under this id).
NOTIFIER = Principal(id="notifier", role=Role.SYSTEM)


class Finding:
    """What the notifier finds (a mixin of :class:`~sipantau_core.notify.Notifier`, which
    sets the state declared here): the alerts of a report event, and at each tick the
    silent stations, milestones and a callable quick count."""

    desk: DeskView
    settings: NotificationSettings
    _queued: set[tuple[str, str]]  # (rule, event) queued by this process
    _deadlines: dict[tuple[str, Stage], datetime]
    _settled: set[tuple[str, str, Stage]]  # (rule, TPS, stage) decided
    _quick_seen: dict[tuple[str, str, str], int]  # TPS counted when last asked
    _expected: dict[str, int]

    # -- report events → alerts --------------------------------------------------------------

    def alerts_of(self, event: ReportEvent) -> list[Alert]:
        """The alerts a report lifecycle event raises: incidents of an accepted or
        corrected situation report, and a tally flagged by a hard rule."""
        out: list[Alert] = []
        report, receipt = event.report, event.receipt
        station = self.desk.deployment.stations.get(report.station)
        if station is None:
            return out
        village = report.station.village.value
        if event.kind in ("accepted", "corrected") and isinstance(report, SituationReport):
            high = station.risk.is_high
            for i, incident in enumerate(report.incidents):
                raise_by = self.settings.high_risk_raise if high else 0
                severity = min(4, incident.severity + raise_by)
                out.append(
                    Alert(
                        kind="incident",
                        event=f"incident:{receipt.chain_id}:{i}:{incident.category}:{severity}",
                        at=event.at,
                        station=report.station.compact,
                        region=village,
                        contest=report.contest,
                        facts={
                            "category": incident.category,
                            "severity": severity,
                            "reported_severity": incident.severity,
                            "high_risk": high,
                            "stage": report.stage.value,
                        },
                    )
                )
        if receipt.status == "flagged" and isinstance(report, TallyReport):
            hard = [v for v in receipt.violations if v.severity == HARD]
            out.append(
                Alert(
                    kind="tally_flagged",
                    event=f"tally_flagged:{receipt.report_id}",
                    at=event.at,
                    station=report.station.compact,
                    region=village,
                    contest=report.contest,
                    facts={
                        "codes": sorted({v.code for v in hard}),
                        "details": [v.message_id for v in hard],
                    },
                )
            )
        return out

    # -- found by the periodic job ----------------------------------------------------------

    def _deadline(self, station: PollingStation, stage: Stage) -> datetime:
        key = (station.code.compact, stage)
        found = self._deadlines.get(key)
        if found is None:
            dep = self.desk.deployment
            found = dep.schedule.deadline(stage, dep.election_day, station.time_zone)
            self._deadlines[key] = found
        return found

    def _silent_stations(self, now: datetime) -> list[tuple[EscalationRule, Alert]]:
        rules = [r for r in self.settings.rules if r.on == "station_silent"]
        if not rules:
            return []
        stations = sorted(self.desk.deployment.stations.values(), key=lambda s: s.code)
        due = [
            (rule, station, stage)
            for rule in rules
            for station in stations
            if rule.covers(station)
            for stage in rule.stages
            if (rule.id, station.code.compact, stage) not in self._settled
            and now > self._deadline(station, stage) + rule.grace
        ]
        if not due:
            return []
        status = {
            s.station: s
            for s in self.desk.station_status(
                self.desk.deployment.region, principal=NOTIFIER, now=now
            )
        }
        out: list[tuple[EscalationRule, Alert]] = []
        for rule, station, stage in due:
            code = station.code.compact
            state = status[code].stage(stage)
            self._settled.add((rule.id, code, stage))
            if state.state != "missing":
                continue
            deadline = state.deadline
            alert = Alert(
                kind="station_silent",
                event=f"station_silent:{code}:{stage.value}",
                at=now,
                station=code,
                region=station.code.village.value,
                facts={
                    "stage": stage.value,
                    "deadline": f"{deadline:%H:%M} {deadline.tzname()}",
                },
            )
            out.append((rule, alert))
        return out

    def _expected_in(self, region: str) -> int:
        found = self._expected.get(region)
        if found is None:
            found = sum(1 for _ in self.desk.deployment.stations_in(region))
            self._expected[region] = found
        return found

    def _progress(self, now: datetime) -> list[tuple[EscalationRule, Alert]]:
        rules = [r for r in self.settings.rules if r.on in ("milestone", "quickcount_callable")]
        if not rules:
            return []
        contests = self.desk.deployment.contests
        wanted = {
            (contest, region.value)
            for rule in rules
            for region in rule.regions
            for contest in (rule.contests if rule.contests is not None else contests)
        }
        with self.desk.storage.transaction() as tx:
            counted = {key: tx.aggregates(*key).get("stations", 0) for key in sorted(wanted)}
        out: list[tuple[EscalationRule, Alert]] = []
        for rule in rules:
            for region_code in rule.regions:
                region = region_code.value
                for contest in sorted(rule.contests if rule.contests is not None else contests):
                    n, expected = counted[(contest, region)], self._expected_in(region)
                    if not expected:
                        continue
                    if rule.on == "milestone":
                        found = self._milestones(rule, contest, region, n, expected, now)
                        out.extend((rule, alert) for alert in found)
                    else:
                        alert = self._callable(rule, contest, region, n, expected, now)
                        if alert is not None:
                            out.append((rule, alert))
        return out

    def _milestones(
        self, rule: EscalationRule, contest: str, region: str, n: int, expected: int, now: datetime
    ) -> Iterator[Alert]:
        for threshold in rule.thresholds:
            event = f"milestone:{contest}:{region}:{threshold:g}"
            if (rule.id, event) in self._queued or n < threshold * expected:
                continue
            yield Alert(
                kind="milestone",
                event=event,
                at=now,
                region=region,
                contest=contest,
                facts={"threshold": threshold, "counted": n, "expected": expected},
            )

    def _callable(
        self, rule: EscalationRule, contest: str, region: str, n: int, expected: int, now: datetime
    ) -> Alert | None:
        event = f"quickcount_callable:{contest}:{region}:{rule.confidence:g}"
        seen = (rule.id, contest, region)
        if (rule.id, event) in self._queued or n < 2 or self._quick_seen.get(seen) == n:
            return None
        self._quick_seen[seen] = n
        progress = self.desk.progress(
            region, principal=NOTIFIER, contest=contest, confidence=rule.confidence
        )
        estimate = progress.projection
        if estimate is None or not estimate.callable or estimate.runner_up is None:
            return None
        leader = estimate.leader
        return Alert(
            kind="quickcount_callable",
            event=event,
            at=now,
            region=region,
            contest=contest,
            facts={
                "leader": leader,
                "runner_up": estimate.runner_up,
                "share": float(estimate.share[leader]),
                "margin": float(estimate.margin[leader]),
                "confidence": rule.confidence,
                "counted": n,
                "expected": expected,
            },
        )

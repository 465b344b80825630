"""The desk as a state machine, on every storage backend.

Hypothesis runs random sequences of submissions (valid tallies and tallies that break
one rule), retries, duplicates within a batch, conflicting resends, corrections of the
newest and of stale versions, second chains for a TPS, overrides, rejections and two
desks writing to the same storage (interleaved, and from two threads at once). A plain
model (per TPS: its chain of versions and what counts; per report: its status) predicts
every answer; after every step the counts at city, district, village and TPS level and
the stored reports must equal the model's.

Backends: ``memory://`` (one ``MemoryStorage`` shared by both desks), ``sqlite:///PATH``
(a fresh file per example) and ``postgresql://…?schema=NAME`` (a fresh schema per
example, marked ``postgres``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sipantau_adapters.storage.memory import MemoryStorage
from sipantau_core import (
    Amends,
    Candidate,
    ConflictError,
    Contest,
    Deployment,
    Desk,
    Monitor,
    PollingStation,
    Principal,
    Receipt,
    RegionCode,
    Role,
    SipantauError,
    TallyReport,
    canonical_bytes,
)
from sipantau_core.desk import Tally
from sipantau_core.ports import Storage
from sipantau_core.testing.strategies import BREAKABLE_RULES, broken_tally_reports, tally_reports

# ---------------------------------------------------------------------------------------
# The deployment: six TPS in three districts (four villages) of Kota Lubuklinggau
# ---------------------------------------------------------------------------------------

STATIONS = (
    PollingStation(code="1673011001001", registered_voters=310),
    PollingStation(code="1673011001002", registered_voters=280),
    PollingStation(code="1673011002001", registered_voters=450),
    PollingStation(code="1673021001001", registered_voters=520),
    PollingStation(code="1673021001002", registered_voters=240),
    PollingStation(code="1673031001001", registered_voters=600),
)
CODES = tuple(s.code.compact for s in STATIONS)
MONITOR_OF = {code: f"LLG-01{i:02d}" for i, code in enumerate(CODES, start=1)}
CONTEST = Contest(
    id="walikota",
    region="16.73",
    candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2"), Candidate(3, "Paslon 3")],
)
OPTIONS = CONTEST.options
DEPLOYMENT = Deployment(
    id="stateful",
    name="Desk for the state machine",
    region=RegionCode("16.73"),
    election_day=date(2024, 11, 27),
    stations={s.code: s for s in STATIONS},
    contests={CONTEST.id: CONTEST},
    monitors={mid: Monitor(id=mid, station=code) for code, mid in MONITOR_OF.items()},
)
SETTINGS = DEPLOYMENT.tally_settings
REGISTERED = {s.code.compact: s.registered_voters for s in STATIONS}

#: The regions above the TPS that the invariants look at after every step (city and
#: districts), and those also looked at on the fast memory backend (province, villages).
REGIONS = ("16.73", "16.73.01", "16.73.02", "16.73.03")
MORE_REGIONS = ("16", "16.73.01.1001", "16.73.01.1002", "16.73.02.1001", "16.73.03.1001")
WITHIN = {
    region: tuple(c for c in CODES if RegionCode(region).contains(DEPLOYMENT.station(c).code))
    for region in REGIONS + MORE_REGIONS
}

SOFT_RULES = frozenset(
    {"ballots.reserve_unexpected", "turnout.outside_band", "votes.unanimous",
     "position.far_from_station"}
)  # fmt: skip
HARD_RULES = frozenset(BREAKABLE_RULES) - SOFT_RULES
#: The rules a TPS of this deployment can break (its TPS have no mapped position).
RULES_HERE = tuple(r for r in BREAKABLE_RULES if r != "position.far_from_station")
COUNTED = frozenset({"accepted", "overridden"})

SYSTEM = Principal(id="import", role=Role.SYSTEM)
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")
OFFICER = Principal(id="officer-1", role=Role.OFFICER, scope="16.73")


def monitor(code: str) -> Principal:
    return Principal(id=MONITOR_OF[code], role=Role.MONITOR, scope=code)


# ---------------------------------------------------------------------------------------
# Backends: each example gets a fresh, empty store that both desks open
# ---------------------------------------------------------------------------------------


@attrs.define
class Store:
    """What ``Desk.open(storage=...)`` gets for both desks, and how to throw it away."""

    target: str | Storage
    drop: Callable[[], None] = lambda: None


def memory_store() -> Store:
    return Store(MemoryStorage())


def sqlite_stores(directory: Path) -> Callable[[], Store]:
    counter = itertools.count(1)

    def make() -> Store:
        path = directory / f"desk-{next(counter)}.db"

        def drop() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        return Store(f"sqlite:///{path}", drop=drop)

    return make


def postgres_store() -> Store:
    """A fresh schema of its own (tests/pg.py), dropped after the example."""
    from pg import fresh_schema

    schema = fresh_schema()
    url = schema.__enter__()
    return Store(url, drop=lambda: schema.__exit__(None, None, None))


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def counts_of(t: Tally) -> dict[str, Any]:
    return {
        "votes": dict(t.votes),
        "valid": t.valid,
        "invalid": t.invalid,
        "total": t.total,
        "stations_counted": t.stations_counted,
        "registered_covered": t.registered_covered,
    }


def run_together(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads released at the same moment; each result is the return
    value or the exception raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = call()
        except BaseException as e:  # noqa: BLE001 - handed to the test thread to judge
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer thread hangs"
    return results


def unexpected(result: Any) -> None:
    """Re-raise what a thread raised unless it is a SipantauError the caller expects."""
    if isinstance(result, BaseException) and not isinstance(result, SipantauError):
        raise result


# ---------------------------------------------------------------------------------------
# The state machine
# ---------------------------------------------------------------------------------------


class DeskMachine(RuleBasedStateMachine):
    """Two desks on one store, against a plain model of what the desk must hold."""

    new_store: Callable[[], Store] = staticmethod(memory_store)
    #: Also check the province and the villages after every step (cheap in memory).
    thorough = True

    def __init__(self) -> None:
        super().__init__()
        self.store = self.new_store()
        self.desks: list[Desk] = []
        try:
            for _ in range(2):
                self.desks.append(Desk.open(DEPLOYMENT, storage=self.store.target, autoload=False))
        except BaseException:
            self.teardown()
            raise
        # The model.
        self.chains: dict[str, list[TallyReport]] = {}  # TPS -> versions, oldest first
        self.status: dict[UUID, str] = {}  # report id -> what the desk must hold for it
        self.sent: dict[UUID, TallyReport] = {}  # report id -> the report as sent
        self.counted: dict[str, TallyReport] = {}  # TPS -> the version that counts
        self._ids = itertools.count(1)
        self.reads = 0

    def teardown(self) -> None:
        for desk in self.desks:
            desk.close()
        self.store.drop()

    # -- drawing -------------------------------------------------------------------------

    def new_id(self) -> UUID:
        # Deterministic and never reused, unlike st.uuids() which shrinks to one value.
        return UUID(int=(0x5A << 120) | next(self._ids))

    def draw_rule(self, data: st.DataObject) -> str | None:
        """No rule (a valid tally) or the one rule a tally breaks."""
        return data.draw(st.none() | st.sampled_from(RULES_HERE), label="breaks")

    def draw_report(
        self,
        data: st.DataObject,
        code: str,
        *,
        amends: Amends | None = None,
        breaks: str | Literal["draw"] | None = "draw",
    ) -> tuple[TallyReport, str]:
        """A tally for ``code``: valid, or breaking one rule; and the status it must get."""
        rule_ = self.draw_rule(data) if breaks == "draw" else breaks
        station = DEPLOYMENT.station(code)
        kw: dict[str, Any] = {
            "station": station,
            "contest": CONTEST,
            "monitor": MONITOR_OF[code],
            "settings": SETTINGS,
        }
        strategy = tally_reports(**kw) if rule_ is None else broken_tally_reports(rule=rule_, **kw)
        report = attrs.evolve(data.draw(strategy), report_id=self.new_id(), amends=amends)
        return report, "flagged" if rule_ in HARD_RULES else "accepted"

    def draw_desk(self, data: st.DataObject) -> Desk:
        return self.desks[data.draw(st.sampled_from([0, 1]), label="desk")]

    def draw_submitter(self, data: st.DataObject, code: str) -> Principal:
        return monitor(code) if data.draw(st.booleans(), label="as monitor") else SYSTEM

    def free(self) -> list[str]:
        return [c for c in CODES if c not in self.chains]

    def reported(self) -> list[str]:
        return [c for c in CODES if c in self.chains]

    def head(self, code: str) -> TallyReport:
        return self.chains[code][-1]

    def heads_with(self, *statuses: str) -> list[str]:
        return [c for c in self.reported() if self.status[self.head(c).report_id] in statuses]

    # -- the model -----------------------------------------------------------------------

    def record(self, report: TallyReport, status: str) -> None:
        """A new version stored with ``status``."""
        code = report.station.compact
        versions = self.chains.setdefault(code, [])
        if versions:
            assert report.amends == Amends(versions[-1].report_id, len(versions))
            self.status[versions[-1].report_id] = "superseded"
        else:
            assert report.amends is None
        versions.append(report)
        self.status[report.report_id] = status
        self.sent[report.report_id] = report
        self.set_counted(code, report if status in COUNTED else None)

    def set_counted(self, code: str, report: TallyReport | None) -> None:
        if report is None:
            self.counted.pop(code, None)
        else:
            self.counted[code] = report

    def expected_counts(self, codes: Sequence[str]) -> dict[str, Any]:
        votes = dict.fromkeys(OPTIONS, 0)
        out = {"valid": 0, "invalid": 0, "total": 0, "stations_counted": 0}
        registered = 0
        for code in codes:
            r = self.counted.get(code)
            if r is None:
                continue
            for n, v in r.votes.items():
                votes[n] = votes.get(n, 0) + v
            # the valid votes are the contest's options' votes, also of an overridden tally
            # (votes under a number the contest does not have count for no one)
            out["valid"] += sum(v for n, v in r.votes.items() if n in OPTIONS)
            out["invalid"] += r.invalid
            out["total"] += r.total
            out["stations_counted"] += 1
            registered += REGISTERED[code]
        # The desk reports the contest's options only.
        return {"votes": {n: votes[n] for n in OPTIONS}, **out, "registered_covered": registered}

    def check_receipt(self, receipt: Receipt, report: TallyReport, status: str) -> None:
        """A receipt for a newly stored version (after :meth:`record`)."""
        code = report.station.compact
        versions = self.chains[code]
        assert receipt.report_id == report.report_id
        assert receipt.status == status
        assert receipt.version == versions.index(report) + 1
        assert receipt.chain_id == versions[0].report_id
        assert receipt.station == code
        assert receipt.first_status is None
        assert receipt.counted == (status in COUNTED)
        assert (status == "flagged") == any(v.is_hard for v in receipt.violations)

    def check_duplicate(self, receipt: Receipt | SipantauError, report: TallyReport) -> None:
        assert isinstance(receipt, Receipt), receipt
        code = report.station.compact
        first = self.status[report.report_id]
        assert receipt.status == "duplicate"
        assert receipt.first_status == first
        assert receipt.report_id == report.report_id
        assert receipt.version == self.chains[code].index(report) + 1
        assert receipt.chain_id == self.chains[code][0].report_id
        assert receipt.counted == (first in COUNTED)

    # -- submitting ----------------------------------------------------------------------

    @precondition(lambda self: self.free())
    @rule(data=st.data())
    def submit_a_new_tally(self, data: st.DataObject) -> None:
        code = data.draw(st.sampled_from(self.free()), label="station")
        report, status = self.draw_report(data, code)
        receipt = self.draw_desk(data).submit(report, principal=self.draw_submitter(data, code))
        self.record(report, status)
        self.check_receipt(receipt, report, status)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """The same report again (as an object, canonical bytes or text): a duplicate."""
        report = data.draw(st.sampled_from(list(self.sent.values())), label="resent")
        form = data.draw(st.sampled_from(["object", "bytes", "text"]), label="form")
        payload: Any = report
        if form != "object":
            payload = canonical_bytes(report)
            payload = payload if form == "bytes" else payload.decode("utf-8")
        desk = self.draw_desk(data)
        who = self.draw_submitter(data, report.station.compact)
        if data.draw(st.booleans(), label="bulk"):
            result = desk.submit_many([payload], principal=who)
            assert (len(result), result.count("duplicate"), result.errors) == (1, 1, [])
            receipt: Receipt | SipantauError = result.items[0]
        else:
            receipt = desk.submit(payload, principal=who)
        self.check_duplicate(receipt, report)

    @precondition(lambda self: self.free())
    @rule(data=st.data())
    def a_duplicate_within_one_batch(self, data: st.DataObject) -> None:
        """[r, r] (and maybe a correction of r) in one submit_many."""
        code = data.draw(st.sampled_from(self.free()), label="station")
        report, status = self.draw_report(data, code)
        batch: list[Any] = [report, report]
        fix: tuple[TallyReport, str] | None = None
        if data.draw(st.booleans(), label="with a correction"):
            fix = self.draw_report(data, code, amends=Amends(report.report_id, 1))
            batch.append(fix[0])
        result = self.draw_desk(data).submit_many(batch, principal=self.draw_submitter(data, code))
        assert len(result) == len(batch)
        assert result.errors == []
        assert len(result.receipts) == len(batch)
        first, again = result.items[:2]
        assert isinstance(first, Receipt) and isinstance(again, Receipt)
        self.record(report, status)
        self.check_receipt(first, report, status)
        assert (again.status, again.first_status) == ("duplicate", status)
        assert (again.report_id, again.version, again.chain_id) == (
            first.report_id,
            first.version,
            first.chain_id,
        )
        assert result.count("duplicate") == 1
        if fix is not None:
            corrected = result.items[2]
            assert isinstance(corrected, Receipt)
            self.record(*fix)
            self.check_receipt(corrected, fix[0], fix[1])

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def a_conflicting_resend(self, data: st.DataObject) -> None:
        """The same report id with other content: report.conflict, nothing changes."""
        report = data.draw(st.sampled_from(list(self.sent.values())), label="original")
        minutes = data.draw(st.integers(1, 90), label="minutes later")
        changed = attrs.evolve(report, observed_at=report.observed_at + timedelta(minutes=minutes))
        desk = self.draw_desk(data)
        who = self.draw_submitter(data, report.station.compact)
        if data.draw(st.booleans(), label="bulk"):
            result = desk.submit_many([changed], principal=who)
            [(i, error)] = result.errors
            assert i == 0 and isinstance(error, ConflictError)
        else:
            with pytest.raises(ConflictError) as info:
                desk.submit(changed, principal=who)
            error = info.value
        assert error.code == "report.conflict"

    @precondition(lambda self: self.chains)
    @rule(data=st.data())
    def correct_the_newest_version(self, data: st.DataObject) -> None:
        code = data.draw(st.sampled_from(self.reported()), label="station")
        versions = self.chains[code]
        amends = Amends(versions[-1].report_id, len(versions))
        report, status = self.draw_report(data, code, amends=amends)
        receipt = self.draw_desk(data).submit(report, principal=self.draw_submitter(data, code))
        self.record(report, status)
        self.check_receipt(receipt, report, status)

    @precondition(lambda self: any(len(v) >= 2 for v in self.chains.values()))
    @rule(data=st.data())
    def correct_a_stale_version(self, data: st.DataObject) -> None:
        """Amend an older version (by its id, or the head's id with an old version
        number): report.stale_version."""
        code = data.draw(
            st.sampled_from([c for c in self.reported() if len(self.chains[c]) >= 2]),
            label="station",
        )
        versions = self.chains[code]
        k = data.draw(st.integers(1, len(versions) - 1), label="stale version")
        target = versions[k - 1] if data.draw(st.booleans(), label="by its id") else versions[-1]
        report, _ = self.draw_report(data, code, amends=Amends(target.report_id, k))
        with pytest.raises(ConflictError) as info:
            self.draw_desk(data).submit(report, principal=self.draw_submitter(data, code))
        assert info.value.code == "report.stale_version"

    @precondition(lambda self: self.chains)
    @rule(data=st.data())
    def a_second_chain_for_a_station(self, data: st.DataObject) -> None:
        code = data.draw(st.sampled_from(self.reported()), label="station")
        report, _ = self.draw_report(data, code)
        with pytest.raises(ConflictError) as info:
            self.draw_desk(data).submit(report, principal=self.draw_submitter(data, code))
        assert info.value.code == "report.station_already_reported"

    @rule(data=st.data())
    def amend_a_report_the_desk_does_not_hold(self, data: st.DataObject) -> None:
        code = data.draw(st.sampled_from(CODES), label="station")
        report, _ = self.draw_report(data, code, amends=Amends(self.new_id(), 1))
        with pytest.raises(ConflictError) as info:
            self.draw_desk(data).submit(report, principal=SYSTEM)
        assert info.value.code == "report.amends_unknown"

    # -- decisions -----------------------------------------------------------------------

    @precondition(lambda self: self.heads_with("flagged"))
    @rule(data=st.data())
    def override_a_flagged_tally(self, data: st.DataObject) -> None:
        code = data.draw(st.sampled_from(self.heads_with("flagged")), label="station")
        head = self.head(code)
        who = data.draw(st.sampled_from([OFFICER, COORDINATOR]), label="officer")
        receipt = self.draw_desk(data).override(head.report_id, principal=who, reason="cek C1")
        self.status[head.report_id] = "overridden"
        self.set_counted(code, head)
        assert (receipt.report_id, receipt.status, receipt.version) == (
            head.report_id,
            "overridden",
            len(self.chains[code]),
        )
        assert receipt.counted

    @precondition(lambda self: self.heads_with("accepted", "flagged", "overridden"))
    @rule(data=st.data())
    def reject_a_tally(self, data: st.DataObject) -> None:
        code = data.draw(
            st.sampled_from(self.heads_with("accepted", "flagged", "overridden")), label="station"
        )
        head = self.head(code)
        receipt = self.draw_desk(data).reject(head.report_id, principal=OFFICER, reason="salah")
        self.status[head.report_id] = "rejected"
        self.set_counted(code, None)
        assert (receipt.report_id, receipt.status) == (head.report_id, "rejected")
        assert not receipt.counted

    @precondition(lambda self: self.chains)
    @rule(data=st.data())
    def a_refused_decision(self, data: st.DataObject) -> None:
        """Override of what is not flagged, any decision on an old version, rejecting
        twice: each a ConflictError with its code, nothing changes."""
        code = data.draw(st.sampled_from(self.reported()), label="station")
        versions = self.chains[code]
        head_status = self.status[versions[-1].report_id]
        choices: list[tuple[str, UUID, str]] = []
        if head_status != "flagged":
            choices.append(("override", versions[-1].report_id, "report.not_flagged"))
        if head_status == "rejected":
            choices.append(("reject", versions[-1].report_id, "report.already_rejected"))
        for old in versions[:-1]:
            choices.append(("override", old.report_id, "report.not_head"))
            choices.append(("reject", old.report_id, "report.not_head"))
        if not choices:
            return
        action, report_id, code_ = data.draw(st.sampled_from(choices), label="decision")
        desk = self.draw_desk(data)
        decide = desk.override if action == "override" else desk.reject
        with pytest.raises(ConflictError) as info:
            decide(report_id, principal=OFFICER, reason="coba")
        assert info.value.code == code_

    # -- two desks on the same storage ---------------------------------------------------

    @precondition(lambda self: self.free())
    @rule(data=st.data())
    def two_desks_take_turns_on_a_station(self, data: st.DataObject) -> None:
        """Desk A stores a tally; desk B's other first tally for the TPS conflicts and
        B's resend of A's is a duplicate."""
        code = data.draw(st.sampled_from(self.free()), label="station")
        a, status = self.draw_report(data, code)
        b, _ = self.draw_report(data, code)
        first, second = (
            self.desks if data.draw(st.booleans(), label="desk 0 first") else (self.desks[::-1])
        )
        receipt = first.submit(a, principal=monitor(code))
        self.record(a, status)
        self.check_receipt(receipt, a, status)
        with pytest.raises(ConflictError) as info:
            second.submit(b, principal=SYSTEM)
        assert info.value.code == "report.station_already_reported"
        self.check_duplicate(second.submit(a, principal=SYSTEM), a)

    @precondition(lambda self: self.free() or self.sent)
    @rule(data=st.data())
    def the_same_batch_from_two_threads(self, data: st.DataObject) -> None:
        """Both desks send one batch at the same moment: every new report is stored once,
        one desk gets its first status and the other a duplicate."""
        codes = data.draw(
            st.lists(st.sampled_from(self.free()), unique=True, max_size=3)
            if self.free()
            else st.just([]),
            label="stations",
        )
        new = [self.draw_report(data, code) for code in codes]
        old = data.draw(
            st.lists(st.sampled_from(list(self.sent.values())), max_size=2)
            if self.sent
            else st.just([]),
            label="resent",
        )
        batch = [r for r, _ in new] + old
        if not batch:
            return
        results = run_together(
            *(lambda d=d: d.submit_many(batch, principal=SYSTEM) for d in self.desks)
        )
        for r in results:
            unexpected(r)
            assert not isinstance(r, BaseException), r
            assert r.errors == []
        for i, (report, status) in enumerate(new):
            pair = [r.items[i] for r in results]
            assert sorted(x.status for x in pair) == sorted([status, "duplicate"]), pair
            firsts = [x for x in pair if x.status != "duplicate"]
            self.record(report, status)
            self.check_receipt(firsts[0], report, status)
            self.check_duplicate(next(x for x in pair if x.status == "duplicate"), report)
        if new:  # one batch is one transaction: one desk stored all of it
            winners = {j for j, r in enumerate(results) if r.items[0].status != "duplicate"}
            assert all(
                (r.items[i].status != "duplicate") == (j in winners)
                for j, r in enumerate(results)
                for i in range(len(new))
            )
        for i, report in enumerate(old, start=len(new)):
            for r in results:
                self.check_duplicate(r.items[i], report)

    @precondition(lambda self: self.free())
    @rule(data=st.data())
    def two_threads_race_for_a_station(self, data: st.DataObject) -> None:
        """Two different first tallies for one TPS at the same moment: one is stored,
        the other conflicts (report.station_already_reported); never both counted."""
        code = data.draw(st.sampled_from(self.free()), label="station")
        # Either may win: both get the same status, so that what Hypothesis draws next
        # does not depend on the race.
        breaks = self.draw_rule(data)
        a = self.draw_report(data, code, breaks=breaks)
        b = self.draw_report(data, code, breaks=breaks)
        results = run_together(
            lambda: self.desks[0].submit(a[0], principal=SYSTEM),
            lambda: self.desks[1].submit(b[0], principal=monitor(code)),
        )
        for r in results:
            unexpected(r)
        won = [i for i, r in enumerate(results) if isinstance(r, Receipt)]
        assert len(won) == 1, results
        lost = results[1 - won[0]]
        assert isinstance(lost, ConflictError) and lost.code == "report.station_already_reported"
        report, status = (a, b)[won[0]]
        self.record(report, status)
        self.check_receipt(results[won[0]], report, status)

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def counts_equal_the_model(self) -> None:
        """Every region's and every TPS's counts are the model's sums: nothing counted
        twice, nothing missing, stations_counted = the TPS that count. The two desks
        take turns to read (they share one store)."""
        self.reads += 1
        desk = self.desks[self.reads % 2]
        for region in REGIONS + (MORE_REGIONS if self.thorough else ()):
            got = counts_of(desk.tally(region, principal=SYSTEM))
            assert got == self.expected_counts(WITHIN[region]), region
        for code in CODES:
            t = desk.tally(code, principal=COORDINATOR)
            assert counts_of(t) == self.expected_counts([code]), code
            assert (t.stations_expected, t.registered_expected) == (1, REGISTERED[code])
            assert t.stations_counted == (code in self.counted)

    @invariant()
    def nothing_stored_is_lost(self) -> None:
        """Every stored version is there once, with its content, chain, version and the
        status the model says; the heads are the newest versions."""
        desk = self.desks[(self.reads + 1) % 2]
        rows = desk.reports("16.73", principal=COORDINATOR, heads_only=False)
        ids = [s.report_id for s, _ in rows]
        assert len(ids) == len(set(ids)), "a report is stored twice"
        assert {s.report_id: s.status.value for s, _ in rows} == self.status
        for stored, report in rows:
            assert report == self.sent[stored.report_id]
            versions = self.chains[stored.station]
            assert stored.chain_id == versions[0].report_id
            assert stored.version == versions.index(report) + 1
        heads = desk.reports("16.73", principal=SYSTEM, kind="tally")
        assert sorted(s.report_id for s, _ in heads) == sorted(
            v[-1].report_id for v in self.chains.values()
        )


# ---------------------------------------------------------------------------------------
# One test per backend
# ---------------------------------------------------------------------------------------

HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]


def run_machine(
    new_store: Callable[[], Store], *, examples: int, steps: int, thorough: bool
) -> None:
    class Machine(DeskMachine):
        pass

    Machine.new_store = staticmethod(new_store)  # type: ignore[method-assign]
    Machine.thorough = thorough
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=HEALTH,
        ),
    )


#: (max_examples, stateful_step_count) per backend: the whole file stays well under a
#: minute on SQLite and PostgreSQL; the memory backend runs more.
BUDGET = {"memory": (100, 40), "sqlite": (30, 20), "postgresql": (40, 25)}


@pytest.mark.parametrize(
    "backend", ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_desk_state_machine(backend: str, tmp_path: Path) -> None:
    stores = {
        "memory": memory_store,
        "sqlite": sqlite_stores(tmp_path),
        "postgresql": postgres_store,
    }
    examples, steps = BUDGET[backend]
    run_machine(stores[backend], examples=examples, steps=steps, thorough=backend == "memory")

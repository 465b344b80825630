"""The progress count is kept by each desk while its region's counter of changes stays:
a desk never serves a count that a fresh read would not give, whatever another desk on
the same storage changed (a tally counted, corrected, overridden, rejected, or votes
moved between two TPS so that every sum stays the same). On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest

from pg import pg_url_factory  # noqa: F401 - fixture
from sipantau_core.deployment import Deployment
from sipantau_core.desk import Desk
from sipantau_core.domain.reports import Amends
from sipantau_core.quickcount import ProgressCount
from web_helpers import LUBUKLINGGAU, NOW, SYSTEM, monitor_of, tally


@pytest.fixture(params=["sqlite", "postgresql"])
def two_desks(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pg_url_factory: Callable[[], str],  # noqa: F811
) -> Iterator[tuple[Desk, Desk, Callable[[], Desk]]]:
    url = f"sqlite:///{tmp_path / 'd.db'}" if request.param == "sqlite" else pg_url_factory()
    dep = Deployment.load(LUBUKLINGGAU)
    a = Desk.open(dep, storage=url, clock=lambda: NOW)
    b = Desk.open(dep, storage=url, clock=lambda: NOW)
    fresh: list[Desk] = []

    def new() -> Desk:
        fresh.append(Desk.open(dep, storage=url, clock=lambda: NOW))
        return fresh[-1]

    yield a, b, new
    for desk in (a, b, *fresh):
        desk.close()


def _plain(count: ProgressCount[int]) -> tuple[Any, ...]:
    """A progress count as plain values (its tables are numpy arrays)."""
    tables = {
        level: (t.codes.tolist(), t.tps_expected.tolist(), t.counted.tolist())
        for level, t in count.tables.items()
    }
    fields = tuple(
        (f.name, getattr(count, f.name)) for f in attrs.fields(type(count)) if f.name != "tables"
    )
    return (fields, tables)


def _same(a: Desk, new: Callable[[], Desk]) -> None:
    for region in ("16.73", "16.73.01"):
        kept = a.progress(region, principal=SYSTEM)
        read = new().progress(region, principal=SYSTEM)
        assert _plain(kept) == _plain(read), region
        many = a.progress_many(["16.73", "16.73.01"], principal=SYSTEM)[region]
        assert _plain(many) == _plain(read), region


def test_a_kept_count_is_never_stale(two_desks: tuple[Desk, Desk, Callable[[], Desk]]) -> None:
    a, b, new = two_desks
    by_village: dict[str, str] = {}
    for s in sorted(a.deployment.stations_in("16.73.01"), key=lambda s: s.code.compact):
        by_village.setdefault(s.code.compact[:10], s.code.compact)
    stations = sorted(by_village.values())[:6]  # one TPS of each of six villages
    assert len(stations) == 6
    first = {}
    for i, code in enumerate(stations[:4]):
        first[code] = tally(b, code, (100 + i, 80))
        b.submit(first[code], principal=monitor_of(b, code))
    _same(a, new)
    # another desk counts one more
    b.submit(tally(b, stations[4], (50, 60)), principal=monitor_of(b, stations[4]))
    _same(a, new)
    # a correction
    code = stations[0]
    fixed = attrs.evolve(tally(b, code, (111, 70)), amends=Amends(first[code].report_id, 1))
    b.submit(fixed, principal=monitor_of(b, code))
    _same(a, new)
    # a flagged tally, overridden; then rejected
    bad = tally(b, stations[5], (40, 40), total=500)
    receipt = b.submit(bad, principal=monitor_of(b, stations[5]))
    assert receipt.status == "flagged"
    _same(a, new)
    b.override(bad.report_id, principal=SYSTEM, reason="dicek ke C1")
    _same(a, new)
    b.reject(bad.report_id, principal=SYSTEM, reason="salah")
    _same(a, new)
    # votes moved between two TPS in one batch: every sum of the region stays the same
    one, two = stations[1], stations[2]
    before = a.progress("16.73", principal=SYSTEM)
    swap = [
        attrs.evolve(tally(b, one, (102, 79)), amends=Amends(first[one].report_id, 1)),
        attrs.evolve(tally(b, two, (101, 81)), amends=Amends(first[two].report_id, 1)),
    ]
    b.submit_many(swap, principal=[monitor_of(b, one), monitor_of(b, two)])
    after = a.progress("16.73", principal=SYSTEM)
    assert after.overall.votes == before.overall.votes
    assert _plain(after) != _plain(before)  # the TPS moved, the sums did not
    _same(a, new)


def test_a_kept_count_serves_no_one_it_should_not(
    two_desks: tuple[Desk, Desk, Callable[[], Desk]],
) -> None:
    """The access guard and the audit entry come before the memo: a refused reader is
    refused, a reader is on record, however often the count is read."""
    from sipantau_core.access import Principal, Role
    from sipantau_core.errors import PermissionDenied

    a, b, _ = two_desks
    code = sorted(s.code.compact for s in a.deployment.stations_in("16.73.01"))[0]
    b.submit(tally(b, code, (10, 20)), principal=monitor_of(b, code))
    a.progress("16.73", principal=SYSTEM)
    viewer = Principal(id="walikota", role=Role.VIEWER, scope="16.73")
    with pytest.raises(PermissionDenied):
        a.progress("16.73", principal=viewer)
    officer = Principal(id=f"petugas-{uuid.uuid4().hex[:6]}", role=Role.OFFICER, scope="16.73.01")
    for _ in range(3):
        a.progress("16.73.01", principal=officer)
    with a.storage.transaction() as tx:
        reads = [e for e in tx.audit() if e.principal == officer.id]
    assert len(reads) == 3


def test_after_a_change_only_its_district_is_read_again(
    two_desks: tuple[Desk, Desk, Callable[[], Desk]],
) -> None:
    a, b, new = two_desks
    by_district: dict[str, str] = {}
    for s in sorted(a.deployment.stations_in("16.73"), key=lambda s: s.code.compact):
        by_district.setdefault(s.code.compact[:6], s.code.compact)
    codes = sorted(by_district.values())[:3]
    for code in codes:
        b.submit(tally(b, code, (10, 20)), principal=monitor_of(b, code))
    a.progress("16.73", principal=SYSTEM)
    read: list[list[tuple[str, str]]] = []
    real = a.storage.transaction

    @contextmanager
    def spying() -> Iterator[Any]:
        with real() as tx:
            original = tx.station_states

            def station_states(keys: Any, *, lock: bool = False) -> Any:
                keys = list(keys)
                read.append(keys)
                return original(keys, lock=lock)

            tx.station_states = station_states
            yield tx

    a.storage.transaction = spying  # type: ignore[method-assign]
    a.progress("16.73", principal=SYSTEM)
    assert read == []  # nothing changed: nothing read
    later = sorted(s.code.compact for s in a.deployment.stations_in(codes[1][:6]))[-1]
    b.submit(tally(b, later, (30, 40)), principal=monitor_of(b, later))
    a.progress("16.73", principal=SYSTEM)
    assert len(read) == 1
    assert {station[:6] for _, station in read[0]} == {codes[1][:6]}
    a.storage.transaction = real  # type: ignore[method-assign]
    _same(a, new)


def test_the_count_is_progress_count_of_the_counted_tallies(
    two_desks: tuple[Desk, Desk, Callable[[], Desk]],
) -> None:
    """What the desk computes (frame arrays kept, results by district) is what
    ``progress_count`` says of the counted tallies, projection included."""
    import random

    from sipantau_core.quickcount import TpsResult, progress_count

    a, b, _ = two_desks
    rng = random.Random(5)
    stations = sorted(a.deployment.stations_in("16.73"), key=lambda s: s.code.compact)
    chosen = rng.sample(stations, 220)
    sent = [tally(b, s.code.compact, (rng.randint(40, 160), rng.randint(40, 160))) for s in chosen]
    b.submit_many(sent, principal=[monitor_of(b, str(r.station)) for r in sent])
    for region in ("16.73", "16.73.02"):
        got = a.progress(region, principal=SYSTEM)
        frame = {s.code.compact: s.registered_voters for s in a.deployment.stations_in(region)}
        reported = [
            TpsResult(str(r.station.compact), dict(r.votes), r.invalid, r.total)
            for r in sent
            if r.station.compact in frame
        ]
        want = progress_count(reported, frame)
        assert _plain(got) == _plain(want), region
        if region == "16.73":
            assert got.projection is not None

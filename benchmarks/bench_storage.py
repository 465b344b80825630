"""Benchmark of the SQL storage, run by hand (never by the tests):

    .venv/bin/python benchmarks/bench_storage.py [--pg URL] [--sqlite-dir DIR]
        [--chunk 5000] [--one-by-one 3000] [--tally-calls 200] [--profile] [--repeat N]

The real DKI Jakarta tallies of the 2024 presidential election
(``/work/shared/data/dki_pilpres2024_sirekap.csv``, 30,766 rows): every row with a
13-digit TPS code is a station of a province-31 deployment (``capacity=None``, one monitor
per TPS, a 3-pair contest ``presiden``); every row with the three pairs' votes and the
valid / invalid / total cells filled is a tally report (with its voted section when the
``pengguna_*`` cells are filled). They go in

* through ``desk.submit_many`` (the bulk path) in chunks of ``--chunk``, into PostgreSQL
  (a fresh schema, dropped afterwards) and into an SQLite file;
* through ``desk.submit`` one by one, for the first ``--one-by-one`` reports;

next to two baselines measured in the same run on the same rows:

* PostgreSQL ``COPY`` (psycopg ``cursor.copy``) of the stored rows into a plain table, in
  text form (``write_row``: psycopg formats each value as text, the server parses it) and
  in binary form (``set_types``, ``FORMAT BINARY``: the fastest way in, and what the SQL
  adapter uses);
* a plain one-SQLModel-object-per-row insert (``session.add`` per row, one commit per
  ``--chunk`` rows) into a plain table, on each backend;
* the database's own floor for this load: ``COPY`` (binary) of the rows the bulk path
  wrote for these reports before #13 (the reports, one audit entry each, the TPS rows),
  built beforehand, into a fresh schema of the desk's own tables, with their keys,
  constraints and indexes. The report and TPS rows are recorded from a bulk run (the
  report rows as written now, with their leaf columns); since #13 a batch writes one
  audit entry instead of one per report, so the per-report entries are made as the bulk
  path wrote them before (same columns, one per report, numbered and linked) and COPYed
  too: the floor keeps its definition from before #13, so that the ratio shows what
  recording less per report gained. The bulk path's ratio to it says what share of its
  time goes to the database, and what to the desk's own work.

Then ``desk.tally("31")`` (median of ``--tally-calls``) on the loaded desk. Last, the
floor, the bulk path and the workers once more with their CPU a report (this process, the
forked workers, the PostgreSQL server's processes; :mod:`cpu_budget`), and the most
bulk / floor that this machine's cores allow each way. Prints rates and ratios; asserts
nothing. ``--profile`` prints a cProfile of one bulk chunk.
``--repeat N`` then measures the floor, the bulk path and the workers N times more,
interleaved, and prints the best, median and worst (on a machine shared with other
work, compare these).
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import hashlib
import io
import pstats
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, create_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu_budget

from sipantau_adapters.storage.sql import SQLStorage
from sipantau_adapters.storage.sql import bulk as sql_bulk
from sipantau_adapters.storage.sql import storage as sql_storage
from sipantau_core import (
    Candidate,
    Contest,
    Deployment,
    PayloadError,
    PollingStation,
    RegionCode,
    TallyReport,
    TimeZone,
    parse_report,
)
from sipantau_core.access import Principal, Role
from sipantau_core.desk import Desk
from sipantau_core.domain import Monitor
from sipantau_core.wire import canonical_bytes

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CSV = DATA / "dki_pilpres2024_sirekap.csv"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SYSTEM = Principal(id="bench", role=Role.SYSTEM)
OBSERVED_AT = datetime(2024, 2, 14, 17, 0, tzinfo=TimeZone.WIB.tzinfo)
VOTED = ("pengguna_dpt", "pengguna_dptb", "pengguna_dpk", "pengguna_total")
TOTALS = ("suara_sah", "suara_tidak_sah", "suara_total")


# ---------------------------------------------------------------------------------------
# The data
# ---------------------------------------------------------------------------------------


def load() -> tuple[Deployment, list[TallyReport], dict[str, int]]:
    with CSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    facts = {"rows": len(rows)}
    stations: dict[str, PollingStation] = {}
    for row in rows:
        code = row["kode_tps"]
        if len(code) == 13 and code.isdigit() and code not in stations:
            dpt = int(row["dpt"]) if row["dpt"] else 0
            stations[code] = PollingStation(code=code, registered_voters=dpt, capacity=None)
    facts["stations"] = len(stations)
    monitors = [Monitor(id=f"DKI-{code}", station=code) for code in stations]
    contest = Contest(id="presiden", candidates=[Candidate(n, f"Paslon {n}") for n in (1, 2, 3)])
    dep = Deployment(
        id="dki-2024",
        name="DKI Jakarta, pilpres 2024",
        region=RegionCode("31"),
        election_day=date(2024, 2, 14),
        stations={s.code: s for s in stations.values()},
        contests={contest.id: contest},
        monitors={m.id: m for m in monitors},
    )
    reports: list[TallyReport] = []
    refused = 0
    for row in rows:
        if not (
            row["kode_tps"] in stations
            and all(row[f"paslon_{i}"] for i in (1, 2, 3))
            and all(row[c] for c in TOTALS)
        ):
            continue
        payload: dict[str, Any] = {
            "schema": "sipantau.tally/1",
            "report_id": str(uuid.uuid5(uuid.NAMESPACE_URL, row["kode_tps"])),
            "monitor": f"DKI-{row['kode_tps']}",
            "station": row["kode_tps"],
            "contest": "presiden",
            "observed_at": OBSERVED_AT.isoformat(),
            "votes": {str(i): int(row[f"paslon_{i}"]) for i in (1, 2, 3)},
            "valid": int(row["suara_sah"]),
            "invalid": int(row["suara_tidak_sah"]),
            "total": int(row["suara_total"]),
        }
        if all(row[c] for c in VOTED):
            dpt, dptb, dpk, total = (int(row[c]) for c in VOTED)
            payload["voted"] = {"dpt": dpt, "dptb": dptb, "dpk": dpk, "total": total}
        try:
            report = parse_report(payload)
        except PayloadError:
            refused += 1  # a count above 10,000: the wire format refuses it
            continue
        assert isinstance(report, TallyReport)
        reports.append(report)
    facts["tallies"] = len(reports)
    facts["refused_payloads"] = refused
    return dep, reports, facts


def stored_rows(reports: Sequence[TallyReport]) -> list[tuple[Any, ...]]:
    """The rows the desk stores for ``reports`` (for the baselines)."""
    now = datetime.now(UTC)
    out = []
    for r in reports:
        raw = canonical_bytes(r)
        out.append(
            (
                r.report_id, r.report_id, 1, "tally", r.station.compact, r.contest, r.monitor,
                "penghitungan", r.observed_at, now, hashlib.sha256(raw).hexdigest(),
                raw.decode(), "accepted", "[]", SYSTEM.id,
            )
        )  # fmt: skip
    return out


COLUMNS = [
    "report_id",
    "chain_id",
    "version",
    "kind",
    "station",
    "contest",
    "monitor",
    "stage",
    "observed_at",
    "received_at",
    "digest",
    "payload",
    "status",
    "verdict",
    "submitted_by",
]


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def libpq(url: str) -> str:
    return url.split("?", 1)[0]


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A fresh schema (dropped afterwards); yields the URL that selects it."""
    name = "sipantau_bench_" + secrets.token_hex(4)
    try:
        yield f"{url}{'&' if '?' in url else '?'}schema={name}"
    finally:
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def line(label: str, n: int, seconds: float, extra: str = "") -> float:
    rate = n / seconds
    print(f"  {label:<58}{n:>7,} in {seconds:7.2f} s = {rate:>9,.0f} /s {extra}")
    return rate


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------

DDL = (
    "CREATE TABLE {t} (report_id uuid, chain_id uuid, version int, kind text, station text, "
    "contest text, monitor text, stage text, observed_at timestamptz, received_at timestamptz, "
    "digest text, payload text, status text, verdict text, submitted_by text)"
)


COPY_TYPES = [
    "uuid", "uuid", "integer", "text", "text", "text", "text", "text",
    "timestamptz", "timestamptz", "text", "text", "text", "text", "text",
]  # fmt: skip


def copy_baseline(url: str, rows: list[tuple[Any, ...]], binary: bool = False) -> float:
    """COPY of the rows into a plain table (no key, no index), in one transaction: text
    (``write_row``, psycopg formats every value) or binary (``set_types``: no text)."""
    with pg_schema(url) as schema_url, psycopg.connect(libpq(url)) as conn:
        schema = schema_url.rsplit("=", 1)[1]
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(DDL.format(t=f'"{schema}".plain'))
        conn.commit()

        def run() -> None:
            with conn.cursor() as cur:
                cols = ", ".join(COLUMNS)
                fmt = " (FORMAT BINARY)" if binary else ""
                with cur.copy(f'COPY "{schema}".plain ({cols}) FROM STDIN{fmt}') as copy:
                    if binary:
                        copy.set_types(COPY_TYPES)
                    for row in rows:
                        copy.write_row(row)
            conn.commit()

        return timed(run)


class PlainReport(SQLModel, table=True):
    """The baseline's plain table: one SQLModel object per row."""

    __tablename__ = "plain_reports"

    report_id: uuid.UUID = Field(primary_key=True)
    chain_id: uuid.UUID
    version: int
    kind: str
    station: str
    contest: str | None
    monitor: str
    stage: str | None
    observed_at: datetime
    received_at: datetime
    digest: str
    payload: str
    status: str
    verdict: str
    submitted_by: str


Recorded = list[tuple[tuple[str, Sequence[Any]], list[Sequence[Any]]]]


@contextmanager
def recording_copies() -> Iterator[Recorded]:
    """Record every ``COPY`` into the desk's tables (reports, audit log, TPS rows) that
    the SQL adapter makes (statement, types, rows) while it runs as usual."""
    recorded: Recorded = []
    real = sql_storage._SQLTx._copy
    kept = {sql_bulk._COPY_REPORTS[0], sql_bulk._COPY_AUDIT[0], sql_bulk._COPY_STATIONS[0]}

    def record(self: Any, copy_in: Any, rows: Any) -> None:
        rows = list(rows)
        if copy_in[0] in kept:  # not the temporary tables of lookups and upserts
            recorded.append((copy_in, rows))
        real(self, copy_in, rows)

    sql_storage._SQLTx._copy = record  # type: ignore[method-assign]
    try:
        yield recorded
    finally:
        sql_storage._SQLTx._copy = real  # type: ignore[method-assign]


def per_report_entries(recorded: Recorded) -> Recorded:
    """One audit entry per recorded report row, as the bulk path wrote them before #13
    (``submit``, ``report:ID``, its outcome, about its TPS, numbered and linked); none
    when the run COPYed audit entries itself (a release before #13)."""
    if any(copy_in == sql_bulk._COPY_AUDIT for copy_in, _ in recorded):
        return []
    reports = [row for copy_in, rows in recorded if copy_in == sql_bulk._COPY_REPORTS
               for row in rows]  # fmt: skip
    link = hashlib.sha256(b"floor").hexdigest()
    entries = []
    for seq, row in enumerate(reports, start=1):
        report_id, station, received_at, by, role, status = (
            row[0], row[4], row[9], row[14], row[15], row[16]
        )  # fmt: skip
        entries.append(
            (seq, received_at, by, role, "submit", f"report:{report_id}", status, "", station,
             link)
        )  # fmt: skip
    return [(sql_bulk._COPY_AUDIT, entries)]


def desk_rows_baseline(
    url: str,
    recorded: Recorded,
    meter: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> float:
    """``COPY`` (binary) of the recorded rows into a fresh schema of the desk's tables, in
    one transaction, through the adapter's own connection and ``COPY`` code; seconds from
    the first ``COPY`` to the commit, the time ``meter()`` sees too."""
    with pg_schema(url) as schema_url:
        storage = SQLStorage(schema_url)  # migrated: the desk's tables, keys and indexes
        try:
            with ExitStack() as window:
                with storage.transaction() as tx:
                    assert isinstance(tx, sql_storage._SQLTx)
                    window.enter_context(meter())
                    t0 = time.perf_counter()
                    for copy_in, rows in recorded:
                        tx._copy(copy_in, rows)
                return time.perf_counter() - t0  # and the commit
        finally:
            storage.close()


def orm_baseline(engine: sa.Engine, rows: Sequence[tuple[Any, ...]], chunk: int) -> float:
    """``session.add`` per row, one commit per ``chunk`` rows (``chunk=1``: per row)."""
    table = SQLModel.metadata.tables["plain_reports"]
    SQLModel.metadata.drop_all(engine, tables=[table])
    SQLModel.metadata.create_all(engine, tables=[table])

    def run() -> None:
        for part in chunks(rows, chunk):
            with Session(engine) as session:
                for row in part:
                    session.add(PlainReport(**dict(zip(COLUMNS, row, strict=True))))
                session.commit()

    return timed(run)


# ---------------------------------------------------------------------------------------
# The desk
# ---------------------------------------------------------------------------------------


def bulk(desk: Desk, reports: Sequence[TallyReport], chunk: int, workers: int = 1) -> float:
    def run() -> None:
        for part in chunks(reports, chunk):
            result = desk.submit_many(part, principal=SYSTEM, workers=workers)
            assert not result.errors, result.errors[:3]

    return timed(run)


def one_by_one(desk: Desk, reports: Sequence[TallyReport]) -> float:
    def run() -> None:
        for r in reports:
            desk.submit(r, principal=SYSTEM)

    return timed(run)


def tally_median(desk: Desk, calls: int) -> tuple[float, int]:
    times = []
    total = 0
    for _ in range(calls):
        t0 = time.perf_counter()
        total = desk.tally("31", principal=SYSTEM).total
        times.append(time.perf_counter() - t0)
    return statistics.median(times), total


def essential_work(dep: Deployment, reports: Sequence[TallyReport]) -> dict[str, float]:
    """Seconds a report (best of 3) of the work that no bulk path can skip, in this
    process: the canonical bytes, their SHA-256, the tally rules and the report's leaf
    in the audit log's tree (of the rows a memory desk stored). The floor above already
    holds the formatting of the rows for ``COPY``; the rest of the bulk path's time is
    its bookkeeping (lookups, plans, counters, receipts, events) and its reads."""
    from sipantau_core.audit_leaves import report_leaf
    from sipantau_core.ports import ReportFilter
    from sipantau_core.rules import default_registry

    registry = default_registry()
    stations = {code.compact: station for code, station in dep.stations.items()}
    contest = dep.contests["presiden"]
    desk = Desk.open(dep, storage="memory://")
    bulk(desk, reports, len(reports))
    with desk.storage.transaction() as tx:
        stored = list(tx.reports(ReportFilter()))
    raws = [canonical_bytes(r) for r in reports]
    parts: dict[str, Callable[[], Any]] = {
        "canonical bytes": lambda: [canonical_bytes(r) for r in reports],
        "SHA-256": lambda: [hashlib.sha256(raw).hexdigest() for raw in raws],
        "rules": lambda: [
            registry.check(r, station=stations[r.station.compact], contest=contest) for r in reports
        ],
        "leaf": lambda: [report_leaf(r, i) for i, r in enumerate(stored)],
    }
    return {name: min(timed(fn) for _ in range(3)) / len(reports) for name, fn in parts.items()}


def profile_chunk(desk: Desk, reports: Sequence[TallyReport]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    desk.submit_many(reports, principal=SYSTEM)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(35)
    print(out.getvalue())


def run_backend(
    name: str,
    url: str,
    dep: Deployment,
    reports: list[TallyReport],
    args: argparse.Namespace,
) -> dict[str, float]:
    out: dict[str, float] = {}
    desk = Desk.open(dep, storage=SQLStorage(url))
    try:
        seconds = bulk(desk, reports, args.chunk)
        out["bulk"] = line(
            f"{name}: desk.submit_many, chunks of {args.chunk:,}", len(reports), seconds
        )
        median, total = tally_median(desk, args.tally_calls)
        out["tally_ms"] = median * 1e3
        print(
            f"  {name}: desk.tally('31') median of {args.tally_calls}: {median * 1e3:.2f} ms "
            f"(total {total:,} votes)"
        )
    finally:
        desk.close()
    return out


def run_workers(
    name: str, url: str, dep: Deployment, reports: list[TallyReport], args: argparse.Namespace
) -> float:
    """The parallel bulk path: every report in one call, shared out among forked workers."""
    desk = Desk.open(dep, storage=SQLStorage(url))
    try:
        seconds = bulk(desk, reports, len(reports), args.workers)
        rate = line(
            f"{name}: desk.submit_many, all at once, workers={args.workers}",
            len(reports),
            seconds,
        )
        assert desk.audit.verify().ok
        return rate
    finally:
        desk.close()


def run_one_by_one(name: str, url: str, dep: Deployment, reports: list[TallyReport]) -> float:
    desk = Desk.open(dep, storage=SQLStorage(url))
    try:
        return line(f"{name}: desk.submit one by one", len(reports), one_by_one(desk, reports))
    finally:
        desk.close()


def repeated(
    args: argparse.Namespace, dep: Deployment, reports: list[TallyReport], recorded: Recorded
) -> None:
    """The floor, the bulk path and the workers ``--repeat`` times, interleaved (each
    into a fresh schema), so that the three see the same load; best and median."""
    floor: list[float] = []
    one: list[float] = []
    many: list[float] = []
    for _ in range(args.repeat):
        floor.append(desk_rows_baseline(args.pg, recorded))
        for times, workers, chunk in ((one, 1, args.chunk), (many, args.workers, len(reports))):
            with pg_schema(args.pg) as url:
                desk = Desk.open(dep, storage=SQLStorage(url))
                try:
                    times.append(bulk(desk, reports, chunk, workers))
                finally:
                    desk.close()
    n = len(reports)
    print(f"\nPostgreSQL, {args.repeat} times interleaved (reports/s: best, median, worst)")
    for label, times in (
        ("the floor: COPY of the desk's rows", floor),
        (f"desk.submit_many, chunks of {args.chunk:,}", one),
        (f"desk.submit_many, workers={args.workers}", many),
    ):
        rates = sorted(n / t for t in times)
        print(f"  {label:<44}{rates[-1]:>9,.0f}{statistics.median(rates):>9,.0f}{rates[0]:>9,.0f}")
    for label, times in (("bulk / floor", one), (f"workers={args.workers} / floor", many)):
        ratios = sorted(f / t for f, t in zip(floor, times, strict=True))
        print(
            f"  {label:<44}best {min(floor) / min(times):.3f}, per round: median "
            f"{statistics.median(ratios):.3f}, range {ratios[0]:.3f}-{ratios[-1]:.3f}"
        )


def cpu_section(
    args: argparse.Namespace, dep: Deployment, reports: list[TallyReport], recorded: Recorded
) -> None:
    """The floor, the bulk path and the workers once more, with their CPU (this process,
    the workers, PostgreSQL): what the machine's cores allow (:mod:`cpu_budget`)."""
    rows: list[tuple[str, cpu_budget.Cpu]] = []
    meters: list[cpu_budget.Cpu] = []

    @contextmanager
    def meter() -> Iterator[None]:
        with cpu_budget.measured() as used:
            yield
        meters.append(used)

    desk_rows_baseline(args.pg, recorded, meter)
    floor = meters[0]
    rows.append(("the floor: COPY of the desk's rows", floor))
    for label, workers, chunk in (
        (f"desk.submit_many, chunks of {args.chunk:,}", 1, args.chunk),
        (f"desk.submit_many, workers={args.workers}", args.workers, len(reports)),
    ):
        with pg_schema(args.pg) as url:
            desk = Desk.open(dep, storage=SQLStorage(url))
            try:
                with cpu_budget.measured() as used:
                    bulk(desk, reports, chunk, workers)
            finally:
                desk.close()
        rows.append((label, used))
    cpu_budget.table(rows, len(reports), floor.wall)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=PG_URL)
    parser.add_argument("--sqlite-dir", default=None)
    parser.add_argument("--chunk", type=int, default=5000)
    parser.add_argument("--one-by-one", type=int, default=3000)
    parser.add_argument("--tally-calls", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--workers", type=int, default=2, help="the parallel bulk path")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="then measure the floor, the bulk path and the workers N more times, "
        "interleaved, and print the best and the median of each ratio (a shared machine)",
    )
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    dep, reports, facts = load()
    print(
        f"DKI 2024: {facts['rows']:,} rows, {facts['stations']:,} TPS in the deployment, "
        f"{facts['tallies']:,} tally reports ({facts['refused_payloads']} refused by the wire "
        f"format); loaded in {time.perf_counter() - t0:.1f} s"
    )
    rows = stored_rows(reports)
    few = reports[: args.one_by_one]

    print("\nThe desk alone (memory://, no database): its own ceiling")
    desk = Desk.open(dep, storage="memory://")
    memory_rate = line(
        f"memory: desk.submit_many, chunks of {args.chunk:,}",
        len(reports),
        bulk(desk, reports, args.chunk),
    )
    desk = Desk.open(dep, storage="memory://")
    line("memory: desk.submit one by one", len(few), one_by_one(desk, few))

    print("\nPostgreSQL")
    copy_rate = line(
        "baseline: COPY (text) into a plain table", len(rows), copy_baseline(args.pg, rows)
    )
    binary_rate = line(
        "baseline: COPY (binary) into a plain table",
        len(rows),
        copy_baseline(args.pg, rows, binary=True),
    )
    with pg_schema(args.pg) as url:
        schema = url.rsplit("=", 1)[1]
        engine = create_engine(
            libpq(url).replace("postgresql://", "postgresql+psycopg://"),
            connect_args={"options": f"-c search_path={schema}"},
        )
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        orm_rate = line(
            f"baseline: SQLModel object per row, commit per {args.chunk:,}",
            len(rows),
            orm_baseline(engine, rows, args.chunk),
        )
        orm_one = line(
            "baseline: SQLModel object per row, commit per row",
            len(few),
            orm_baseline(engine, rows[: len(few)], 1),
        )
        engine.dispose()
    with pg_schema(args.pg) as url, recording_copies() as recorded:
        desk = Desk.open(dep, storage=SQLStorage(url))  # a run to record what it COPYs
        bulk(desk, reports, args.chunk)
        desk.close()
    recorded = recorded + per_report_entries(recorded)
    floor_rate = line(
        "baseline: COPY (binary) of the desk's rows into its tables",
        len(reports),
        desk_rows_baseline(args.pg, recorded),
        f"({sum(len(rows) for _, rows in recorded):,} rows)",
    )
    with pg_schema(args.pg) as url:
        pg = run_backend("PostgreSQL", url, dep, reports, args)
    if args.workers > 1:
        with pg_schema(args.pg) as url:
            pg["workers"] = run_workers("PostgreSQL", url, dep, reports, args)
    with pg_schema(args.pg) as url:
        pg_one = run_one_by_one("PostgreSQL", url, dep, few)
    print(
        f"  ratios: bulk/COPY text = {pg['bulk'] / copy_rate:.3f}, bulk/COPY binary = "
        f"{pg['bulk'] / binary_rate:.3f} (target >= 0.167; the desk alone reaches "
        f"{memory_rate / copy_rate:.3f} / {memory_rate / binary_rate:.3f}), "
        f"bulk/ORM = {pg['bulk'] / orm_rate:.2f}, "
        f"one-by-one/ORM per-row commit = {pg_one / orm_one:.2f}, "
        f"bulk/one-by-one = {pg['bulk'] / pg_one:.1f}"
    )
    print(
        f"  the database's floor: bulk / COPY of the desk's rows = {pg['bulk'] / floor_rate:.3f}; "
        f"that COPY / COPY binary = {floor_rate / binary_rate:.3f}, "
        f"/ COPY text = {floor_rate / copy_rate:.3f}"
    )
    essential = essential_work(dep, reports)
    floor_s, bulk_s, own_s = 1 / floor_rate, 1 / pg["bulk"], sum(essential.values())
    print(
        "  a report's time: the floor "
        f"{floor_s * 1e6:.1f} µs; the desk's essential work {own_s * 1e6:.1f} µs ("
        + ", ".join(f"{name} {t * 1e6:.1f}" for name, t in essential.items())
        + f"); the bulk path {bulk_s * 1e6:.1f} µs, so {(bulk_s - floor_s - own_s) * 1e6:.1f} "
        "µs of bookkeeping and reads. One process doing only the essential work, not "
        f"overlapped with the database, would reach {floor_s / (floor_s + own_s):.3f}"
    )
    if "workers" in pg:
        print(
            f"  with workers: /COPY text = {pg['workers'] / copy_rate:.3f}, /COPY binary = "
            f"{pg['workers'] / binary_rate:.3f}, /COPY of the desk's rows = "
            f"{pg['workers'] / floor_rate:.3f}, /bulk in one process = "
            f"{pg['workers'] / pg['bulk']:.2f}"
        )

    if args.repeat > 1:
        repeated(args, dep, reports, recorded)
    cpu_section(args, dep, reports, recorded)

    if not args.skip_sqlite:
        print("\nSQLite")
        with tempfile.TemporaryDirectory(dir=args.sqlite_dir) as tmp:
            engine = create_engine(f"sqlite:///{tmp}/plain.db")
            sq_orm = line(
                f"baseline: SQLModel object per row, commit per {args.chunk:,}",
                len(rows),
                orm_baseline(engine, rows, args.chunk),
            )
            sq_orm_one = line(
                "baseline: SQLModel object per row, commit per row",
                len(few),
                orm_baseline(engine, rows[: len(few)], 1),
            )
            engine.dispose()
            sq = run_backend("SQLite", f"sqlite:///{tmp}/bulk.db", dep, reports, args)
            sq_one = run_one_by_one("SQLite", f"sqlite:///{tmp}/one.db", dep, few)
            print(
                f"  ratios: bulk/PostgreSQL COPY text = {sq['bulk'] / copy_rate:.3f}, binary = "
                f"{sq['bulk'] / binary_rate:.3f}, "
                f"bulk/ORM = {sq['bulk'] / sq_orm:.2f}, "
                f"one-by-one/ORM per-row commit = {sq_one / sq_orm_one:.2f}, "
                f"bulk/one-by-one = {sq['bulk'] / sq_one:.1f}"
            )

    if args.profile:
        print("\nProfile of one bulk chunk into PostgreSQL")
        with pg_schema(args.pg) as url:
            desk = Desk.open(dep, storage=SQLStorage(url))
            profile_chunk(desk, reports[: args.chunk])
            desk.close()


if __name__ == "__main__":
    main()

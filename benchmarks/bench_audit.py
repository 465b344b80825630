"""The audit log of a national desk, run by hand (never by the tests):

    .venv/bin/python benchmarks/bench_audit.py [--tps 1000000] [--pg URL] [--keep URL]

Builds a log of ``--tps`` tallies (the synthetic national layout of
``sipantau_core.testing.national``, one tally a TPS, through ``desk.submit_many`` in
chunks of 5,000, then ``ANALYZE``, as autovacuum would) in a fresh PostgreSQL schema
(dropped afterwards; ``--keep URL`` reuses a schema a previous run left with
``--no-drop``), then measures, each in a process of its own so that its peak memory is
its own:

* ``desk.audit.verify()``: the reports read a part at a time in leaf order
  (``VERIFY_CHUNK`` with their payloads);
* the same check as before #13's streaming (``verify_log`` over every report of the log,
  read at once with their payloads), the baseline;
* an inclusion proof of the middle report and a consistency proof from half the tree.

Prints seconds and the peak RSS above the process's RSS before the step (the desk open,
its deployment loaded), and the ratios. Asserts only that both checks agree.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sipantau_adapters.storage.sql import SQLStorage
from sipantau_core import Desk
from sipantau_core.access import Principal, Role
from sipantau_core.audit import verify_log
from sipantau_core.ports import ReportFilter
from sipantau_core.testing.national import national_deployment, national_tallies

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SYSTEM = Principal(id="bench", role=Role.SYSTEM)


def deployment(tps: int) -> Any:
    villages = max(1, min(83_000, tps // 10))
    cities = max(1, min(514, villages // 4))
    return national_deployment(tps=tps, cities=cities, villages=villages)


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step(args: tuple[str, str, int]) -> dict[str, Any]:
    """One measurement, in a fresh process: (seconds, peak MB above the start)."""
    what, url, tps = args
    desk = Desk.open(deployment(tps), storage=SQLStorage(url))
    try:
        start = rss_mb()
        t0 = time.perf_counter()
        if what == "verify":
            report = desk.audit.verify()
            result: Any = (report.ok, report.tree[0])
        elif what == "verify-at-once":
            with desk.storage.transaction() as tx:
                entries = tx.audit()
                reports = tx.reports(ReportFilter(heads_only=False))
            report = verify_log(entries, reports)
            result = (report.ok, report.tree[0])
        elif what == "inclusion":
            with desk.storage.transaction() as tx:
                middle = tx.leaf_reports(tps // 2, tps // 2 + 1, payload=False)[0]
            proof = desk.audit.inclusion_proof(middle.report_id, principal=SYSTEM)
            result = (proof.tree_size, len(proof.path))
        else:
            proof2 = desk.audit.consistency_proof(tps // 2, principal=SYSTEM)
            result = (proof2.new_size, len(proof2.path))
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "peak_mb": peak_mb() - start, "result": result}
    finally:
        desk.close()


def build(url: str, tps: int) -> float:
    dep = deployment(tps)
    desk = Desk.open(dep, storage=SQLStorage(url))
    try:
        t0 = time.perf_counter()
        chunk: list[Any] = []
        for report in national_tallies(dep, ocr_errors=0.0):
            chunk.append(report)
            if len(chunk) == 5000:
                desk.submit_many(chunk, principal=SYSTEM)
                chunk = []
        if chunk:
            desk.submit_many(chunk, principal=SYSTEM)
        seconds = time.perf_counter() - t0
    finally:
        desk.close()
    # the planner's statistics, as autovacuum would keep them (this machine's server runs
    # without it: a freshly loaded table would look empty to the planner)
    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        conn.execute(f'ANALYZE "{schema}".reports, "{schema}".station_states')
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tps", type=int, default=1_000_000)
    parser.add_argument("--pg", default=PG_URL)
    parser.add_argument("--keep", default=None, help="a schema URL left by --no-drop")
    parser.add_argument("--no-drop", action="store_true")
    args = parser.parse_args(argv)
    name = "sipantau_bench_" + secrets.token_hex(4)
    url = args.keep or f"{args.pg}?schema={name}"
    try:
        if args.keep is None:
            seconds = build(url, args.tps)
            print(f"log of {args.tps:,} tallies built in {seconds:.0f} s ({url})")
        ctx = multiprocessing.get_context("spawn")
        out: dict[str, dict[str, Any]] = {}
        for what in ("verify", "verify-at-once", "inclusion", "consistency"):
            with ctx.Pool(1) as pool:
                out[what] = pool.map(step, [(what, url, args.tps)])[0]
            m = out[what]
            print(f"  {what:<16}{m['seconds']:8.2f} s  peak +{m['peak_mb']:7.0f} MB  {m['result']}")
        new, old = out["verify"], out["verify-at-once"]
        assert new["result"] == old["result"], (new, old)
        print(
            f"verify by parts / at once: time {new['seconds'] / old['seconds']:.2f}, "
            f"peak memory {new['peak_mb'] / max(old['peak_mb'], 1):.3f}"
        )
        print(json.dumps({k: {"s": v["seconds"], "mb": v["peak_mb"]} for k, v in out.items()}))
    finally:
        if args.keep is None and not args.no_drop:
            with psycopg.connect(args.pg.split("?", 1)[0], autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


if __name__ == "__main__":
    main()

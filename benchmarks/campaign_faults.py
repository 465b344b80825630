"""A fault campaign, run by hand (never by the tests):

    .venv/bin/python benchmarks/campaign_faults.py [--region 32] [--tps 823236]
        [--villages 83000] [--devices 8] [--per-device 25] [--per-round 5]
        [--workers 2] [--repeat 1] [--pace 0]

Real monitor clients (``MonitorClient``, each monitor with its device key and its own
outbox file) in ``--devices`` device processes load ``sipantau serve --workers N``
(the command line, as deployed) on a PostgreSQL cluster of the campaign's own (``initdb``
in a temporary directory on a free port, removed afterwards: the shared server on 5432 is
never restarted), through a proxy that can cut the network. The deployment is the
synthetic national layout, the whole country (``--region ID``) or a region of it.

The day runs in rounds; in each round every monitor sends ``--per-round`` situation
reports and a share of them their tally, while one fault is put in:

* ``kill -9`` of a server worker while it is inside a write transaction (seen in
  ``pg_stat_activity`` on the worker's own connections); uvicorn starts another;
* a PostgreSQL restart as after a crash (``pg_ctl restart -m immediate``);
* the network cut for 1.5 s (each request reset before the desk sees it, after it
  answered, or half-way through the answer);
* a device SIGKILLed while its reports wait in its outboxes (its network down), then
  started again;

and a last round without a fault. After each round (the devices flushed, then any
outbox still pending flushed once more: "the network is back") the campaign reads every
outbox and the desk, and prints one table: reports sent, acknowledged (a receipt in the
outbox), stored, duplicates detected (resends the desk answered ``duplicate``), lost
(must be 0), counted twice (must be 0), how many waited in outboxes when the fault
ended, and whether the audit log verifies; with ``--repeat N`` the faults go round N
times. It exits non-zero if anything was lost, counted twice or does not verify.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from faultlab import FAULTS, Row, lab, rss_mb, table  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", default="32", help="ID: the whole country")
    parser.add_argument("--tps", type=int, default=823_236)
    parser.add_argument("--villages", type=int, default=83_000)
    parser.add_argument("--devices", type=int, default=8, help="device processes")
    parser.add_argument("--per-device", type=int, default=25, help="monitors per device")
    parser.add_argument("--per-round", type=int, default=5, help="situation reports a round")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the four faults")
    parser.add_argument("--pace", type=float, default=0.0, help="seconds between submits")
    args = parser.parse_args(argv)
    region = None if args.region.upper() == "ID" else args.region
    started = time.monotonic()
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="sipantau-campaign-") as tmp,
        lab(
            Path(tmp),
            region=region,
            tps=args.tps,
            villages=args.villages,
            devices=args.devices,
            per_device=args.per_device,
            per_round=args.per_round,
            pace=args.pace,
            workers=args.workers,
        ) as day,
    ):
        assert day.server is not None
        monitors = sum(len(d) for d in day.devices)
        print(
            f"deployment {day.deployment.id}: {len(day.deployment.stations):,} TPS; "
            f"{monitors} monitors with their own outboxes in {args.devices} device "
            f"processes; sipantau serve --workers {args.workers} on a private PostgreSQL "
            f"cluster (127.0.0.1:{day.cluster.port}, {day.cluster.dir}, removed "
            f"afterwards); ready in {time.monotonic() - started:.0f} s"
        )
        for _ in range(args.repeat):
            for name, inject in FAULTS.items():
                rows.append(day.run_round(name, inject))
                row = rows[-1]
                print(
                    f"  {name:<24} {row.seconds:5.1f} s  {row.sent / row.seconds:6.0f} "
                    f"reports/s  {row.injected}",
                    flush=True,
                )
        rows.append(day.run_round("none", None))
        workers = [rss_mb(p) for p in day.server.worker_pids()]
        print(
            f"  {'none':<24} {rows[-1].seconds:5.1f} s; server workers' RSS "
            + ", ".join(f"{now:.0f} MB (peak {peak:.0f})" for now, peak in workers)
        )
    print()
    print(table(rows))
    bad = [
        r
        for r in rows
        if r.lost
        or r.double_counted
        or r.phantom
        or r.pending_after_recovery
        or not r.count_matches
        or not r.audit_ok
        or not (r.sent == r.acknowledged == r.stored)
    ]
    counted = "every round: the desk's count equals the sum of the tallies the clients sent"
    print(
        f"\n{counted}: {'yes' if all(r.count_matches for r in rows) else 'NO'}; "
        f"nothing stored that no client sent: "
        f"{'NO' if any(r.phantom for r in rows) else 'yes'}; "
        f"{time.monotonic() - started:.0f} s in all"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

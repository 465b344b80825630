"""The ``sipantau`` command line.

``sipantau check DEPLOYMENT [REPORTS.jsonl]`` loads a deployment and checks every tally
report of a JSON-lines file (by default the deployment's ``sample_tallies.jsonl``),
printing each verdict with its messages in Indonesian and English.

``sipantau desk DEPLOYMENT [REPORTS.jsonl] --storage URL`` runs a desk: every report is
submitted by its own monitor, then the desk prints the count by kecamatan, what was
flagged and why, and shows the release of the city's result to a viewer.

``sipantau audit verify|checkpoint|prove|consistency`` checks a desk's audit log and
hands out its checkpoints and proofs (:mod:`sipantau_adapters.cli_audit`).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from sipantau_core import (
    Deployment,
    Desk,
    PayloadError,
    PermissionDenied,
    Principal,
    Receipt,
    Role,
    SipantauError,
    TallyReport,
    Verdict,
    check_tally,
    parse_report,
)

__all__ = ["main"]


def _check(args: argparse.Namespace, out: TextIO) -> int:
    deployment = Deployment.load(args.deployment)
    reports_path = Path(args.reports or Path(args.deployment) / "sample_tallies.jsonl")
    out.write(
        f"{deployment.name}: {len(deployment.stations)} TPS, "
        f"{deployment.registered_voters:,} pemilih terdaftar (DPT), "
        f"{len(deployment.monitors)} pemantau\n"
    )
    out.write(f"Memeriksa {reports_path}\n\n")
    tally: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    try:
        lines = reports_path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise SipantauError(f"cannot read {reports_path}: {e.strerror}", code="cli.io") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{reports_path.name}:{number}"
        try:
            report = parse_report(line)
        except PayloadError as e:
            tally["unreadable"] += 1
            out.write(f"{where}  TIDAK TERBACA  {e.message_id}\n")
            continue
        if not isinstance(report, TallyReport):
            tally["situation"] += 1
            continue
        verdict = _verdict(deployment, report)
        if verdict is None:
            tally["unknown"] += 1
            out.write(f"{where}  {report.station.label}  TPS/pemilihan tidak dikenal\n")
            continue
        status = "DITANDAI" if not verdict.ok else ("PERINGATAN" if verdict.soft else "OK")
        tally[status] += 1
        out.write(f"{where}  {report.station.label}  {status}\n")
        for violation in verdict:
            codes[violation.code] += 1
            out.write(f"    [{violation.severity}] {violation.code}: {violation.message_id}\n")
            if args.verbose:
                out.write(f"        ({violation.message})\n")
    out.write(
        f"\nRingkasan: {tally['OK']} OK, {tally['PERINGATAN']} dengan peringatan, "
        f"{tally['DITANDAI']} ditandai (tidak dihitung), {tally['unreadable']} tidak terbaca, "
        f"{tally['unknown']} TPS tidak dikenal\n"
    )
    for code, n in sorted(codes.items()):
        out.write(f"  {code}: {n}\n")
    flagged = tally["DITANDAI"] + tally["unreadable"] + tally["unknown"]
    return 1 if args.strict and flagged else 0


def _verdict(deployment: Deployment, report: TallyReport) -> Verdict | None:
    station = deployment.stations.get(report.station)
    contest = deployment.contests.get(report.contest)
    if station is None or contest is None:
        return None
    return check_tally(report, station=station, contest=contest, settings=deployment.tally_settings)


def _desk(args: argparse.Namespace, out: TextIO) -> int:
    deployment = Deployment.load(args.deployment)
    reports_path = Path(args.reports or Path(args.deployment) / "sample_tallies.jsonl")
    if args.fresh and args.storage.startswith("sqlite:///"):
        db = Path(args.storage.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        db.parent.mkdir(parents=True, exist_ok=True)
    desk = Desk.open(deployment, storage=args.storage)
    city = deployment.region
    coordinator = Principal(id="koordinator", role=Role.COORDINATOR, scope=city)
    viewer = Principal(id="kantor-walikota", role=Role.VIEWER, scope=city)
    statuses: Counter[str] = Counter()
    flagged: list[tuple[str, Receipt]] = []
    try:
        for line in reports_path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                report = parse_report(line)
                monitor = Principal(id=report.monitor, role=Role.MONITOR, scope=report.station)
                receipt = desk.submit(report, principal=monitor)
            except SipantauError as e:
                statuses[e.code] += 1
                continue
            statuses[receipt.status] += 1
            if receipt.status == "flagged":
                flagged.append((report.station.label, receipt))
        out.write(
            f"{deployment.name} — {args.storage}\nLaporan: {dict(sorted(statuses.items()))}\n\n"
        )
        contest = next(iter(deployment.contests.values()))
        # the rows: a desk's districts, or a national desk's provinces (not ~7,000 districts)
        national = city.is_nation
        rows = deployment.provinces() if national else deployment.districts()
        out.write(
            f"{'Provinsi' if national else 'Kecamatan':<28}{'TPS':>9}"
            + "".join(f"{contest.label(n):>12}" for n in contest.options)
            + f"{'Sah':>9}{'Tidak sah':>11}\n"
        )
        for district in [*rows, city]:
            t = desk.tally(district, principal=coordinator)
            name = deployment.region_name(district)
            out.write(
                f"{name[:27]:<28}{t.stations_counted:>4}/{t.stations_expected:<4}"
                + "".join(f"{t.votes[n]:>12,}" for n in contest.options)
                + f"{t.valid:>9,}{t.invalid:>11,}\n"
            )
        out.write("\nDitandai (tidak dihitung sampai dikoreksi atau diputuskan petugas):\n")
        for label, receipt in flagged:
            for v in receipt.violations:
                if v.is_hard:
                    out.write(f"  {label}: [{v.code}] {v.message_id}\n")
        try:
            desk.tally(city, principal=viewer)
        except PermissionDenied as e:
            out.write(f"\nKantor wali kota sebelum rilis: ditolak ({e.code})\n")
        desk.release(city, principal=coordinator)
        total = desk.tally(city, principal=viewer)
        out.write(
            f"Setelah rilis oleh koordinator: {total.stations_counted} TPS, "
            f"suara sah {total.valid:,}\n"
        )
    finally:
        desk.close()
    return 0


def _plugins(args: argparse.Namespace, out: TextIO) -> int:
    from sipantau_core.plugins import Plugins

    plugins = Plugins.load()
    out.write("Plugins:\n")
    for name in plugins.names():
        out.write(f"  {name}\n")
    out.write(f"Storage schemes: {', '.join(plugins.schemes())}\n")
    return 0


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    from sipantau_adapters.http.server import serve, serve_workers

    options = {
        "max_queue": args.max_queue,
        "max_wait": args.max_wait if args.max_wait > 0 else None,
        "retry_after": args.retry_after,
    }
    if args.workers > 1:
        out.write(f"sipantau: serving on http://{args.host}:{args.port}, {args.workers} workers\n")
        out.flush()
        serve_workers(
            args.deployment,
            args.storage,
            host=args.host,
            port=args.port,
            workers=args.workers,
            **options,
        )
        return 0
    desk = Desk.open(args.deployment, storage=args.storage)
    try:
        out.write(f"sipantau: serving {desk.deployment.name} on http://{args.host}:{args.port}\n")
        out.flush()
        serve(desk, host=args.host, port=args.port, **options)
    finally:
        desk.close()
    return 0


def _token(args: argparse.Namespace, out: TextIO) -> int:
    desk = Desk.open(args.deployment, storage=args.storage)
    try:
        holder = Principal(id=args.id, role=Role(args.role), scope=args.scope)
        system = Principal(id="sipantau-cli", role=Role.SYSTEM)
        token = desk.issue_token(holder, principal=system)
    finally:
        desk.close()
    out.write(f"{token}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipantau", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check tally reports against a deployment")
    check.add_argument("deployment", help="a deployment directory (deployment.toml, …)")
    check.add_argument("reports", nargs="?", help="a JSON-lines file of reports")
    check.add_argument("-v", "--verbose", action="store_true", help="English messages too")
    check.add_argument(
        "--strict", action="store_true", help="exit 1 when a report is flagged or unreadable"
    )
    check.set_defaults(run=_check)
    desk = sub.add_parser("desk", help="run a desk on a deployment's reports and print the count")
    desk.add_argument("deployment", help="a deployment directory")
    desk.add_argument("reports", nargs="?", help="a JSON-lines file of reports")
    desk.add_argument("--storage", default="sqlite:///.sipantau/desk.db", help="storage URL")
    desk.add_argument(
        "--keep", dest="fresh", action="store_false", help="keep an existing SQLite file"
    )
    desk.set_defaults(run=_desk)
    serve = sub.add_parser("serve", help="serve a desk's HTTP API with uvicorn")
    serve.add_argument("deployment", help="a deployment directory")
    serve.add_argument("--storage", default="sqlite:///.sipantau/desk.db", help="storage URL")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--workers", type=int, default=1, help="server processes (SQLite or PostgreSQL storage)"
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=1024,
        help="submissions waiting per process; past it: 429 server.busy (default 1024)",
    )
    serve.add_argument(
        "--max-wait",
        type=float,
        default=10,
        help="seconds a submission waits for its commit at most; then 503 server.timeout "
        "(default 10; 0: no bound)",
    )
    serve.add_argument(
        "--retry-after",
        type=float,
        default=1,
        help="the Retry-After of 429 and 503 answers, in seconds (default 1)",
    )
    serve.set_defaults(run=_serve)
    token = sub.add_parser("token", help="issue a staff token (printed once; stored as a hash)")
    token.add_argument("deployment", help="a deployment directory")
    token.add_argument("--storage", default="sqlite:///.sipantau/desk.db", help="storage URL")
    token.add_argument("--id", required=True, help="who holds it, e.g. petugas-1")
    token.add_argument(
        "--role", required=True, choices=[r.value for r in Role if r is not Role.MONITOR]
    )
    token.add_argument("--scope", default=None, help="region code (none: system only)")
    token.set_defaults(run=_token)
    from sipantau_adapters.cli_audit import add_parser as add_audit
    from sipantau_adapters.demo import add_parser as add_demo

    add_demo(sub)
    add_audit(sub)
    plugins = sub.add_parser("plugins", help="list the installed plugins and storage schemes")
    plugins.set_defaults(run=_plugins)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        code: int = args.run(args, stream)
    except SipantauError as e:
        sys.stderr.write(f"sipantau: {e}\n")
        return 2
    except KeyboardInterrupt:
        # Ctrl-C (again, while a server shuts down): stop without a traceback
        sys.stderr.write("sipantau: interrupted\n")
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""The ``sipantau`` command line.

``sipantau check DEPLOYMENT [REPORTS.jsonl]`` loads a deployment and checks every tally
report of a JSON-lines file (by default the deployment's ``sample_tallies.jsonl``),
printing each verdict with its messages in Indonesian and English.
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
    PayloadError,
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
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        code: int = args.run(args, stream)
    except SipantauError as e:
        sys.stderr.write(f"sipantau: {e}\n")
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

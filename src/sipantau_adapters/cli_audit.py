"""``sipantau audit``: verify a desk's audit log, hand out checkpoints, prove reports.

- ``sipantau audit verify DEPLOYMENT --storage URL [--checkpoint FILE]``: recompute the
  hash chain, every report's leaf and every batch's tree root; with a checkpoint, also
  that the log still extends it. Prints one line, ``ok`` or the first bad entry or
  report; exit 0 or 1.
- ``sipantau audit checkpoint DEPLOYMENT --storage URL``: a signed checkpoint (JSON) of
  the log's head and tree head (needs the desk's key, ``[settings] desk_key_env``).
- ``sipantau audit prove DEPLOYMENT REPORT_ID … --storage URL [--checkpoint FILE]``: the
  inclusion proof of each report (JSON, one per line); with a checkpoint, for its tree
  and checked against it; exit 1 when one does not check.
- ``sipantau audit consistency DEPLOYMENT OLD NEW --storage URL``: the consistency proof
  between two tree heads, each a checkpoint file or a tree size; with checkpoint files,
  checked against both; exit 1 when it does not check.
- ``sipantau audit check PROOF.json --checkpoint FILE … --public-key KEY``: check a
  proof handed over as JSON (one line of ``prove`` or ``consistency``) with no desk and
  no database: an inclusion proof against one checkpoint, a consistency proof against
  two (old, then new); exit 0 or 1.

A checkpoint is checked with ``--public-key`` (the text form of the desk's public key,
``desk.audit.public_key.to_text()``), or the desk's own key when it has one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from sipantau_core import Desk, Principal, Role, SipantauError
from sipantau_core.audit import Checkpoint, verify_extends
from sipantau_core.proofs import (
    ConsistencyProof,
    InclusionProof,
    ProofCheck,
    check_consistency,
    check_inclusion,
)
from sipantau_core.signing import PublicKey

__all__ = ["add_parser"]

#: Who the command line acts as (the system role: it sees the whole desk).
CLI = Principal(id="sipantau-cli", role=Role.SYSTEM)


def _read_json(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise SipantauError(f"cannot read {path}: {e.strerror}", code="cli.io") from None
    except ValueError as e:
        raise SipantauError(f"{path} is not JSON: {e}", code="cli.bad_input") from None
    if not isinstance(data, dict):
        raise SipantauError(f"{path} does not hold a JSON object", code="cli.bad_input")
    return data


def _checkpoint(path: str) -> Checkpoint:
    try:
        return Checkpoint.from_wire(_read_json(path))
    except (KeyError, ValueError, TypeError) as e:
        raise SipantauError(
            f"{path} is not a checkpoint ({type(e).__name__}: {e})", code="cli.bad_input"
        ) from None


def _key(args: argparse.Namespace, desk: Desk) -> PublicKey:
    if args.public_key:
        try:
            return PublicKey.from_text(args.public_key)
        except ValueError:
            raise SipantauError(
                "--public-key is not a public key (desk.audit.public_key.to_text())",
                code="cli.bad_input",
            ) from None
    if desk.audit.public_key is None:
        raise SipantauError(
            "a checkpoint is checked with the desk's public key: pass --public-key, or set "
            "[settings] desk_key_env",
            code="audit.no_key",
        )
    return desk.audit.public_key


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    desk = Desk.open(args.deployment, storage=args.storage)
    try:
        report = desk.audit.verify()
        if report.ok and args.checkpoint:
            kept = _checkpoint(args.checkpoint)
            report = verify_extends(desk.audit.entries(), kept, _key(args, desk))
            report = report if not report.ok else desk.audit.verify()
    finally:
        desk.close()
    if not report.ok:
        out.write(f"sipantau audit: BAD: {report.reason}\n")
        return 1
    size, root = report.tree
    extends = f"; extends the checkpoint {args.checkpoint}" if args.checkpoint else ""
    out.write(
        f"sipantau audit: ok: {report.entries} entries, {size} reports in the tree "
        f"(root {root}){extends}\n"
    )
    return 0


def _checkpoint_cmd(args: argparse.Namespace, out: TextIO) -> int:
    desk = Desk.open(args.deployment, storage=args.storage)
    try:
        checkpoint = desk.audit.checkpoint()
        public = desk.audit.public_key
    finally:
        desk.close()
    assert public is not None  # checkpoint() raised otherwise
    out.write(json.dumps({**checkpoint.to_wire(), "public_key": public.to_text()}) + "\n")
    return 0


def _prove(args: argparse.Namespace, out: TextIO) -> int:
    desk = Desk.open(args.deployment, storage=args.storage)
    bad = 0
    try:
        kept = _checkpoint(args.checkpoint) if args.checkpoint else None
        key = _key(args, desk) if kept is not None else None
        for report_id in args.report_ids:
            size = kept.tree_size if kept is not None else None
            proof = desk.audit.inclusion_proof(report_id, principal=CLI, tree_size=size)
            line: dict[str, object] = proof.to_wire()
            if kept is not None:
                check = check_inclusion(proof, kept, key)
                line["checked"] = check.ok
                if not check.ok:
                    line["reason"] = check.reason
                    bad += 1
            out.write(json.dumps(line) + "\n")
    finally:
        desk.close()
    return 1 if bad else 0


def _size_or_checkpoint(text: str) -> tuple[int, Checkpoint | None]:
    if text.isdigit():
        return int(text), None
    kept = _checkpoint(text)
    if kept.tree_size is None:
        raise SipantauError(
            f"{text} is a version-1 checkpoint: it states no tree head", code="cli.bad_input"
        )
    return kept.tree_size, kept


def _consistency(args: argparse.Namespace, out: TextIO) -> int:
    old_size, old = _size_or_checkpoint(args.old)
    new_size, new = _size_or_checkpoint(args.new)
    desk = Desk.open(args.deployment, storage=args.storage)
    try:
        proof = desk.audit.consistency_proof(old_size, new_size, principal=CLI)
        key = _key(args, desk) if old is not None or new is not None else None
    finally:
        desk.close()
    check = check_consistency(proof, old, new, key)
    out.write(json.dumps({**proof.to_wire(), "checked": check.ok}) + "\n")
    if not check.ok:
        out.write(f"sipantau audit: BAD: {check.reason}\n")
        return 1
    out.write(
        f"sipantau audit: ok: the tree of {proof.new_size} reports extends the tree of "
        f"{proof.old_size}\n"
    )
    return 0


def _check(args: argparse.Namespace, out: TextIO) -> int:
    data = _read_json(args.proof)
    kept = [_checkpoint(path) for path in args.checkpoint or []]
    key = None
    if kept:
        if not args.public_key:
            raise SipantauError(
                "a checkpoint is checked with the desk's public key: pass --public-key",
                code="audit.no_key",
            )
        try:
            key = PublicKey.from_text(args.public_key)
        except ValueError:
            raise SipantauError("--public-key is not a public key", code="cli.bad_input") from None
    try:
        check: ProofCheck
        if data.get("kind") == "consistency":
            if len(kept) not in (0, 2):
                raise SipantauError(
                    "a consistency proof is checked against two checkpoints: --checkpoint "
                    "OLD --checkpoint NEW",
                    code="cli.bad_input",
                )
            proof = ConsistencyProof.from_wire(data)
            old, new = (kept[0], kept[1]) if kept else (None, None)
            check = check_consistency(proof, old, new, key)
        else:
            if len(kept) > 1:
                raise SipantauError(
                    "an inclusion proof is checked against one checkpoint",
                    code="cli.bad_input",
                )
            check = check_inclusion(InclusionProof.from_wire(data), kept[0] if kept else None, key)
    except (KeyError, ValueError, TypeError) as e:
        raise SipantauError(
            f"{args.proof} is not a proof ({type(e).__name__}: {e})", code="cli.bad_input"
        ) from None
    if not check.ok:
        out.write(f"sipantau audit: BAD: {check.reason}\n")
        return 1
    against = f" against {len(kept)} checkpoint(s)" if kept else " (hashes only)"
    out.write(f"sipantau audit: ok: the proof checks{against}\n")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``sipantau audit`` to the command line's subcommands."""
    audit = sub.add_parser("audit", help="verify the audit log, checkpoints and proofs")
    commands = audit.add_subparsers(dest="audit_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("deployment", help="a deployment directory")
        p.add_argument("--storage", default="sqlite:///.sipantau/desk.db", help="storage URL")
        p.add_argument("--public-key", default=None, help="the desk's public key (text form)")

    verify = commands.add_parser("verify", help="recompute the chain, the leaves, the roots")
    common(verify)
    verify.add_argument("--checkpoint", help="a checkpoint file the log must still extend")
    verify.set_defaults(run=_verify)
    checkpoint = commands.add_parser("checkpoint", help="print a signed checkpoint (JSON)")
    common(checkpoint)
    checkpoint.set_defaults(run=_checkpoint_cmd)
    prove = commands.add_parser("prove", help="print the inclusion proof of reports (JSON)")
    common(prove)
    prove.add_argument("report_ids", nargs="+", metavar="REPORT_ID")
    prove.add_argument("--checkpoint", help="prove for this checkpoint's tree, and check")
    prove.set_defaults(run=_prove)
    consistency = commands.add_parser(
        "consistency", help="prove that the log only grew between two tree heads"
    )
    common(consistency)
    consistency.add_argument("old", help="a checkpoint file, or a tree size")
    consistency.add_argument("new", help="a checkpoint file, or a tree size")
    consistency.set_defaults(run=_consistency)
    check = commands.add_parser("check", help="check a proof (JSON) with no desk")
    check.add_argument("proof", help="a proof file: a line of prove or consistency")
    check.add_argument(
        "--checkpoint", action="append", help="a checkpoint file (two for consistency)"
    )
    check.add_argument("--public-key", default=None, help="the desk's public key (text form)")
    check.set_defaults(run=_check)

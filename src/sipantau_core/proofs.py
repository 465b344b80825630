"""Proofs that the audit log holds a report, and that it only grew (#13): values and the
checks an outside party runs with hashes, a signed checkpoint and the desk's public key
only (no desk, no database).

- :class:`InclusionProof`: report ``report_id`` is leaf ``leaf_index`` (hash
  ``leaf_hash``, over the canonical ``leaf`` data) of the report tree of ``tree_size``
  leaves with head ``root``; ``path`` is its RFC 6962 audit path (hex, nearest sibling
  first). :func:`check_inclusion` checks it, against a signed :class:`Checkpoint` when
  one is given.
- :class:`ConsistencyProof`: the tree of ``old_size`` leaves (head ``old_root``) is a
  prefix of the tree of ``new_size`` leaves (head ``new_root``). :func:`check_consistency`
  checks it, against two signed checkpoints when given.

The paths hold hashes of other reports only: a scoped auditor checks its own region's
reports without seeing anyone else's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import attrs

from sipantau_core.audit import Checkpoint
from sipantau_core.merkle import leaf_hash, verify_consistency, verify_inclusion
from sipantau_core.signing import PublicKey

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "ProofCheck",
    "check_consistency",
    "check_inclusion",
]


@attrs.frozen
class ProofCheck:
    """The result of checking a proof: ``ok``, or why not."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def _hashes(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


@attrs.frozen
class InclusionProof:
    """That a report is a leaf of the audit log's tree (see the module)."""

    report_id: UUID
    leaf_index: int
    leaf_hash: str
    leaf: str
    tree_size: int
    root: str
    path: tuple[str, ...] = attrs.field(converter=_hashes)

    def to_wire(self) -> dict[str, object]:
        return {
            "kind": "inclusion",
            "report_id": str(self.report_id),
            "leaf_index": self.leaf_index,
            "leaf_hash": self.leaf_hash,
            "leaf": self.leaf,
            "tree_size": self.tree_size,
            "root": self.root,
            "path": list(self.path),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> InclusionProof:
        return cls(
            UUID(str(data["report_id"])),
            int(data["leaf_index"]),
            str(data["leaf_hash"]),
            str(data["leaf"]),
            int(data["tree_size"]),
            str(data["root"]),
            data["path"],
        )


@attrs.frozen
class ConsistencyProof:
    """That the audit log's tree only grew from ``old_size`` to ``new_size`` leaves."""

    old_size: int
    new_size: int
    old_root: str
    new_root: str
    path: tuple[str, ...] = attrs.field(converter=_hashes)

    def to_wire(self) -> dict[str, object]:
        return {
            "kind": "consistency",
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": self.old_root,
            "new_root": self.new_root,
            "path": list(self.path),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ConsistencyProof:
        return cls(
            int(data["old_size"]),
            int(data["new_size"]),
            str(data["old_root"]),
            str(data["new_root"]),
            data["path"],
        )


def _bytes(values: tuple[str, ...]) -> list[bytes] | None:
    try:
        return [bytes.fromhex(v) for v in values]
    except ValueError:
        return None


def _tree_head(
    checkpoint: Checkpoint | None, key: PublicKey | None, size: int, root: str, what: str
) -> ProofCheck:
    """That ``checkpoint`` is the desk's and states the tree head (size, root)."""
    if checkpoint is None:
        return ProofCheck(True)
    if key is None:
        return ProofCheck(False, "a checkpoint is checked with the desk's public key")
    if not checkpoint.signature_ok(key):
        return ProofCheck(False, f"the {what} checkpoint's signature is not the desk's")
    if checkpoint.tree_size is None:
        return ProofCheck(False, f"the {what} checkpoint is of version 1: it states no tree head")
    if (checkpoint.tree_size, checkpoint.root) != (size, root):
        return ProofCheck(
            False,
            f"the proof is for a tree of {size} leaves with another head than the {what} "
            f"checkpoint's ({checkpoint.tree_size} leaves)",
        )
    return ProofCheck(True)


def check_inclusion(
    proof: InclusionProof,
    checkpoint: Checkpoint | None = None,
    key: PublicKey | None = None,
    *,
    leaf_hash_hex: str | None = None,
) -> ProofCheck:
    """Check that ``proof`` shows its report in the tree: its leaf data hashes to its
    leaf hash, names its report and index, and the audit path leads to its root. With
    ``checkpoint`` (and the desk's ``key``), that root is the signed tree head's; with
    ``leaf_hash_hex`` (from the monitor's receipt), the leaf is the receipt's."""
    head = _tree_head(checkpoint, key, proof.tree_size, proof.root, "signed")
    if not head:
        return head
    data = proof.leaf.encode("utf-8")
    leaf = leaf_hash(data)
    if leaf.hex() != proof.leaf_hash:
        return ProofCheck(False, "the leaf data does not hash to the proof's leaf hash")
    if leaf_hash_hex is not None and leaf_hash_hex != proof.leaf_hash:
        return ProofCheck(False, "the proof's leaf is not the receipt's")
    needle = f'"index":{proof.leaf_index},'.encode()
    if needle not in data or f'"report":"{proof.report_id}"'.encode() not in data:
        return ProofCheck(False, "the leaf data names another report or place in the tree")
    path = _bytes(proof.path)
    try:
        root = bytes.fromhex(proof.root)
    except ValueError:
        return ProofCheck(False, "the proof's root is not a hash")
    if path is None or not verify_inclusion(proof.leaf_index, proof.tree_size, leaf, path, root):
        return ProofCheck(
            False,
            f"the audit path does not lead from leaf {proof.leaf_index} to the root of the "
            f"tree of {proof.tree_size} leaves",
        )
    return ProofCheck(True)


def check_consistency(
    proof: ConsistencyProof,
    old: Checkpoint | None = None,
    new: Checkpoint | None = None,
    key: PublicKey | None = None,
) -> ProofCheck:
    """Check that ``proof`` shows the old tree a prefix of the new one; with the two
    checkpoints (and the desk's ``key``), that both heads are the signed ones."""
    for checkpoint, size, root, what in (
        (old, proof.old_size, proof.old_root, "old"),
        (new, proof.new_size, proof.new_root, "new"),
    ):
        head = _tree_head(checkpoint, key, size, root, what)
        if not head:
            return head
    path = _bytes(proof.path)
    try:
        old_root, new_root = bytes.fromhex(proof.old_root), bytes.fromhex(proof.new_root)
    except ValueError:
        return ProofCheck(False, "a root of the proof is not a hash")
    if path is None or not verify_consistency(
        proof.old_size, proof.new_size, old_root, new_root, path
    ):
        return ProofCheck(
            False,
            f"the tree of {proof.new_size} leaves does not extend the tree of "
            f"{proof.old_size} leaves: the log was rewritten, not only grown",
        )
    return ProofCheck(True)

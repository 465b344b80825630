"""The tamper-evident audit log: a hash chain over every entry, and signed checkpoints.

Each entry's *leaf hash* is SHA-256 over a domain-separated canonical form of the entry
(its sequence number included); each *link* is SHA-256 over a different domain string,
the previous link and the leaf. Changing, deleting, inserting or reordering an entry
breaks every link from there on, and :func:`verify_chain` names the first bad entry. A
:class:`Checkpoint` (sequence, link, time) signed with the desk's Ed25519 key can be
handed to an outside party; :func:`verify_extends` later checks, with the log and the
checkpoint only, that the log still extends it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

import attrs

from sipantau_core.ports import AuditRecord
from sipantau_core.signing import DeviceKey, PublicKey
from sipantau_core.wire import _json_str

__all__ = [
    "GENESIS",
    "ChainReport",
    "Checkpoint",
    "chain",
    "leaf_hash",
    "link_hash",
    "verify_chain",
    "verify_extends",
]

_LEAF: Final = b"sipantau/audit-leaf/v1\x00"
_LINK: Final = b"sipantau/audit-link/v1\x00"
_CHECKPOINT: Final = b"sipantau/audit-checkpoint/v1\x00"
#: The link before the first entry.
GENESIS: Final = "0" * 64


def _utc(at: datetime) -> str:
    global _LAST_UTC  # the entries of a batch share one time: written once
    last = _LAST_UTC
    if last[0] is at:
        return last[1]
    text = at.astimezone(UTC).isoformat(timespec="microseconds")
    _LAST_UTC = (at, text)
    return text


_LAST_UTC: tuple[datetime | None, str] = (None, "")


def _canonical(entry: AuditRecord, seq: int) -> str:
    """The entry's canonical form with sequence ``seq``: the JSON object of every field
    but the link, keys sorted, no white space (as ``json.dumps(..., sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` writes it), built directly: the bulk
    path writes one entry per report."""
    str_ = str
    if not (
        type(seq) is int
        and type(entry.principal) is str_
        and type(entry.role) is str_
        and type(entry.action) is str_
        and type(entry.object) is str_
        and type(entry.outcome) is str_
        and type(entry.detail) is str_
        and type(entry.region) is str_
    ):
        body = {
            "seq": seq,
            "at": _utc(entry.at),
            "principal": entry.principal,
            "role": entry.role,
            "action": entry.action,
            "object": entry.object,
            "outcome": entry.outcome,
            "detail": entry.detail,
            "region": entry.region,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    q = _json_str
    return (
        f'{{"action":{q(entry.action)},"at":"{_utc(entry.at)}","detail":{q(entry.detail)},'
        f'"object":{q(entry.object)},"outcome":{q(entry.outcome)},'
        f'"principal":{q(entry.principal)},"region":{q(entry.region)},'
        f'"role":{q(entry.role)},"seq":{seq}}}'
    )


def leaf_hash(entry: AuditRecord) -> bytes:
    """SHA-256 over the entry's canonical form (every field but the link)."""
    return _leaf(entry, entry.seq)


def _leaf(entry: AuditRecord, seq: int) -> bytes:
    return hashlib.sha256(_LEAF + _canonical(entry, seq).encode("utf-8")).digest()


def _link(previous: str, leaf: bytes) -> str:
    return hashlib.sha256(_LINK + bytes.fromhex(previous) + leaf).hexdigest()


def link_hash(previous: str, entry: AuditRecord) -> str:
    """The link of ``entry`` after the link ``previous`` (hex)."""
    return _link(previous, leaf_hash(entry))


def chain(head: tuple[int, str], entries: Iterable[AuditRecord]) -> list[AuditRecord]:
    """Number ``entries`` after ``head`` (sequence, link) and link each to the one before."""
    seq, link = head
    previous = bytes.fromhex(link)
    out = []
    for entry in entries:
        seq += 1
        previous = hashlib.sha256(_LINK + previous + _leaf(entry, seq)).digest()
        link = previous.hex()
        out.append(
            AuditRecord(
                at=entry.at,
                principal=entry.principal,
                role=entry.role,
                action=entry.action,
                object=entry.object,
                outcome=entry.outcome,
                seq=seq,
                detail=entry.detail,
                region=entry.region,
                link=link,
            )
        )
    return out


@attrs.frozen
class ChainReport:
    """The result of checking a log: ``ok``, or the first bad entry's ``seq`` (the
    position where it was expected when entries are missing) and why."""

    ok: bool
    entries: int
    head: tuple[int, str]
    first_bad: int | None = None
    reason: str = ""


def verify_chain(entries: Sequence[AuditRecord]) -> ChainReport:
    """Recompute the chain from the start; report the first entry that does not fit."""
    seq, link = 0, GENESIS
    for entry in entries:
        if entry.seq != seq + 1:
            what = "missing or reordered" if entry.seq > seq + 1 else "inserted or reordered"
            return ChainReport(
                False,
                len(entries),
                (seq, link),
                seq + 1,
                f"entry {seq + 1} {what} (found sequence {entry.seq})",
            )
        expected = link_hash(link, attrs.evolve(entry, link=""))
        if entry.link != expected:
            return ChainReport(
                False,
                len(entries),
                (seq, link),
                entry.seq,
                f"entry {entry.seq} was altered (its hash does not match)",
            )
        seq, link = entry.seq, expected
    return ChainReport(True, len(entries), (seq, link))


@attrs.frozen
class Checkpoint:
    """A signed statement that the log had ``seq`` entries ending in ``link`` at ``at``."""

    seq: int
    link: str
    at: datetime
    key_id: str
    signature: bytes

    @staticmethod
    def message(seq: int, link: str, at: datetime) -> bytes:
        return _CHECKPOINT + f"{seq}|{link}|{_utc(at)}".encode()

    @classmethod
    def sign(cls, seq: int, link: str, at: datetime, key: DeviceKey) -> Checkpoint:
        return cls(seq, link, at, key.public_key.key_id, key.sign(cls.message(seq, link, at)))

    def signature_ok(self, key: PublicKey) -> bool:
        return key.key_id == self.key_id and key.verify(
            self.signature, self.message(self.seq, self.link, self.at)
        )

    def to_wire(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "link": self.link,
            "at": _utc(self.at),
            "key_id": self.key_id,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_wire(cls, data: dict[str, object]) -> Checkpoint:
        return cls(
            int(str(data["seq"])),
            str(data["link"]),
            datetime.fromisoformat(str(data["at"])),
            str(data["key_id"]),
            bytes.fromhex(str(data["signature"])),
        )


def verify_extends(
    entries: Sequence[AuditRecord], checkpoint: Checkpoint, key: PublicKey
) -> ChainReport:
    """Check that ``entries`` (the whole log, in order) is a valid chain that still holds
    the checkpoint: its signature is the desk's, and entry ``checkpoint.seq`` ends in
    ``checkpoint.link``."""
    if not checkpoint.signature_ok(key):
        return ChainReport(
            False, len(entries), (0, GENESIS), None, "the checkpoint's signature is not the desk's"
        )
    report = verify_chain(entries)
    if not report.ok:
        return report
    if checkpoint.seq == 0:
        return (
            report
            if checkpoint.link == GENESIS
            else ChainReport(
                False, len(entries), report.head, 0, "the checkpoint of an empty log is altered"
            )
        )
    if len(entries) < checkpoint.seq:
        return ChainReport(
            False,
            len(entries),
            report.head,
            len(entries) + 1,
            f"the log ends at {len(entries)}, before the checkpoint at "
            f"{checkpoint.seq}: entries were removed",
        )
    at = entries[checkpoint.seq - 1]
    if at.link != checkpoint.link:
        return ChainReport(
            False,
            len(entries),
            report.head,
            checkpoint.seq,
            f"entry {checkpoint.seq} no longer ends in the checkpoint's hash: "
            "the log was rewritten",
        )
    return report

"""``desk.audit``: the tamper-evident log of a desk, its verification and signed
checkpoints.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from sipantau_core.audit import ChainReport, Checkpoint, verify_chain, verify_extends
from sipantau_core.errors import (
    SipantauError,
)
from sipantau_core.ports import (
    AuditRecord,
    Storage,
)
from sipantau_core.signing import (
    DeviceKey,
    PublicKey,
)


class _Keeper(Protocol):
    """What the audit log reads of its desk."""

    @property
    def storage(self) -> Storage: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...


def _desk_key_from_settings(settings: Mapping[str, Any]) -> DeviceKey | None:
    name = settings.get("desk_key_env")
    if not name:
        return None
    value = os.environ.get(str(name))
    if not value:
        raise SipantauError(
            f"the environment variable {name} (settings.desk_key_env) is not set",
            code="audit.key_missing",
        )
    try:
        seed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        return DeviceKey.from_seed(seed)
    except (binascii.Error, ValueError):
        raise SipantauError(
            f"{name} must hold a 32-byte Ed25519 seed in base64url", code="audit.key_invalid"
        ) from None


class AuditLog:
    """``desk.audit``: the tamper-evident record of who did what."""

    def __init__(self, desk: _Keeper, key: DeviceKey | None):
        self._desk = desk
        self._key = key

    @property
    def public_key(self) -> PublicKey | None:
        """The key that signs checkpoints (hand it to whoever keeps them)."""
        return self._key.public_key if self._key is not None else None

    def entries(self) -> list[AuditRecord]:
        """The whole log, in order (for verification; use ``desk.history`` to read it
        as a principal)."""
        with self._desk.storage.transaction() as tx:
            return tx.audit()

    def verify(self, checkpoint: Checkpoint | None = None) -> ChainReport:
        """Recompute the hash chain; with ``checkpoint``, also check that the log still
        extends it. The report names the first bad entry."""
        with self._desk.storage.transaction() as tx:
            entries = tx.audit()
            head = tx.audit_head()
        if checkpoint is None:
            report = verify_chain(entries)
            if report.ok and report.head != head:
                # The newest entries were deleted (or the head row altered).
                return ChainReport(
                    False,
                    len(entries),
                    report.head,
                    report.head[0] + 1,
                    f"the log ends at entry {report.head[0]} but its head records entry "
                    f"{head[0]}: entries were removed",
                )
            return report
        if self._key is None:
            raise SipantauError(
                "this desk has no signing key to check checkpoints with", code="audit.no_key"
            )
        return verify_extends(entries, checkpoint, self._key.public_key)

    def checkpoint(self) -> Checkpoint:
        """A signed statement of the log's head (sequence, hash, time)."""
        if self._key is None:
            raise SipantauError(
                "this desk has no signing key: set [settings] desk_key_env or pass desk_key "
                "to Desk.open",
                code="audit.no_key",
            )
        with self._desk.storage.transaction() as tx:
            seq, link = tx.audit_head()
        return Checkpoint.sign(seq, link, self._desk.clock(), self._key)

"""The people of a desk: monitors and their sealed personal data, device keys, staff
tokens.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from sipantau_core.access import Action, Principal, Role
from sipantau_core.desk._base import DeskBase
from sipantau_core.domain import (
    Monitor,
    PersonalData,
    RegionCode,
    Sensitive,
    StationCode,
)
from sipantau_core.errors import (
    ConflictError,
    PermissionDenied,
    UnknownEntityError,
)
from sipantau_core.ports import (
    DeviceKeyRecord,
    MonitorRecord,
    StorageTx,
    TokenRecord,
    WriteBatch,
)
from sipantau_core.signing import (
    PublicKey,
    hash_token,
    new_token,
)

#: How many of the deployment's monitors :meth:`Staff._enrol_deployment_monitors` looks up
#: and writes in one transaction.
MONITOR_CHUNK = 50_000


class Staff(DeskBase):
    """The people of a desk: monitors (personal data sealed), their device keys, staff
    tokens."""

    def _enrol_deployment_monitors(self) -> None:
        """Store the deployment's monitors at the desk (personal data sealed when a key is
        configured) if they are not stored yet: looked up and written in chunks of
        :data:`MONITOR_CHUNK` (one transaction and audit entry each), so that a national
        deployment's 823,236 monitors never sit in memory as records all at once."""
        monitors = list(self.deployment.monitors.values())
        system = Principal(id="system", role=Role.SYSTEM)
        for start in range(0, len(monitors), MONITOR_CHUNK):
            chunk = monitors[start : start + MONITOR_CHUNK]
            with self.storage.transaction() as tx:
                known = tx.monitors(m.id for m in chunk)
            if all(m.id in known for m in chunk):
                continue

            def enrol(tx: StorageTx, chunk: list[Monitor] = chunk) -> None:
                # Read again under the log's lock, which every writer takes: desks opening
                # at once (the workers of `sipantau serve`) enrol each monitor once.
                tx.audit_head(lock=True)
                known = tx.monitors(m.id for m in chunk)
                missing = [m for m in chunk if m.id not in known]
                if not missing:
                    return
                now = self.clock()
                records = [
                    self._monitor_record(m.id, m.station, m.personal, "system", now)
                    for m in missing
                ]
                entry = self._audit_entry(
                    system,
                    "enrol_monitors",
                    f"monitors:{len(records)}",
                    "ok",
                    now,
                    where=self.deployment.region,
                )
                self._commit(tx, WriteBatch(monitors=records, audit=[entry]))

            self._in_transaction(enrol)

    def _monitor_record(
        self,
        monitor_id: str,
        station: StationCode,
        personal: PersonalData | None,
        by: str,
        at: datetime,
    ) -> MonitorRecord:
        def seal(field: str) -> bytes | None:
            if personal is None or self._sealer is None:
                return None
            value: Sensitive = getattr(personal, field)
            return self._sealer.seal(value.reveal(), table="monitors", row=monitor_id, field=field)

        return MonitorRecord(
            id=monitor_id,
            station=station.compact,
            name=seal("name"),
            phone=seal("phone"),
            national_id=seal("national_id"),
            enrolled_by=by,
            enrolled_at=at,
        )

    def _personal(self, monitor_id: str) -> PersonalData | None:
        if self._sealer is None:
            return None
        with self.storage.transaction() as tx:
            record = tx.monitors([monitor_id]).get(monitor_id)
        if record is None or record.name is None or record.phone is None:
            return None
        opened = {
            field: self._sealer.open(value, table="monitors", row=monitor_id, field=field)
            for field, value in (
                ("name", record.name),
                ("phone", record.phone),
                ("national_id", record.national_id),
            )
            if value is not None
        }
        return PersonalData(**opened)

    def enrol_device(
        self, monitor_id: str, public_key: PublicKey, *, principal: Principal
    ) -> DeviceKeyRecord:
        """Register a monitor's device key (officers and coordinators, within their
        region). Reports signed with it are then accepted for that monitor."""
        monitor = self._monitor(monitor_id)
        self._guard(principal, Action.ENROL, monitor.station, what=f"monitor:{monitor_id}")
        now = self.clock()
        record = DeviceKeyRecord(public_key.key_id, monitor_id, public_key.raw, principal.id, now)
        with self.storage.transaction() as tx:
            existing = tx.device_keys(key_ids=[public_key.key_id])
        if existing and existing[0].monitor != monitor_id:
            raise ConflictError(
                f"the key {public_key.key_id} is enrolled for another monitor",
                code="key.taken",
                message_id="kunci perangkat sudah terdaftar untuk pemantau lain",
            )
        entry = self._audit_entry(
            principal, "enrol_device", f"key:{public_key.key_id}", "ok", now, where=monitor.station
        )
        self._write(WriteBatch(device_keys=[record], audit=[entry]))
        return record

    def revoke_device(self, key_id: str, *, principal: Principal) -> DeviceKeyRecord:
        """Revoke a device key: reports signed with it are refused from now on."""
        with self.storage.transaction() as tx:
            found = tx.device_keys(key_ids=[key_id])
        if not found:
            raise UnknownEntityError(f"no device key {key_id}", code="key.not_found")
        record = found[0]
        monitor = self._monitor(record.monitor)
        self._guard(principal, Action.ENROL, monitor.station, what=f"key:{key_id}")
        now = self.clock()
        revoked = attrs.evolve(record, revoked_at=now, revoked_by=principal.id)
        entry = self._audit_entry(
            principal, "revoke_device", f"key:{key_id}", "ok", now, where=monitor.station
        )
        self._write(WriteBatch(device_keys=[revoked], audit=[entry]))
        return revoked

    def rotate_device(
        self, monitor_id: str, public_key: PublicKey, *, principal: Principal
    ) -> DeviceKeyRecord:
        """Enrol a new key for a monitor and revoke its other keys, in one transaction."""
        monitor = self._monitor(monitor_id)
        self._guard(principal, Action.ENROL, monitor.station, what=f"monitor:{monitor_id}")
        now = self.clock()
        with self.storage.transaction() as tx:
            old = [k for k in tx.device_keys(monitor=monitor_id) if k.revoked_at is None]
        revoked = [
            attrs.evolve(k, revoked_at=now, revoked_by=principal.id)
            for k in old
            if k.key_id != public_key.key_id
        ]
        record = DeviceKeyRecord(public_key.key_id, monitor_id, public_key.raw, principal.id, now)
        entry = self._audit_entry(
            principal,
            "rotate_device",
            f"key:{public_key.key_id}",
            f"revoked:{len(revoked)}",
            now,
            where=monitor.station,
        )
        self._write(WriteBatch(device_keys=[*revoked, record], audit=[entry]))
        return record

    def _monitor(self, monitor_id: str) -> Monitor:
        monitor = self.deployment.monitors.get(monitor_id)
        if monitor is None:
            raise UnknownEntityError(
                f"monitor {monitor_id!r} is not in the deployment", code="report.unknown_monitor"
            )
        return monitor

    def issue_token(self, holder: Principal, *, principal: Principal) -> str:
        """A new token for a desk staff member ``holder``; the desk keeps only its hash.
        Coordinators issue tokens for principals within their region; the system for all."""
        if principal.role not in (Role.COORDINATOR, Role.SYSTEM) or holder.role is Role.MONITOR:
            self._write_audit(
                self._audit_entry(
                    principal, "issue_token", f"principal:{holder.id}", "denied:access.role"
                )
            )
            raise PermissionDenied(
                f"{principal.role.value} {principal.id!r} may not issue a token for "
                f"{holder.role.value} {holder.id!r}",
                code="access.role",
            )
        target = holder.scope if holder.scope is not None else None
        if target is not None:
            self._guard(principal, Action.ENROL, target, what=f"principal:{holder.id}")
        elif principal.scope is not None:
            self._guard(principal, Action.ENROL, None, what=f"principal:{holder.id}")
        token = new_token()
        now = self.clock()
        scope = "" if holder.scope is None else str(holder.scope)
        record = TokenRecord(
            hash_token(token), holder.id, holder.role.value, scope, principal.id, now
        )
        entry = self._audit_entry(
            principal,
            "issue_token",
            f"principal:{holder.id}",
            "ok",
            now,
            where=holder.scope if isinstance(holder.scope, RegionCode) else None,
        )
        self._write(WriteBatch(tokens=[record], audit=[entry]))
        return token

    def authenticate(self, token: str) -> Principal:
        """The principal a staff token stands for; ``PermissionDenied`` (``access.bad_token``)
        when the token is unknown or revoked."""
        with self.storage.transaction() as tx:
            record = tx.token(hash_token(token)) if token else None
        if record is None or record.revoked_at is not None:
            anonymous = Principal(id="anonymous", role=Role.SYSTEM)
            self._write_audit(
                self._audit_entry(anonymous, "authenticate", "token", "denied:access.bad_token")
            )
            raise PermissionDenied(
                "unknown or revoked token",
                code="access.bad_token",
                message_id="token tidak dikenal atau sudah dicabut",
            )
        return Principal(id=record.principal, role=record.role, scope=record.scope or None)

    def revoke_token(self, token: str, *, principal: Principal) -> None:
        """Revoke a staff token (its holder's coordinator, or the system)."""
        holder = self.authenticate(token)
        if principal.role not in (Role.COORDINATOR, Role.SYSTEM):
            self._write_audit(
                self._audit_entry(
                    principal, "revoke_token", f"principal:{holder.id}", "denied:access.role"
                )
            )
            raise PermissionDenied("only coordinators revoke tokens", code="access.role")
        if holder.scope is not None:
            self._guard(principal, Action.ENROL, holder.scope, what=f"principal:{holder.id}")
        with self.storage.transaction() as tx:
            record = tx.token(hash_token(token))
        assert record is not None
        now = self.clock()
        entry = self._audit_entry(
            principal,
            "revoke_token",
            f"principal:{holder.id}",
            "ok",
            now,
            where=holder.scope if isinstance(holder.scope, RegionCode) else None,
        )
        self._write(WriteBatch(tokens=[attrs.evolve(record, revoked_at=now)], audit=[entry]))

    def personal_data(self, monitor_id: str, *, principal: Principal) -> PersonalData | None:
        """A monitor's personal data (coordinators only, within their region)."""
        monitor = self.deployment.monitors.get(monitor_id)
        if monitor is None:
            raise UnknownEntityError(
                f"monitor {monitor_id!r} is not in the deployment", code="report.unknown_monitor"
            )
        self._guard(principal, Action.READ_PERSONAL, monitor.station, what=f"monitor:{monitor_id}")
        self._write_audit(
            self._audit_entry(
                principal, "read_personal", f"monitor:{monitor_id}", "ok", where=monitor.station
            )
        )
        return self._personal(monitor_id) or monitor.personal

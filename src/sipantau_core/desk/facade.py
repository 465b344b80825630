"""The desk's facade and composition root: ``Desk.open(deployment, storage=URL,
plugins=...)`` builds a running desk from its use cases.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from sipantau_core.deployment import Deployment
from sipantau_core.desk._base import Clock, _utcnow
from sipantau_core.desk.audit_log import _desk_key_from_settings
from sipantau_core.desk.correcting import Correcting
from sipantau_core.desk.media import Media
from sipantau_core.desk.progress import Progress
from sipantau_core.desk.queries import Queries
from sipantau_core.desk.release import Releasing
from sipantau_core.desk.staff import Staff
from sipantau_core.desk.submitting import Submitting
from sipantau_core.domain import (
    IncidentCatalogue,
)
from sipantau_core.notify import Notifier, TickResult
from sipantau_core.plugins import PluginError, Plugins
from sipantau_core.ports import (
    Storage,
)
from sipantau_core.rules import default_registry
from sipantau_core.sealing import Sealer, key_from_settings
from sipantau_core.signing import (
    DeviceKey,
)


class Desk(Submitting, Correcting, Releasing, Queries, Progress, Staff, Media):
    """A running desk. Build one with :meth:`open`.

    Its calls come from the use cases it is made of: submitting
    (:mod:`~sipantau_core.desk.submitting`), correcting (:mod:`~sipantau_core.desk.correcting`),
    release (:mod:`~sipantau_core.desk.release`), queries (:mod:`~sipantau_core.desk.queries`),
    progress (:mod:`~sipantau_core.desk.progress`), its people
    (:mod:`~sipantau_core.desk.staff`) and the photos reports reference
    (:mod:`~sipantau_core.desk.media`); ``desk.audit`` is its
    :class:`~sipantau_core.desk.audit_log.AuditLog`."""

    @classmethod
    def open(
        cls,
        deployment: Deployment | str | Path,
        storage: str | Storage = "memory://",
        plugins: Iterable[object] = (),
        *,
        autoload: bool | None = None,
        clock: Clock | None = None,
        desk_key: DeviceKey | None = None,
    ) -> Desk:
        """Build a running desk: load the deployment (a directory or a ``Deployment``),
        the plugins (entry points, then ``plugins``), the storage for the URL (or a
        ready :class:`~sipantau_core.ports.Storage`), the rules (built-ins plus rule
        packs) and the incident catalogue (defaults, deployment, plugins).

        Security settings come from the deployment's ``[settings]``:
        ``personal_data_key_env`` (monitors' personal data sealed at rest),
        ``desk_key_env`` (the Ed25519 seed that signs audit checkpoints; or ``desk_key``
        here), ``require_signatures``, ``signature_window_hours`` and
        ``max_media_bytes`` (the largest photo taken, 8 MiB by default)."""
        dep = deployment if isinstance(deployment, Deployment) else Deployment.load(deployment)
        pm = Plugins.load(plugins, autoload=autoload)
        rules = default_registry()
        catalogue = IncidentCatalogue(dep.incident_categories.values())
        try:
            for rule in pm.rule_packs(dep):
                rules.register(rule)
            for category in pm.incident_categories(dep):
                catalogue.add(category)
        except ValueError as e:
            raise PluginError(str(e), code="plugin.conflict") from e
        store = storage if not isinstance(storage, str) else pm.make_storage(storage, dep)
        seal_key = key_from_settings(dep.settings)
        desk = cls(
            dep,
            store,
            pm,
            rules=rules,
            incident_categories=catalogue,
            clock=clock or _utcnow,
            desk_key=desk_key or _desk_key_from_settings(dep.settings),
            sealer=Sealer(seal_key) if seal_key is not None else None,
        )
        _ = desk.max_media_bytes  # a bad setting fails here, not at the first upload
        desk._enrol_deployment_monitors()
        desk._count_stages()
        desk.notifier = Notifier.for_desk(desk, pm)
        pm.desk_opened(desk)
        return desk

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()
        self.storage.close()

    def tick(self, now: datetime | None = None) -> TickResult:
        """The desk's periodic job (run it every few seconds): find the TPS silent past a
        stage deadline (in each TPS's own time zone), progress milestones and a quick
        count that became callable; queue their alerts; send the notifications that are
        due, in digests, redacted to each channel's clearance; record the outcomes. Does
        nothing without ``[settings.notifications]``. See ``docs/notifications.md``."""
        if self.notifier is None:
            return TickResult()
        return self.notifier.tick(now or self.clock())

    def __enter__(self) -> Desk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

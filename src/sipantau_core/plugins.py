"""The typed facade over pluggy: loading plugins and calling their hooks.

External plugins load from the ``sipantau`` entry-point group. Setting the environment
variable ``SIPANTAU_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the plugins that sipantau
itself ships (its built-ins are registered through the same entry point as anyone's);
others are then passed explicitly (``Desk.open(..., plugins=[...])``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from sipantau_core import hookspecs
from sipantau_core.errors import SipantauError, StorageError

if TYPE_CHECKING:
    from sipantau_core.deployment import Deployment
    from sipantau_core.domain import IncidentCategory
    from sipantau_core.events import Channel, DeskView, RegionEvent, ReportEvent
    from sipantau_core.ports import Storage
    from sipantau_core.rules import Rule

__all__ = ["AUTOLOAD_ENV", "ENTRY_POINT_GROUP", "PluginError", "Plugins"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sipantau"
AUTOLOAD_ENV = "SIPANTAU_DISABLE_PLUGIN_AUTOLOAD"
OWN_DISTRIBUTION = "sipantau"


class PluginError(SipantauError):
    """A plugin could not be loaded or implements a hook that does not exist."""

    code = "plugin.invalid"


def _autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


class Plugins:
    """The plugins of one desk, with one typed method per hook."""

    def __init__(self, pm: pluggy.PluginManager):
        self._pm = pm

    @classmethod
    def load(cls, extra: Iterable[object] = (), *, autoload: bool | None = None) -> Plugins:
        """Load the ``sipantau`` entry points (all, or only sipantau's own when autoload
        is off) and register ``extra`` plugins after them; then check that every hook a
        plugin implements exists."""
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        load_all = not _autoload_disabled() if autoload is None else autoload
        for ep in _entry_points():
            if not load_all and not _is_own(ep):
                continue
            try:
                plugin = ep.load()
            except Exception as e:
                raise PluginError(
                    f"the plugin {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}",
                    code="plugin.load_failed",
                ) from e
            if pm.is_registered(plugin):
                continue
            _register(pm, plugin, f"{ep.group}:{ep.name}")
        for plugin in extra:
            if not pm.is_registered(plugin):
                _register(pm, plugin)
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as e:
            raise PluginError(str(e), code="plugin.unknown_hook") from e
        _refuse_event_wrappers(pm)
        return cls(pm)

    @property
    def manager(self) -> pluggy.PluginManager:
        """The underlying pluggy manager (for introspection and tests)."""
        return self._pm

    def names(self) -> list[str]:
        return sorted(name for name, _ in self._pm.list_name_plugin() if name)

    # -- storage ---------------------------------------------------------------------------

    def schemes(self) -> list[str]:
        found: list[Iterable[str]] = self._pm.hook.sipantau_storage_schemes()
        return sorted({s for group in found for s in group})

    def make_storage(self, url: str, deployment: Deployment) -> Storage:
        storage: Storage | None = self._pm.hook.sipantau_storage(url=url, deployment=deployment)
        if storage is None:
            scheme = url.split(":", 1)[0]
            raise StorageError(
                f"no plugin serves storage URLs of scheme {scheme!r}; "
                f"known schemes: {self.schemes()}",
                code="storage.unknown_scheme",
            )
        return storage

    # -- rules and catalogues --------------------------------------------------------------

    def rule_packs(self, deployment: Deployment) -> list[Rule]:
        packs: list[Iterable[Rule]] = self._pm.hook.sipantau_rule_packs(deployment=deployment)
        return [rule for pack in reversed(packs) for rule in pack]

    def incident_categories(self, deployment: Deployment) -> list[IncidentCategory]:
        found: list[Iterable[IncidentCategory]] = self._pm.hook.sipantau_incident_categories(
            deployment=deployment
        )
        return [c for group in reversed(found) for c in group]

    # -- notification channels -------------------------------------------------------------

    def notification_channel(
        self, name: str, kind: str, settings: Mapping[str, Any], deployment: Deployment
    ) -> Channel | None:
        """The channel ``name`` of ``kind`` from the first plugin that makes it."""
        channel: Channel | None = self._pm.hook.sipantau_notification_channel(
            name=name, kind=kind, settings=settings, deployment=deployment
        )
        return channel

    # -- SMS gateways ------------------------------------------------------------------------

    def sms_gateway(self, name: str, settings: Mapping[str, Any]) -> Any | None:
        """The SMS gateway ``name`` from the first plugin that serves it, or ``None``."""
        return self._pm.hook.sipantau_sms_gateway(name=name, settings=settings)

    def sms_gateway_names(self) -> list[str]:
        found: list[Iterable[str]] = self._pm.hook.sipantau_sms_gateway_names()
        return sorted({n for group in found for n in group})

    # -- events ----------------------------------------------------------------------------

    def desk_opened(self, desk: DeskView) -> None:
        self._notify("sipantau_desk_opened", desk=desk)

    def report_event(self, desk: DeskView, event: ReportEvent) -> None:
        self._notify(f"sipantau_report_{event.kind}", desk=desk, event=event)

    def report_events(self, desk: DeskView, events: Iterable[ReportEvent]) -> None:
        """:meth:`report_event` for each of ``events`` in order; a kind of event that no
        plugin listens to costs nothing more (the bulk path announces one a report)."""
        listened: dict[str, bool] = {}
        for event in events:
            kind = event.kind
            heard = listened.get(kind)
            if heard is None:
                heard = listened[kind] = bool(
                    getattr(self._pm.hook, f"sipantau_report_{kind}").get_hookimpls()
                )
            if heard:
                self._notify(f"sipantau_report_{kind}", desk=desk, event=event)

    def region_released(self, desk: DeskView, event: RegionEvent) -> None:
        self._notify("sipantau_region_released", desk=desk, event=event)

    def _notify(self, hook: str, **kwargs: Any) -> None:
        """Call an event hook. The transaction has committed already, so a plugin that
        fails is logged and does not undo or fail the desk's call."""
        caller = getattr(self._pm.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception:
                log.exception("sipantau: plugin %s failed in %s", impl.plugin_name, hook)


_EVENT_HOOKS = (
    "sipantau_desk_opened",
    "sipantau_report_accepted",
    "sipantau_report_flagged",
    "sipantau_report_corrected",
    "sipantau_report_overridden",
    "sipantau_report_rejected",
    "sipantau_region_released",
)


def _refuse_event_wrappers(pm: pluggy.PluginManager) -> None:
    """Event hooks are called one by one, each failure isolated: a wrapper would never
    run, so it is refused at load time rather than ignored."""
    for name in _EVENT_HOOKS:
        for impl in getattr(pm.hook, name).get_hookimpls():
            if impl.hookwrapper or impl.wrapper:
                raise PluginError(
                    f"the plugin {impl.plugin_name!r} implements the event hook {name} as a "
                    "wrapper; event hooks are plain calls",
                    code="plugin.invalid_hook",
                )


def _register(pm: pluggy.PluginManager, plugin: object, name: str | None = None) -> None:
    """Register ``plugin``; a hook implementation whose arguments the hook does not have
    (or a name already taken) is the plugin's error, not pluggy's."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as e:
        raise PluginError(str(e), code="plugin.invalid_hook") from e
    except ValueError as e:
        raise PluginError(str(e), code="plugin.duplicate_name") from e


def _entry_points() -> Sequence[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (not _is_own(ep), ep.name))


def _is_own(ep: EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.name.lower() == OWN_DISTRIBUTION

"""Every ``sipantau_*`` hook: what a plugin may provide to a desk.

A plugin is any object or module with functions marked ``@hookimpl`` (``from
sipantau_core import hookimpl``), registered through the ``sipantau`` entry-point group
or passed to ``Desk.open(..., plugins=[...])``. Hooks marked *firstresult* stop at the
first plugin that answers (returns something other than ``None``); the others collect
every plugin's answer. Application code never calls these directly: it goes through
:class:`sipantau_core.plugins.Plugins`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from sipantau_core.deployment import Deployment
    from sipantau_core.domain import IncidentCategory
    from sipantau_core.events import Channel, DeskView, RegionEvent, ReportEvent
    from sipantau_core.ports import Storage
    from sipantau_core.rules import Rule

PROJECT = "sipantau"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# ---------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def sipantau_storage(url: str, deployment: Deployment) -> Storage | None:
    """Open the storage for ``url`` if this plugin serves its scheme.

    :param url: the storage URL given to ``Desk.open`` (``memory://``,
        ``sqlite:///desk.db``, ``postgresql://…``).
    :param deployment: the desk's deployment (its settings may configure the backend).
    :return: a :class:`~sipantau_core.ports.Storage`, or ``None`` when the scheme is not
        this plugin's. *firstresult*: the first plugin that answers wins.
    """


@hookspec
def sipantau_storage_schemes() -> Iterable[str]:
    """The URL schemes this plugin's :func:`sipantau_storage` serves (for error messages
    and ``sipantau plugins``).

    :return: scheme names such as ``["sqlite", "postgresql"]``.
    """


# ---------------------------------------------------------------------------------------
# Rules and catalogues
# ---------------------------------------------------------------------------------------


@hookspec
def sipantau_rule_packs(deployment: Deployment) -> Iterable[Rule]:
    """Extra tally rules for this deployment (a regency's own rules).

    :param deployment: the desk's deployment.
    :return: rules implementing :class:`~sipantau_core.rules.Rule`; their codes must not
        clash with the built-ins or with another plugin's.
    """


@hookspec
def sipantau_incident_categories(deployment: Deployment) -> Iterable[IncidentCategory]:
    """Extra incident categories for this deployment.

    :param deployment: the desk's deployment.
    :return: :class:`~sipantau_core.domain.IncidentCategory` objects; a code already in
        the catalogue must be defined identically.
    """


# ---------------------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def sipantau_notification_channel(
    name: str, kind: str, settings: Mapping[str, Any], deployment: Deployment
) -> Channel | None:
    """Make the notification channel ``name`` if this plugin makes channels of ``kind``.

    :param name: the channel's name (``[settings.notifications.channels.NAME]``).
    :param kind: its ``kind`` (``webhook``, ``telegram``, ``email``, ``console`` or a
        plugin's own).
    :param settings: the channel's table (``kind``, ``clearance`` and the kind's own
        settings; secrets are named by environment variables, never written there).
    :param deployment: the desk's deployment.
    :return: a :class:`~sipantau_core.events.Channel` with the configured clearance, or
        ``None`` when ``kind`` is not this plugin's. *firstresult*: the first plugin
        that answers wins.
    """


# ---------------------------------------------------------------------------------------
# SMS gateways
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def sipantau_sms_gateway(name: str, settings: Mapping[str, Any]) -> Any | None:
    """Open the SMS gateway called ``name`` if this plugin serves it.

    :param name: the gateway named by ``[settings.sms] gateway`` (``generic`` by default).
    :param settings: the deployment's ``[settings.sms]`` table.
    :return: an object with the ``sipantau_adapters.sms.SmsGateway`` interface (parse an
        inbound webhook, send a reply), or ``None``. *firstresult*: the first plugin that
        answers wins.
    """


@hookspec
def sipantau_sms_gateway_names() -> Iterable[str]:
    """The gateway names this plugin's :func:`sipantau_sms_gateway` serves.

    :return: names such as ``["generic"]``.
    """


# ---------------------------------------------------------------------------------------
# Lifecycle events (called after the transaction committed)
# ---------------------------------------------------------------------------------------


@hookspec
def sipantau_desk_opened(desk: DeskView) -> None:
    """The desk is open and its storage reachable.

    :param desk: the new desk.
    """


@hookspec
def sipantau_report_accepted(desk: DeskView, event: ReportEvent) -> None:
    """A report (a first version) was stored and, for a tally, counted.

    :param desk: the desk.
    :param event: the report, its receipt, the principal and the time.
    """


@hookspec
def sipantau_report_flagged(desk: DeskView, event: ReportEvent) -> None:
    """A tally was stored but breaks a hard rule: it is kept out of the counts.

    :param desk: the desk.
    :param event: the report, its receipt (with the violations), the principal, the time.
    """


@hookspec
def sipantau_report_corrected(desk: DeskView, event: ReportEvent) -> None:
    """A newer version of a report was stored (``event.receipt.version > 1``); its own
    status (accepted or flagged) is in the receipt.

    :param desk: the desk.
    :param event: the new version, its receipt, the principal, the time.
    """


@hookspec
def sipantau_report_overridden(desk: DeskView, event: ReportEvent) -> None:
    """A desk officer counted a flagged tally anyway.

    :param desk: the desk.
    :param event: the report, the new receipt, the officer, the time; ``event.reason``.
    """


@hookspec
def sipantau_report_rejected(desk: DeskView, event: ReportEvent) -> None:
    """A desk officer rejected a report; it no longer counts.

    :param desk: the desk.
    :param event: the report, the new receipt, the officer, the time; ``event.reason``.
    """


@hookspec
def sipantau_region_released(desk: DeskView, event: RegionEvent) -> None:
    """A coordinator released a region's aggregates to viewers.

    :param desk: the desk.
    :param event: the region, the contest (``None``: all), the coordinator, the time.
    """

"""The desk: the composition root and the use cases of an election-day desk.

``Desk.open(deployment, storage=URL, plugins=...)`` builds a running desk. Every call
names a :class:`~sipantau_core.access.Principal`. Reports go in through :meth:`Desk.submit`
(or :meth:`Desk.submit_many`), are checked, stored exactly once and counted in one
transaction; queries read them back under the access policy.

The package holds one module per use case, put together by the facade :class:`Desk`
(``facade``):

- ``checking`` and ``submitting``: reports read, checked, stored and counted (with
  ``parallel``, the bulk path shared out among forked workers);
- ``correcting``: a desk officer's override or rejection;
- ``release``: a region's counts released to viewers, a sample committed;
- ``queries``: counts, reports, TPS status, incidents, the audit history;
- ``progress``: the progress count and the anomaly screens;
- ``staff``: monitors, device keys, staff tokens, personal data;
- ``media``: the photos reports reference (tally sheets, incidents);
- ``audit_log``: ``desk.audit``.

The values the desk answers live in :mod:`sipantau_core.results`, the events it
announces in :mod:`sipantau_core.events`; both are re-exported here.
"""

from __future__ import annotations

from sipantau_core.desk._base import MAX_RETRIES as MAX_RETRIES
from sipantau_core.desk._base import Clock as Clock
from sipantau_core.desk.audit_log import AuditLog
from sipantau_core.desk.checking import Submission as Submission
from sipantau_core.desk.facade import Desk
from sipantau_core.events import RegionEvent, ReportEvent
from sipantau_core.results import (
    BulkResult,
    IncidentView,
    MediaReceipt,
    Receipt,
    StageState,
    StationStatus,
    Tally,
    TpsAnomaly,
)
from sipantau_core.results import (
    ReceiptStatus as ReceiptStatus,
)

__all__ = [
    "AuditLog",
    "BulkResult",
    "Desk",
    "IncidentView",
    "MediaReceipt",
    "Receipt",
    "RegionEvent",
    "ReportEvent",
    "StageState",
    "StationStatus",
    "Tally",
    "TpsAnomaly",
]

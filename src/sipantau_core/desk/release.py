"""Release: a region's aggregates opened to viewers, and the quick-count sample committed
to the audit log before election day.
"""

from __future__ import annotations

from sipantau_core.access import Action, Principal
from sipantau_core.desk._base import DeskBase
from sipantau_core.domain import (
    RegionCode,
)
from sipantau_core.events import RegionEvent
from sipantau_core.ports import (
    AuditRecord,
    ReleaseRecord,
    WriteBatch,
)
from sipantau_core.quickcount import SampleDraw


class Releasing(DeskBase):
    """A coordinator releases a region's counts to viewers; a quick-count sample is
    committed before the day."""

    def release(
        self, region: RegionCode | str, *, principal: Principal, contest: str | None = None
    ) -> None:
        """Release a region's aggregates (for one contest, or all) to viewers."""
        code = self._region(region)
        if contest is not None:
            self._contest(contest)
        self._guard(principal, Action.RELEASE, code, what=f"region:{code}")
        now = self.clock()
        entry = self._audit_entry(principal, "release", f"region:{code}", "ok", now, where=code)
        self._write(
            WriteBatch(
                releases=[ReleaseRecord(code.value, contest, principal.id, now)], audit=[entry]
            )
        )
        self.plugins.region_released(
            self._as_view(), RegionEvent(code.value, contest, principal, now)
        )

    def commit_sample(self, sample: SampleDraw, *, principal: Principal) -> AuditRecord:
        """Record a drawn quick-count sample's digest in the audit log before election
        day, so nobody can choose the sample after seeing results."""
        self._guard(principal, Action.RELEASE, self.deployment.region, what="sample")
        entry = self._audit_entry(
            principal,
            "commit_sample",
            f"sample:{sample.digest}",
            "ok",
            where=self.deployment.region,
        )
        self._write_audit(entry)
        return entry

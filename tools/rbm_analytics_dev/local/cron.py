"""The unix-cron schedules Cloud Scheduler accepts, evaluated in UTC.

A thin wrapper over ``cronsim`` (a maintained evaluator with Debian cron's
semantics: names for months and weekdays, 0 and 7 both Sunday, and a day
matching either day field when both are restricted), so the local scheduler
fires when Cloud Scheduler would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

# Any fixed instant: parsing needs a start time, the schedule does not.
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ONE_MINUTE = timedelta(minutes=1)


class CronError(ValueError):
    """A schedule that is not valid unix-cron syntax, or never fires."""


@dataclass(frozen=True)
class Cron:
    """A parsed schedule; ``next_after`` gives its next firing time in UTC."""

    expression: str

    @classmethod
    def parse(cls, expression: str) -> Cron:
        normalized = " ".join(expression.split())
        if len(normalized.split()) != 5:
            raise CronError(
                "a schedule has 5 fields (minute hour day-of-month month day-of-week), "
                f"got {len(normalized.split())} in {expression!r}"
            )
        try:
            CronSim(normalized, _EPOCH)
        except CronSimError as exc:
            raise CronError(f"schedule {expression!r}: {exc}") from None
        return cls(normalized)

    def next_after(self, after: datetime) -> datetime:
        """The first firing time strictly after ``after`` (UTC, whole minutes)."""
        try:
            return next(CronSim(self.expression, after.astimezone(UTC)))
        except (CronSimError, StopIteration):
            raise CronError(f"schedule {self.expression!r} never fires") from None

    def matches(self, dt: datetime) -> bool:
        """Whether the schedule fires at ``dt``'s minute."""
        dt = dt.astimezone(UTC).replace(second=0, microsecond=0)
        return self.next_after(dt - _ONE_MINUTE) == dt

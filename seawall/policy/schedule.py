"""`schedule:` — a cron expression with an explicit time zone, and the longest gap it leaves.

The longest gap is what the RPO check compares against: a schedule that cannot meet its dataset's
RPO is refused before anything is deployed.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from seawall.policy.fields import Strict


def _check_cron(expr: str) -> str:
    from cronsim import CronSim, CronSimError  # imported late: only policy validation needs it

    try:
        CronSim(expr, datetime(2026, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError) as exc:
        raise ValueError(f"invalid cron {expr!r}: {exc} (allowed: 5 fields 'minute hour day month weekday', "
                         "e.g. '0 2 * * *')") from None
    return expr


class Schedule(Strict):
    """A cron schedule with an explicit time zone (no silent UTC-vs-local surprises)."""

    cron: str = Field(description="Five-field cron expression, e.g. '0 2 * * *'.")
    timezone: str = Field(description="IANA time zone, e.g. 'Europe/Berlin' or 'UTC'.")

    _cron = field_validator("cron")(_check_cron)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} "
                             "(allowed: an IANA name like 'UTC' or 'Europe/Berlin')") from None
        return value

    def longest_gap(self, horizon: timedelta = timedelta(days=35)) -> timedelta:
        """The longest time between two consecutive runs over the next `horizon` (RPO bound)."""
        from cronsim import CronSim

        start = datetime(2026, 1, 5, tzinfo=ZoneInfo(self.timezone))
        times, it = [], CronSim(self.cron, start)
        for when in it:
            times.append(when)
            if when - start > horizon or len(times) > 5000:
                break
        return max((b - a for a, b in itertools.pairwise(times)), default=horizon)

"""Retention: a pure, explainable plan of which backups to keep and which to remove.

`plan_retention(backups, policy, now)` decides; deleting is a separate step (`flows.retention`).
The rules follow restic's `ApplyPolicy`, per dataset and over DONE backups only, newest first:

- `keep_last N`: the N newest backups.
- `keep_hourly/daily/weekly/monthly/yearly N`: the newest backup in each of the last N periods
  (local time of `policy.timezone`) that have backups; periods without backups do not count.
- `keep_within D`: every backup started within D of the dataset's newest backup. Relative to the
  newest backup, not to `now` (restic): backups that stopped arriving are never all expired.

Safety interlocks on top of the rules (Barman `minimum_redundancy`, WAL-G's lost newest backups):

- ordering uses the manifests' own authenticated `started_at`, never object names;
- FAILED and unfinished backups never count toward any rule or toward redundancy; unfinished ones
  (and FAILED ones, for inspection) younger than `unfinished_grace` are always kept;
- the newest verified-restorable backup is kept (`keep_newest_verified`);
- SUSPICIOUS backups (`seawall.readiness.anomaly`) are kept for investigation, and so is the newest
  clean backup before each of them (the one to restore after an attack);
- at least `min_redundancy` DONE backups stay: removals are held back newest first, and if the
  dataset has fewer DONE backups than that, nothing of it is removed (`refused`).
"""

from __future__ import annotations

import re
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from seawall.errors import ConfigError
from seawall.manifest import BackupStatus

_DURATION_PART = re.compile(r"(\d+)(y|w|d|h|min|s)")
_UNIT_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "min": 60, "s": 1}
_UNFINISHED = (BackupStatus.STARTED, BackupStatus.UPLOADING, BackupStatus.VERIFYING)


def parse_duration(text: str) -> timedelta:
    """`"7d"`, `"36h"`, `"1y2w"`, `"90min"` → timedelta (units y=365d, w, d, h, min, s).

    A bare `m` is refused: months or minutes would be a dangerous guess for a retention window.
    """
    compact = text.strip().replace(" ", "").lower()
    if not compact or _DURATION_PART.sub("", compact) or not _DURATION_PART.search(compact):
        raise ValueError(f"{text!r} is not a duration: use e.g. 7d, 36h, 2w, 1y (units y, w, d, h, min, s)")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(compact))
    if seconds <= 0:
        raise ValueError(f"duration {text!r} is zero: it would keep nothing")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest `parse_duration` spelling of a whole number of seconds (`"36h"`, `"7d"`)."""
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "min"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


_PERIODS: dict[str, Callable[[datetime], Any]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}
_PERIOD_LABELS: dict[str, str] = {
    "hourly": "%Y-%m-%d %H:00", "daily": "%Y-%m-%d", "weekly": "%G-W%V", "monthly": "%Y-%m", "yearly": "%Y",
}


class RetentionPolicy(BaseModel):
    """Which backups of each dataset to keep.

    Example:
        ```python
        policy = RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=12, min_redundancy=2)
        plan = plan_retention(vault.list_backups(), policy, datetime.now(UTC))
        ```
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_last: int | None = Field(None, ge=0, description="Keep the N newest DONE backups.")
    keep_hourly: int | None = Field(None, ge=0, description="Newest backup of each of the last N hours with backups.")
    keep_daily: int | None = Field(None, ge=0, description="Newest backup of each of the last N days with backups.")
    keep_weekly: int | None = Field(None, ge=0, description="Newest backup of each of the last N ISO weeks.")
    keep_monthly: int | None = Field(None, ge=0, description="Newest backup of each of the last N months.")
    keep_yearly: int | None = Field(None, ge=0, description="Newest backup of each of the last N years.")
    keep_within: timedelta | None = Field(
        None, description="Keep every backup started within this duration of the newest one (e.g. 7d, 36h)."
    )
    min_redundancy: int = Field(1, ge=1, description="Never leave fewer DONE backups of a dataset than this.")
    keep_newest_verified: bool = Field(True, description="Never remove the newest verified-restorable backup.")
    unfinished_grace: timedelta = Field(
        timedelta(hours=24), description="Unfinished or FAILED backups younger than this are kept."
    )
    timezone: str | None = Field(None, description="IANA zone for the periods (default: the system's local time).")

    @field_validator("keep_within", "unfinished_grace", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        # ISO 8601 ("P1D", what model_dump(mode="json") writes) is left to pydantic.
        if isinstance(value, str) and not value.strip().upper().startswith("P"):
            return parse_duration(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _coherent(self) -> RetentionPolicy:
        if self.keep_within is not None and self.keep_within <= timedelta(0):
            raise ValueError("keep_within must be positive")
        if self.unfinished_grace <= timedelta(0):
            raise ValueError("unfinished_grace must be positive")
        counts = self.counts()
        if not counts and self.keep_within is None:
            raise ValueError("this policy keeps nothing: give at least one keep_* rule (e.g. keep_daily=7)")
        capacity = sum(counts.values())
        if self.keep_within is None and self.min_redundancy > capacity:
            raise ValueError(
                f"min_redundancy {self.min_redundancy} contradicts the keep rules, which keep at most "
                f"{capacity} backups: raise the keep_* counts or lower min_redundancy"
            )
        return self

    def counts(self) -> dict[str, int]:
        """The count rules in use, `{"last": 3, "daily": 7, ...}` (zero means unused)."""
        rules = {"last": self.keep_last, **{p: getattr(self, f"keep_{p}") for p in _PERIODS}}
        return {name: n for name, n in rules.items() if n}

    def zone(self) -> tzinfo | None:
        return zoneinfo.ZoneInfo(self.timezone) if self.timezone else None

    def describe(self) -> str:
        """One line, e.g. `keep last 3, daily 7, within 2w; min redundancy 2`."""
        parts = [f"{name} {n}" for name, n in self.counts().items()]
        if self.keep_within:
            parts.append(f"within {format_duration(self.keep_within)}")
        return f"keep {', '.join(parts)}; min redundancy {self.min_redundancy}"


def make_policy(**options: Any) -> RetentionPolicy:
    """A `RetentionPolicy`, or a one-line ConfigError naming the first problem (CLI and flows).

    Example:
        ```python
        make_policy(keep_daily=7, keep_within="36h")
        ```
    """
    try:
        return RetentionPolicy(**options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid retention policy: {where + ': ' if where else ''}{message}",
                          hint="see `seawall retention --help`") from None


#: Used when a flow is given no policy: a week of dailies, a month of weeklies, a year of monthlies.
DEFAULT_POLICY = RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=12, min_redundancy=2)


class BackupLike(Protocol):
    """What the planner reads from a backup (a `Manifest` fits)."""

    backup_id: str
    dataset: str
    status: BackupStatus
    started_at: datetime


class RetentionPlan(BaseModel):
    """The planner's verdict: every backup is either kept (with reasons) or removed (with one)."""

    keep: dict[str, list[str]] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)
    remove_reasons: dict[str, str] = Field(default_factory=dict)
    refused: str | None = Field(None, description="Why removals the rules asked for were not planned.")
    datasets: dict[str, str] = Field(default_factory=dict, description="backup id → dataset.")

    def merge(self, other: RetentionPlan) -> None:
        self.keep.update(other.keep)
        self.remove.extend(other.remove)
        self.remove_reasons.update(other.remove_reasons)
        self.datasets.update(other.datasets)
        if other.refused:
            self.refused = f"{self.refused}; {other.refused}" if self.refused else other.refused


def plan_retention(backups: Iterable[BackupLike], policy: RetentionPolicy, now: datetime,
                   verified_ids: frozenset[str] = frozenset(),
                   suspicious: dict[str, str] | None = None) -> RetentionPlan:
    """Plan which backups to keep and which to remove; pure (no I/O, no clock).

    Args:
        backups: Every backup of the datasets concerned, any status, any order.
        policy: The retention policy, applied to each dataset on its own.
        now: The current time (timezone-aware), used only for the unfinished/FAILED grace period.
        verified_ids: Backups known to restore (e.g. from restore drills); the newest is kept.
        suspicious: Backups flagged SUSPICIOUS (id → reason): kept, with the clean one before each.

    Returns:
        A plan naming every backup exactly once, in `keep` or in `remove`.
    """
    by_dataset: dict[str, list[BackupLike]] = defaultdict(list)
    for backup in backups:
        by_dataset[backup.dataset].append(backup)
    plan = RetentionPlan()
    for dataset in sorted(by_dataset):
        plan.merge(_plan_dataset(dataset, by_dataset[dataset], policy, now, verified_ids, suspicious or {}))
    return plan


def _newest_first(backups: Iterable[BackupLike]) -> list[BackupLike]:
    return sorted(backups, key=lambda b: (b.started_at, b.backup_id), reverse=True)


def _plan_dataset(dataset: str, backups: list[BackupLike], policy: RetentionPolicy, now: datetime,
                  verified_ids: frozenset[str], suspicious: dict[str, str]) -> RetentionPlan:
    plan = RetentionPlan(datasets={b.backup_id: dataset for b in backups})
    done = _newest_first(b for b in backups if b.status == BackupStatus.DONE)
    _plan_not_done(plan, [b for b in backups if b.status != BackupStatus.DONE], policy, now)
    reasons = _rule_reasons(done, policy)
    if policy.keep_newest_verified:
        verified = next((b for b in done if b.backup_id in verified_ids), None)
        if verified is not None:
            reasons[verified.backup_id].append("newest verified")
    _shield_suspicious(done, reasons, suspicious)
    _hold_back(dataset, done, reasons, policy.min_redundancy, plan)
    for backup in done:
        if reasons[backup.backup_id]:
            plan.keep[backup.backup_id] = reasons[backup.backup_id]
        else:
            plan.remove.append(backup.backup_id)
            plan.remove_reasons[backup.backup_id] = "no keep rule selects it"
    plan.remove.sort()
    return plan


def _plan_not_done(plan: RetentionPlan, others: list[BackupLike], policy: RetentionPolicy,
                   now: datetime) -> None:
    """FAILED and unfinished backups: kept while younger than the grace period, removable after."""
    grace = format_duration(policy.unfinished_grace)
    for backup in others:
        state = "unfinished" if backup.status in _UNFINISHED else "failed"
        age = now - backup.started_at
        if age < policy.unfinished_grace:
            detail = "may still be running" if state == "unfinished" else "kept for inspection"
            plan.keep[backup.backup_id] = [f"{state}, younger than the {grace} grace period ({detail})"]
        else:
            plan.remove.append(backup.backup_id)
            plan.remove_reasons[backup.backup_id] = f"{state} ({backup.status}), older than the {grace} grace period"


def _rule_reasons(done: Sequence[BackupLike], policy: RetentionPolicy) -> dict[str, list[str]]:
    """restic's walk, newest first: each rule keeps a backup when it opens a new period."""
    reasons: dict[str, list[str]] = {b.backup_id: [] for b in done}
    zone = policy.zone()
    for name, count in policy.counts().items():
        last_period: Any = object()
        kept = 0
        for index, backup in enumerate(done):
            if kept == count:
                break
            if name == "last":
                reasons[backup.backup_id].append(f"last {index + 1}/{count}")
                kept += 1
                continue
            local = backup.started_at.astimezone(zone)
            period = _PERIODS[name](local)
            if period != last_period:
                reasons[backup.backup_id].append(f"{name} {local.strftime(_PERIOD_LABELS[name])}")
                last_period, kept = period, kept + 1
    if policy.keep_within is not None and done:
        horizon = done[0].started_at - policy.keep_within
        for backup in done:
            if backup.started_at >= horizon:
                reasons[backup.backup_id].append(f"within {format_duration(policy.keep_within)} of the newest")
    return reasons


def _shield_suspicious(done: Sequence[BackupLike], reasons: dict[str, list[str]],
                       suspicious: dict[str, str]) -> None:
    """Keep every suspicious backup, and the newest clean one older than each (`done` is newest first)."""
    for index, backup in enumerate(done):
        if backup.backup_id not in suspicious:
            continue
        reasons[backup.backup_id].append(f"suspicious, kept for investigation: {suspicious[backup.backup_id]}")
        clean = next((b for b in done[index + 1:] if b.backup_id not in suspicious), None)
        if clean is not None and not any(r.startswith("last clean before") for r in reasons[clean.backup_id]):
            reasons[clean.backup_id].append(f"last clean before suspicious {backup.backup_id}")


def _hold_back(dataset: str, done: Sequence[BackupLike], reasons: dict[str, list[str]], minimum: int,
               plan: RetentionPlan) -> None:
    """Keep the newest removable DONE backups until `minimum` DONE backups remain."""
    if not any(not reasons[b.backup_id] for b in done):
        return
    if len(done) < minimum:
        for backup in done:
            reasons[backup.backup_id].append(f"min redundancy {minimum}: only {len(done)} DONE")
        plan.refused = (f"{dataset}: only {len(done)} DONE backup(s), fewer than min_redundancy {minimum}: "
                        "nothing of this dataset is removed")
        return
    kept = sum(1 for b in done if reasons[b.backup_id])
    for backup in done:
        if kept >= minimum:
            break
        if not reasons[backup.backup_id]:
            reasons[backup.backup_id].append(f"min redundancy {minimum}")
            kept += 1

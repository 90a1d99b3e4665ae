"""Policy checks for S3 lifecycle rules: a rule must not move data before retention allows.

Each vault's `lifecycle:` steps (chunks move to a colder class at an age) are checked against the
retention of every dataset that keeps backups in that vault (as `vault` or `copy_to`):

- no step to an archive class (GLACIER, DEEP_ARCHIVE: a restore waits hours) before the dataset's
  `keep_within` ends: those are the backups retention keeps for quick restores;
- no step that lands data in a class shortly before retention deletes it: if the longest a backup
  is kept (keep_within, keep_hourly/daily/weekly/monthly/yearly periods, keep_last times the schedule's
  gap) falls inside the class's minimum billed storage after the move, the data is deleted early
  and billed for the minimum anyway. Steps at or after that horizon only move chunks that newer
  backups still share (deduplication), which is what tiering is for;
- S3's own rules: whole days, 30 days before STANDARD_IA/ONEZONE_IA, each step later and colder
  than the one before, and lifecycle rules only on s3:// vaults.

Every problem is reported at once with its file:line by `seawall.policy`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from seawall.stores.s3_tiers import CLASSES

DAY = timedelta(days=1)


def retention_horizon(retention: Any, gap: timedelta) -> timedelta | None:
    """The longest a backup is kept under `retention` (None: it says nothing about time)."""
    if retention is None:
        return None
    parts = [retention.keep_within,
             timedelta(hours=retention.keep_hourly) if retention.keep_hourly else None,
             timedelta(days=retention.keep_daily) if retention.keep_daily else None,
             timedelta(weeks=retention.keep_weekly) if retention.keep_weekly else None,
             timedelta(days=31 * retention.keep_monthly) if retention.keep_monthly else None,
             timedelta(days=366 * retention.keep_yearly) if retention.keep_yearly else None,
             gap * retention.keep_last if retention.keep_last else None]
    known = [p for p in parts if p]
    return max(known) if known else None


def lifecycle_problems(policy: Any) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    for name, vault in policy.vaults.items():
        if vault.lifecycle:
            out += _vault_problems(policy, name, vault)
    return out


def _vault_problems(policy: Any, name: str, vault: Any) -> list[tuple[tuple, str]]:
    from seawall.policy.fields import human as _human

    out: list[tuple[tuple, str]] = []
    if vault.url is not None and urlsplit(vault.url).scheme != "s3":
        out.append((("vaults", name, "lifecycle"), "lifecycle rules need an s3:// vault "
                    "(allowed: an s3:// url, or a block naming one)"))
    previous = None
    for i, step in enumerate(vault.lifecycle):
        row, loc = CLASSES[step.storage_class], ("vaults", name, "lifecycle", i)
        if step.after % DAY:
            out.append(((*loc, "after"), f"{_human(step.after)} is not a whole number of days (allowed: e.g. 30d)"))
        elif step.after < timedelta(days=row.min_transition_days):
            out.append(((*loc, "after"), f"S3 moves objects to {row.name} only after {row.min_transition_days} "
                        f"days (allowed: after ≥ {row.min_transition_days}d)"))
        if previous and (step.after <= previous.after or row.rank <= CLASSES[previous.storage_class].rank):
            out.append((loc, f"each step must come later and go colder than the one before "
                        f"({previous.storage_class} after {_human(previous.after)})"))
        out += [(loc, msg) for msg in _retention_problems(policy, name, step, row)]
        previous = step
    return out


def _retention_problems(policy: Any, vault_name: str, step: Any, row: Any) -> list[str]:
    from seawall.policy.fields import human as _human

    out = []
    for ds_name, ds in policy.datasets.items():
        if vault_name not in (ds.vault, ds.copy_to) or ds.retention is None:
            continue
        within = ds.retention.keep_within
        if row.archive and within and step.after < within:
            out.append(f"moves data to {row.name} after {_human(step.after)}, before dataset {ds_name}'s "
                       f"keep_within {_human(within)} ends: a restore of those backups would wait for a retrieval "
                       f"(allowed: after ≥ {_human(within)})")
        horizon = retention_horizon(ds.retention, ds.schedule.longest_gap())
        minimum = timedelta(days=row.min_days)
        if horizon and step.after < horizon < step.after + minimum:
            earlier = f", or after ≤ {_human(horizon - minimum)}" if horizon - minimum >= DAY else ""
            out.append(f"moves data to {row.name} after {_human(step.after)}, but dataset {ds_name}'s retention "
                       f"keeps backups at most ~{_human(horizon)}: deleted within {row.name}'s {row.min_days}-day "
                       f"minimum storage, billed anyway (allowed: after ≥ {_human(horizon)}{earlier})")
    return out

"""S3 Object Lock for copy destinations: retention on every object written, and its upkeep.

With a lock mode (GOVERNANCE or COMPLIANCE) and N days, every object the copy writes carries
`ObjectLockMode` + `ObjectLockRetainUntilDate` (S3Store's lock options): no credentials can delete
that object version before the date (COMPLIANCE), or only with the bypass permission
(GOVERNANCE). A new backup mostly references chunks copied earlier, whose retention may run out
before the new backup's: `extend_locks` pushes the retention of every object still referenced by
a kept backup to now + N days, and `check_locks` reports what expires too early.

The S3 calls live in the store (`ObjectStore.retention` / `set_retention` / `lock_writes`,
implemented by `S3Store`); other stores refuse Object Lock with a ConfigError. Retention is only
ever extended, never shortened (S3 refuses that in COMPLIANCE mode).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from seawall.errors import ConfigError, ObjectNotFound
from seawall.manifest import BackupStatus
from seawall.stores import ObjectStore
from seawall.streams import ChunkReader
from seawall.vault import Vault, chunk_key
from seawall.verify import referenced_chunks

if TYPE_CHECKING:
    from seawall.copy.plan import CopyPlan
    from seawall.copy.report import BackupCopy

MODES = ("GOVERNANCE", "COMPLIANCE")


@dataclass(frozen=True)
class LockSpec:
    """A retention policy: mode and days from the time of writing (or extending)."""

    mode: str
    days: int

    @classmethod
    def parse(cls, mode: str | None, days: int | None) -> LockSpec | None:
        """None when neither is given; ConfigError when only one is, or either is invalid."""
        if mode is None and days is None:
            return None
        mode = (mode or "").upper()
        if mode not in MODES or not days or days < 1:
            raise ConfigError(f"invalid object lock settings (mode {mode or '-'}, {days} days)",
                              hint="give --object-lock-mode governance|compliance and --object-lock-days N >= 1")
        return cls(mode, int(days))

    def until(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(UTC)) + timedelta(days=self.days)

    def floor(self, now: datetime | None = None) -> datetime:
        """Retention ending before this is extended: max(days - 1, days / 2) days from now.

        The slack keeps objects locked a moment ago (or yesterday, with daily runs) from being
        rewritten on every run; every kept object stays locked for at least that long.
        """
        return (now or datetime.now(UTC)) + timedelta(days=max(self.days - 1, self.days / 2))

    def store_options(self) -> dict[str, Any]:
        return {"object_lock_mode": self.mode, "object_lock_days": self.days}


def apply_lock(store: ObjectStore, spec: LockSpec) -> None:
    """Make every later write to `store` carry the retention of `spec` (checks the bucket first)."""
    store.lock_writes(spec.mode, spec.days)


# ---- retention upkeep -----------------------------------------------------------------------------
@dataclass
class LockReport:
    """Retention of the objects kept backups reference."""

    checked: int = 0
    extended: int = 0
    ok: int = 0
    missing: list[str] = field(default_factory=list)
    expiring: list[str] = field(default_factory=list)  # check only: retention ends too early

    def to_dict(self) -> dict:
        return {"checked": self.checked, "extended": self.extended, "ok": self.ok,
                "missing": self.missing[:20], "expiring": len(self.expiring)}


def _visit(store: ObjectStore, key: str, spec: LockSpec, floor: datetime, target: datetime, extend: bool) -> str:
    try:
        mode, until = store.retention(key)
    except ObjectNotFound:
        return "missing"
    if until is not None and until >= floor:
        return "ok"
    if not extend:
        return "expiring"
    store.set_retention(key, mode or spec.mode, target)  # keep a stricter existing mode
    return "extended"


def extend_locks(vault: Vault, spec: LockSpec, keys: Iterable[str] | None = None, *,
                 extend: bool = True, workers: int = 8) -> LockReport:
    """Extend (or with `extend=False`, only check) retention that ends before `spec.floor()`
    to now + `spec.days`.

    Args:
        vault: The destination vault (on S3 with Object Lock).
        spec: Mode for unlocked objects and the number of days to guarantee from now.
        keys: Object keys to look at (default: everything kept backups reference).
        extend: False to report objects whose retention ends too early without changing them.
        workers: Parallel HEAD / PutObjectRetention requests.
    """
    keys = list(dict.fromkeys(keys if keys is not None else kept_keys(vault)))
    floor, target = spec.floor(), spec.until()
    report = LockReport(checked=len(keys))
    with ThreadPoolExecutor(workers, thread_name_prefix="seawall-lock") as pool:
        outcomes = pool.map(lambda k: _visit(vault.store, k, spec, floor, target, extend), keys)
        for key, outcome in zip(keys, outcomes, strict=True):
            if outcome == "missing":
                report.missing.append(key)
            elif outcome == "expiring":
                report.expiring.append(key)
            else:
                setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def kept_keys(vault: Vault) -> list[str]:
    """Keys of every DONE manifest in the vault and of every chunk those backups reference."""
    keys: list[str] = []
    with ChunkReader(vault) as reader:
        for manifest in vault.list_backups(status=BackupStatus.DONE):
            keys.append(manifest.key)
            keys.extend(vault.chunk_object(c) or chunk_key(c) for c in referenced_chunks(vault, manifest, reader))
    return keys


def reused_keys(plan: CopyPlan, backups: Iterable[BackupCopy], vault: Vault) -> list[str]:
    """Packs (and loose chunks) holding chunks that backups copied in this run share with earlier
    copies: written under an older retention, they may unlock before the new backup's own objects do."""
    done = {b.backup_id for b in backups if b.status == "copied"}
    vault.known_chunks(refresh=True)
    return sorted({vault.chunk_object(c) or chunk_key(c) for item in plan.items if item.backup_id in done
                   for c in item.chunks if c in plan.dest_chunks})

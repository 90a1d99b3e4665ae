"""What a copy run did: per backup, the WAL, bytes, throughput and replication lag.

`build_report` assembles it from the plan and the results (and transfer stats) of the steps, which
the flow runs as separate tasks; `raise_for_failures` turns a report with failures into `CopyFailed`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from seawall.copy.plan import CopyPlan, replication_lag
from seawall.copy.transfer import TransferStats
from seawall.errors import IntegrityError


@dataclass
class BackupCopy:
    """The outcome of copying one backup."""

    dataset: str
    backup_id: str
    status: str  # copied | present | failed
    chunks_copied: int = 0
    bytes_copied: int = 0
    error: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class WalCopy:
    """The outcome of copying the WAL archive."""

    copied: int = 0
    present: int = 0
    bytes_copied: int = 0
    problems: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list, repr=False)  # the keys copied

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "keys"}


@dataclass
class CopyReport:
    """Everything one copy run did: per backup, the WAL, bytes, throughput and replication lag."""

    source: str
    dest: str
    backups: list[BackupCopy]
    wal: WalCopy | None
    stats: dict
    objects_skipped: int
    lag: list[dict]
    problems: list[str] = field(default_factory=list)
    locks: dict | None = None

    @property
    def failures(self) -> list[str]:
        out = [b.error or "" for b in self.backups if b.status == "failed"]
        return out + (self.wal.problems if self.wal else []) + self.problems

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {"source": self.source, "dest": self.dest, "ok": self.ok,
                "backups": [b.to_dict() for b in self.backups], "wal": self.wal.to_dict() if self.wal else None,
                **self.stats, "objects_skipped": self.objects_skipped, "lag": self.lag,
                "problems": self.failures, "locks": self.locks}


class CopyFailed(IntegrityError):
    """Raised after a copy in which some backups (or WAL objects) failed; carries the report."""

    def __init__(self, report: CopyReport):
        self.report = report
        failures = report.failures
        more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(f"copy to {report.dest} incomplete: {failures[0]}{more}",
                         hint="the other backups were copied; fix the source and rerun (only the rest moves)")


def raise_for_failures(report: CopyReport) -> CopyReport:
    """Return the report if everything copied, else raise CopyFailed."""
    if not report.ok:
        raise CopyFailed(report)
    return report


def skipped_objects(plan: CopyPlan) -> int:
    """Objects the selection needs that the destination already held (not transferred)."""
    chunks = {c for item in plan.items for c in item.chunks if c in plan.dest_chunks}
    return len(chunks) + len(plan.present) + len(plan.wal_present & set(plan.wal_sizes))


def merge_stats(parts: Iterable[dict]) -> dict:
    """Sum the `TransferStats.to_dict()` of several steps; throughput over their summed time."""
    total = TransferStats()
    for part in parts:
        total.add(**{k: v for k, v in part.items() if k != "throughput_bps"})
    return total.to_dict()


def build_report(plan: CopyPlan, backups: list[BackupCopy], wal: WalCopy | None, stats: Iterable[dict],
                 locks: dict | None = None) -> CopyReport:
    """Assemble the report of a run from the plan and the results (and stats) of its steps."""
    done = {b.backup_id for b in backups if b.status == "copied"}
    copied = [i for i in plan.items if i.backup_id in done]
    return CopyReport(plan.source, plan.dest, backups, wal, merge_stats(stats), skipped_objects(plan),
                      replication_lag(plan.newest, copied), list(plan.problems), locks)


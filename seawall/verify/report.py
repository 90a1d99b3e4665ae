"""The verdicts of a vault verification: per backup, and the vault's own problems."""

from __future__ import annotations

from dataclasses import dataclass, field

from seawall.errors import IntegrityError


@dataclass
class BackupCheck:
    """The verdict on one backup."""

    key: str
    dataset: str
    backup_id: str
    status: str
    problems: list[str] = field(default_factory=list)
    chunks: int = 0
    checked: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "backup_id": self.backup_id, "status": self.status,
                "ok": self.ok, "checked": self.checked, "chunks": self.chunks, "problems": self.problems}


@dataclass
class VerifyReport:
    vault: str
    read_data: bool
    backups: list[BackupCheck] = field(default_factory=list)
    chunks_read: int = 0
    bytes_read: int = 0
    packs_read: int = 0
    problems: list[str] = field(default_factory=list)  # the vault's own: index, unused packs

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.backups) and not self.problems

    def to_dict(self) -> dict:
        return {"vault": self.vault, "read_data": self.read_data, "ok": self.ok,
                "chunks_read": self.chunks_read, "bytes_read": self.bytes_read, "packs_read": self.packs_read,
                "problems": self.problems, "backups": [b.to_dict() for b in self.backups]}



class VaultCheckFailed(IntegrityError):
    """Raised after a verification whose report has failed backups; carries the report."""

    def __init__(self, report: VerifyReport):
        self.report = report
        failed = [b for b in report.backups if not b.ok]
        if not failed:
            more = f" (+{len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            super().__init__(f"vault {report.vault} failed verification: {report.problems[0]}{more}",
                             hint="run `seawall repair index` to rebuild the index from the packs")
            return
        first = failed[0]
        more = f" (+{len(failed) - 1} more backups)" if len(failed) > 1 else ""
        super().__init__(f"backup {first.dataset}/{first.backup_id} failed verification: {first.problems[0]}{more}",
                         hint="see `seawall verify --json` for every problem")


def raise_for_problems(report: VerifyReport) -> VerifyReport:
    """Return the report if every backup verified, else raise VaultCheckFailed."""
    if not report.ok:
        raise VaultCheckFailed(report)
    return report

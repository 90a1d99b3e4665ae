"""What a recovering server's log says, and the one error a failed recovery means.

PostgreSQL reports why recovery stopped only in its log ("recovery ended before configured recovery
target was reached"...); the archive's own gap report tells a missing segment from a target that is
simply too late, so the user is told which fix applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from seawall.errors import ConfigError, IntegrityError, PermanentError, SeawallError
from seawall.manifest import Manifest
from seawall.postgres.cluster import LocalCluster
from seawall.postgres.targets import RecoveryTarget
from seawall.postgres.wal import WalArchive, check_continuity
from seawall.vault import Vault

_RESTORED = re.compile(r'restored log file "([0-9A-F]{24})" from archive')


@dataclass
class RecoveryLog:
    """What the server log says about this recovery."""

    text: str

    @property
    def last_restored(self) -> str | None:
        found = _RESTORED.findall(self.text)
        return found[-1] if found else None

    def line(self, needle: str) -> str | None:
        for ln in self.text.splitlines():
            if needle in ln:
                return ln.split(":  ", 1)[-1].strip()
        return None

    def fatal(self) -> str | None:
        """The last FATAL/PANIC of the server itself (not a client refused while it started)."""
        noise = ("the database system is starting up", "the database system is not yet accepting connections",
                 "the database system is shutting down")
        found = [ln for ln in self.text.splitlines()
                 if ("FATAL:" in ln or "PANIC:" in ln) and not any(n in ln for n in noise)]
        return found[-1].split(":  ", 1)[-1].strip() if found else None


def read_log(cluster: LocalCluster, offset: int) -> RecoveryLog:
    try:
        with open(cluster.logfile, "rb") as fh:
            fh.seek(offset)
            return RecoveryLog(fh.read().decode("utf-8", "replace"))
    except OSError:
        return RecoveryLog("")


def _archive_gap(vault: Vault, manifest: Manifest) -> tuple[str | None, str | None]:
    """(first lost segment, newest archived) between the backup's start and the newest WAL."""
    try:
        report = check_continuity(WalArchive(vault), from_segment=manifest.source.get("start_wal_file"),
                                  seg_size=manifest.source.get("wal_segment_size"))
    except (ValueError, SeawallError):
        return None, None
    return (report.lost[0] if report.lost else None), report.newest


def diagnose_failure(log: RecoveryLog, vault: Vault, manifest: Manifest, target: RecoveryTarget,
                     where: str) -> SeawallError:
    """The error for a recovery that stopped the server, from its log and the archive."""
    last = log.last_restored or "none"
    lost, newest = _archive_gap(vault, manifest)
    if log.line("before consistent recovery point"):
        return ConfigError(f"target {target} is before the oldest point backup {manifest.backup_id} can reach "
                           f"({manifest.source.get('stop_lsn')}){where}", hint="pick a later target")
    if lost:
        return IntegrityError(f"PITR to {target} failed: WAL segment {lost} is missing from the archive "
                              f"(last restored: {last}, newest archived: {newest}){where}",
                              hint="the archive is broken there: restore to an earlier target or a newer backup")
    if log.line("recovery ended before configured recovery target was reached"):
        return ConfigError(f"PITR to {target} failed: the target is after the newest archived WAL "
                           f"(last restored: {last}, newest archived: {newest}){where}",
                           hint="pick an earlier target, or archive more WAL (pg_switch_wal()) and retry")
    if log.line("could not locate required checkpoint record") or log.line("WAL ends before"):
        return IntegrityError(f"the WAL backup {manifest.backup_id} needs is missing from the archive "
                              f"({manifest.source.get('start_wal_file')}..{manifest.source.get('stop_wal_file')}, "
                              f"last restored: {last}){where}")
    fatal = log.fatal() or "the server stopped during recovery"
    return PermanentError(f"PITR to {target} failed: {fatal}{where}")


def new_timeline(log: RecoveryLog) -> int | None:
    line = log.line("selected new timeline ID")
    m = re.search(r"selected new timeline ID: (\d+)", line or "")
    return int(m[1]) if m else None

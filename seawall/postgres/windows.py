"""PITR windows of physical backups against the WAL archive (`seawall wal-check`).

For every DONE physical backup and every archived timeline that descends from it (it branched off
the backup's timeline after the backup's end), the recoverable window runs from the backup's stop
LSN along that timeline's path (`seawall.postgres.timelines`) until the first missing segment or
history file. A window is broken when a file is missing with a later one of the same path archived
(or when the backup's own WAL is missing); a backup is broken when any of its windows is.
"""

from __future__ import annotations

from typing import Any

from seawall.errors import BackupNotFound
from seawall.postgres.timelines import Archived, BackupPoint, windows
from seawall.postgres.wal import WalArchive, wal_check_report
from seawall.vault import open_vault

PHYSICAL = "postgres-physical"


def wal_check_for_backups(vault_url: str, passphrase: str, *, backup_id: str | None = None,
                          dsn: str | None = None) -> dict[str, Any]:
    """Continuity from the oldest DONE physical backup (or one backup), and every backup's windows.

    Returns:
        `wal_check_report`'s keys, plus `backups`, `windows` (`[{backup_id, timeline, ok, from_lsn,
        until, first_missing, problem}]`), `backups_broken`, `windows_broken` and `problems`; `ok`
        is False when any window is broken or the archive itself lost WAL.
    """
    vault = open_vault(vault_url, passphrase)
    physical = [m for m in vault.list_backups(status=None) if m.kind == PHYSICAL and str(m.status) == "DONE"]
    if backup_id:
        physical = [m for m in physical if m.backup_id == backup_id]
        if not physical:
            raise BackupNotFound(f"no DONE physical backup {backup_id} in {vault.url}",
                                 hint="run `seawall list` to see them")
    archive = WalArchive(vault)
    seg_size = archive.seg_size
    points = {m.backup_id: BackupPoint.from_source(m.source, int(m.source.get("wal_segment_size") or seg_size))
              for m in physical}
    oldest = min(points.items(), key=lambda kv: (kv[1].start_segno, kv[1].timeline))[1] if points else None
    from_segment = _start_name(oldest, seg_size) if oldest else None
    report = wal_check_report(vault_url, passphrase, from_segment=from_segment, dsn=dsn)
    names = archive.names()
    archived = Archived.from_names(names, archive.histories(names), seg_size)
    rows = [_row(bid, point, w) for bid, point in sorted(points.items()) for w in windows(point, archived)]
    broken = [r for r in rows if not r["ok"]]
    report["backups"] = sorted(points)
    report["windows"] = rows
    report["windows_broken"] = [f"{r['backup_id']}@{r['timeline']}" for r in broken]
    report["backups_broken"] = sorted({r["backup_id"] for r in broken})
    report["problems"] = [f"backup {r['backup_id']} on timeline {r['timeline']}: {r['problem']}" for r in broken]
    report["ok"] = report["ok"] and not broken
    report["summary"] = report["problems"][0] if broken else report["message"]
    return report


def _start_name(point: BackupPoint, seg_size: int) -> str:
    from seawall.postgres.walnames import segment_name

    return segment_name(point.timeline, point.start_segno, seg_size)


def _row(backup_id: str, point: BackupPoint, w) -> dict[str, Any]:
    from seawall.postgres.walnames import format_lsn

    return {"backup_id": backup_id, "timeline": w.timeline, "ok": w.ok, "from_lsn": format_lsn(point.stop_lsn),
            "until": w.until, "first_missing": w.first_missing, "problem": w.problem}

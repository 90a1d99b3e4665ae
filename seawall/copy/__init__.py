"""Cross-region copy: every backup offsite, verified, immutable, resumable.

A destination vault shares the source's master key (its own wrapper, with the destination's
passphrase) and chunker parameters, so sealed chunks, manifests and WAL move byte-for-byte (chunks
repacked into the destination's own packs) and the DR side restores on its own.
`prepare_destination` creates it from the source (`--init-dest`) or checks it; then `plan_copy`
lists each side once, and

- `copy_wal` copies the WAL archive objects the destination lacks (the cluster binding first);
- `copy_backups` copies the chunks the selected backups lack at the destination into new packs there
  (authenticated at the source, packs verified at the destination, then indexed), checks per backup
  (oldest first) that every chunk (and, for physical backups, every WAL segment) it references is
  now at the destination, and only then writes its manifest there. A backup whose chunk failed at
  the source fails naming the chunk and its pack; the others proceed. A killed copy leaves packs
  but no manifest: a rerun copies the rest.

One module per concern: `destination` (create or check it), `plan` (what the destination lacks),
`transfer` (verified, rate-limited object copies), `verify` (checking an object at the destination),
`chunks` (chunks into the destination's packs), `run` (the steps), `report` (the outcome) and
`lock` (S3 Object Lock retention and its upkeep); the names other modules use are re-exported here.

Example:
    >>> report = copy_vault(open_vault(SRC, pw), open_vault(DST, pw))  # doctest: +SKIP
    >>> report.ok, report.stats["bytes_copied"]  # doctest: +SKIP
"""

from seawall.copy.destination import check_binding, check_pair, init_destination, prepare_destination, same_location
from seawall.copy.lock import LockSpec, extend_locks
from seawall.copy.plan import CopyPlan, Selection, plan_copy
from seawall.copy.report import (
    BackupCopy,
    CopyFailed,
    CopyReport,
    WalCopy,
    build_report,
    merge_stats,
    raise_for_failures,
    skipped_objects,
)
from seawall.copy.run import copy_backups, copy_vault, copy_wal
from seawall.copy.transfer import CopySettings, TransferStats

__all__ = [
    "BackupCopy", "CopyFailed", "CopyPlan", "CopyReport", "CopySettings", "LockSpec", "Selection", "TransferStats",
    "WalCopy", "build_report", "check_binding", "check_pair", "copy_backups", "copy_vault", "copy_wal",
    "extend_locks", "init_destination", "merge_stats", "plan_copy", "prepare_destination", "raise_for_failures",
    "same_location", "skipped_objects",
]

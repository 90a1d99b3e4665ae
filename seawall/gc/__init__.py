"""Garbage collection: delete chunks and WAL no remaining backup needs, and nothing else.

Mark and sweep over one listing of the vault (restic `prune`, borg `compact`):

1. **List** every object once. A listing that fails, returns nothing, or looks truncated (the
   vault's key wrappers, every manifest, a kept backup's manifest, a referenced chunk's pack or
   index entry is missing from it) aborts the run with nothing deleted: restic once pruned live
   data after a bad listing. An index file that does not open aborts too (`seawall repair index`).
2. **Mark** every chunk referenced by every remaining manifest, whatever its status (an unfinished
   backup's chunks are kept: retention removes such manifests only after a grace period). A
   manifest that does not open aborts the run: GC would not know which chunks it needs.
3. **Sweep**: packs are deleted or repacked (`packs`, crash-safe order: new packs and
   index durable before anything old goes), loose v1 chunks nobody needs deleted, and WAL older
   than the oldest kept physical backup's start segment (never a `.history` file, never WAL inside
   a kept backup's window). Objects under S3 Object Lock retention are skipped and reported, not
   errors. (On a versioned bucket a delete leaves a noncurrent version: its bytes go once a
   lifecycle rule expires it.)

Callers hold the vault's exclusive lease (`seawall.lease`), so no backup or copy writes meanwhile;
`before_delete` re-checks it just before the first deletion.

One module per concern: `listing` (list and mark, and the checks that abort a run), `wal` (which
WAL no kept backup needs), `packs` (delete or repack packs, crash-safely), `sweep` (deletion that
skips objects under Object Lock) and `collect` (the run and its report); the names other modules
use are re-exported here.
"""

from seawall.gc.collect import GcReport, collect_garbage, delete_manifests
from seawall.gc.sweep import Sweeper, lock_probe
from seawall.gc.wal import plan_wal

__all__ = ["GcReport", "Sweeper", "collect_garbage", "delete_manifests", "lock_probe", "plan_wal"]

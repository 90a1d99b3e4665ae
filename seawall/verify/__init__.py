"""Vault verification (restic/borg `check`): manifests open, every referenced chunk is indexed
and its pack listed, and with `read_data` every pack is read whole: its header authenticates, every
blob decrypts and hashes to its id, and the index agrees with the header (`packs`).

Each backup is judged on its own: a corrupt chunk or pack fails exactly the backups that reference
it, and the report names the backup, the pack and the other backups that use it. Problems of the
vault as a whole (an index file that does not open, an index entry the pack does not hold, a pack
that fails but no backup uses) are `VerifyReport.problems`.

One module per concern: `run` (what each backup references, and the run), `packs` (the pack side:
indexed, listed, and with `read_data` read whole) and `report` (the verdicts); the names other
modules use are re-exported here.
"""

from seawall.verify.report import BackupCheck, VaultCheckFailed, VerifyReport, raise_for_problems
from seawall.verify.run import referenced_chunks, verify_vault

__all__ = ["BackupCheck", "VaultCheckFailed", "VerifyReport", "raise_for_problems", "referenced_chunks",
           "verify_vault"]

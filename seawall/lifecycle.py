"""Backup records that are written even on failure.

`recording(vault, manifest)` writes the STARTED manifest, hands it to the body, and always writes
the final state: DONE when the body returns, FAILED with `failure <phase> (<first line>)` when it
raises (Barman `handle_backup_errors`). Only a DONE manifest makes a backup restorable.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from seawall.errors import SeawallError, stop_signal
from seawall.manifest import BackupStatus, Manifest
from seawall.vault import Vault

log = logging.getLogger(__name__)


class Phase:
    """Mutable holder so the body can say which phase it is in."""

    def __init__(self) -> None:
        self.name = "starting"

    def __call__(self, name: str) -> None:
        self.name = name


def first_line(exc: BaseException) -> str:
    signum = stop_signal(exc)
    if signum is not None:
        import signal

        return f"interrupted by {signal.Signals(signum).name}"
    text = str(exc).strip().splitlines()
    return (text[0].strip() if text else type(exc).__name__)[:500]


@contextlib.contextmanager
def recording(vault: Vault, manifest: Manifest) -> Iterator[Phase]:
    """Write STARTED now and DONE/FAILED at the end, whatever happens in between."""
    phase = Phase()
    vault.write_manifest(manifest)
    try:
        yield phase
    except BaseException as exc:
        manifest.transition(BackupStatus.FAILED, error=f"failure {phase.name} ({first_line(exc)})")
        try:
            vault.write_manifest(manifest)
        except SeawallError as write_exc:  # the original error matters more; say both in the log
            log.warning("could not record FAILED status of %s: %s", manifest.backup_id, write_exc)
        raise
    if manifest.status != BackupStatus.VERIFYING:
        manifest.transition(BackupStatus.VERIFYING)
    manifest.transition(BackupStatus.DONE)
    vault.write_manifest(manifest)

"""Source trees that change between backups, and the snapshot each backup must restore to."""

from __future__ import annotations

import random
from pathlib import Path

from seawall.manifest import BackupStatus
from seawall.sources.compare import snapshot
from seawall.vault import Vault
from tests.integration.crash_harness.common import Snapshot


class TreeVersions:
    """A source tree that changes between backups, and a snapshot of every version backed up.

    Names hold spaces, quotes and non-ASCII; a few hundred small files and two larger ones (several
    chunks each with the tests' small chunker), so a backup writes many objects in little time.
    """

    def __init__(self, root: Path, rng: random.Random, small: int = 200, large: int = 2, large_size: int = 1 << 20):
        self.root, self.rng = root, rng
        self.expected: dict[str, Snapshot] = {}  # backup id → the tree it was taken from
        self.current: Snapshot = {}
        self._small = [f"dossier é/note 'q' {i:03d}.txt" for i in range(small)]
        self._large = [f"blobs/large {i} \"x\".bin" for i in range(large)]
        self._large_size = large_size
        for rel in self._small:
            self._write(rel, self.rng.randbytes(self.rng.randrange(64, 4096)))
        for rel in self._large:
            self._write(rel, self.rng.randbytes(large_size))
        self.freeze()

    def _write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def mutate(self) -> None:
        """Change some small files, add and delete a few, rewrite part of one large file."""
        for rel in self.rng.sample(self._small, 15):
            self._write(rel, self.rng.randbytes(self.rng.randrange(64, 4096)))
        gone = self.rng.sample(self._small, 3)
        for rel in gone:
            (self.root / rel).unlink()
            self._small.remove(rel)
        for _ in range(5):
            rel = f"new {self.rng.randrange(10**9)}/ñ {self.rng.randrange(10**6)}.dat"
            self._write(rel, self.rng.randbytes(self.rng.randrange(64, 8192)))
            self._small.append(rel)
        big = self.root / self.rng.choice(self._large)
        data = bytearray(big.read_bytes())
        at = self.rng.randrange(len(data) - (64 << 10))
        data[at:at + (64 << 10)] = self.rng.randbytes(64 << 10)
        big.write_bytes(bytes(data))
        self.freeze()

    def freeze(self) -> None:
        """Snapshot the tree as it is now: the version the next backups take."""
        self.current = snapshot(self.root)

    def record(self, backup_ids: set[str]) -> None:
        """Backups that appeared while the tree was at its current version."""
        for backup_id in backup_ids:
            self.expected[backup_id] = self.current


def done_ids(vault: Vault) -> set[str]:
    return {m.backup_id for m in vault.list_backups(status=BackupStatus.DONE)}

"""Test-data builders: real objects with sensible defaults, overridable per test (no MagicMocks).

`make_manifest(status=BackupStatus.DONE)` gives a valid manifest; `memory_vault()` an initialised
vault on a fresh in-memory store with cheap scrypt parameters so tests stay fast.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from seawall.crypto import ScryptParams
from seawall.manifest import BackupStats, Manifest, StreamRef
from seawall.stores.memory import MemoryStore
from seawall.vault import ChunkerParams, Vault

#: scrypt at n=2**10 costs about a millisecond: real code path, test-suite speed.
FAST_SCRYPT = ScryptParams(n=2**10)
PASSPHRASE = "correct horse battery staple"
BASE_TIME = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
#: Small chunks so that a few hundred KiB already exercise multi-chunk streams.
SMALL_CHUNKER = ChunkerParams(min_size=16 << 10, avg_size=64 << 10, max_size=256 << 10)

_serial = itertools.count(1)


def make_backup_id(n: int | None = None, *, when: datetime | None = None) -> str:
    """A well-formed, deterministic backup id; `n` orders ids (and their timestamps)."""
    n = next(_serial) if n is None else n
    when = when or BASE_TIME + timedelta(minutes=n)
    return f"{when:%Y%m%dT%H%M%SZ}-{n % 0xFFFFFF:06x}"


def make_stream(name: str = "data", *, chunks: list[tuple[str, int]] | None = None, **overrides: Any) -> StreamRef:
    chunks = [("ab" * 32, 10), ("cd" * 32, 20)] if chunks is None else chunks
    fields: dict[str, Any] = {"name": name, "size": sum(s for _, s in chunks), "hash": "ef" * 32, "chunks": chunks}
    fields.update(overrides)
    return StreamRef(**fields)


def make_manifest(**overrides: Any) -> Manifest:
    """A STARTED files manifest; any field may be overridden (status, dataset, started_at ...)."""
    n = overrides.pop("n", None)
    n = next(_serial) if n is None else n
    fields: dict[str, Any] = {
        "backup_id": make_backup_id(n),
        "dataset": "files",
        "kind": "files",
        "started_at": BASE_TIME + timedelta(minutes=n),
        "host": "test-host",
        "source": {"path": "/srv/data"},
        "streams": [make_stream()],
        "stats": BackupStats(files=2, bytes_total=30),
    }
    fields.update(overrides)
    return Manifest(**fields)


def memory_vault(passphrase: str = PASSPHRASE, *, name: str = "test", **options: Any) -> Vault:
    """A freshly initialised vault on its own MemoryStore."""
    return Vault.init(MemoryStore(name), passphrase, scrypt=FAST_SCRYPT, **options)


def store_snapshot(store: MemoryStore) -> dict[str, tuple[bytes, float]]:
    """Every object with its bytes and write time: equal snapshots mean nothing was written."""
    return dict(store._objects)


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def chunk_location(vault: Vault, chunk_id: str) -> tuple[str, int, int]:
    """(pack key, offset, length) of a stored chunk, after making pending packs durable."""
    vault.commit_chunks()
    loc = vault.chunks.index.get(chunk_id)
    assert loc is not None, f"chunk {chunk_id} is not indexed"
    return loc


def flip_chunk_byte(vault: Vault, chunk_id: str, at: float = 0.5) -> str:
    """Damage one byte of a stored chunk inside its pack (through the store); returns the pack key."""
    pack, offset, length = chunk_location(vault, chunk_id)
    data = bytearray(vault.store.get(pack))
    data[offset + int(length * at)] ^= 0x40
    vault.store.put(pack, bytes(data))
    return pack

"""The cross-region copy flow under Prefect: init the destination, copy with Object Lock, refresh
the locks of reused chunks, publish the report artifacts, and fail the run on a failed backup."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from blocks.vault import VaultTarget
from flows.backup import backup_files
from flows.cross_region_copy import cross_region_copy
from seawall.copy import CopyFailed
from seawall.crypto import ScryptParams
from seawall.errors import VaultNotInitialised
from seawall.stores import open_store
from seawall.vault import Vault
from tests.unit.builders import flip_chunk_byte


@pytest.fixture
def source(tmp_path: Path) -> VaultTarget:
    block = VaultTarget(url=f"file://{tmp_path / 'vault'}", passphrase="flow-test")
    block.init_vault(scrypt=ScryptParams(n=2**10))
    return block


def test_copy_flow_with_object_lock_refreshes_reused_chunks(source, s3_vault_url_b, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        (data / f"f{i}").write_bytes(os.urandom(200_000))
    backup_files(str(data), source)
    dest = VaultTarget(url=s3_vault_url_b, passphrase="dr-side")
    with pytest.raises(VaultNotInitialised, match="--init-dest"):
        cross_region_copy(source, dest)
    report = cross_region_copy(source, dest, init_dest=True, object_lock_mode="compliance", object_lock_days=3)
    assert report.ok and [b.status for b in report.backups] == ["copied"]
    assert report.locks == {"checked": 0, "extended": 0, "ok": 0, "missing": [], "expiring": 0}

    vault = Vault.open(open_store(s3_vault_url_b), "dr-side")
    reused = max(vault.store.list("data/"), key=lambda i: i.size).key  # a pack of unchanged files' chunks
    vault.store.set_retention(reused, "COMPLIANCE", datetime.now(UTC) + timedelta(hours=2))
    (data / "new").write_bytes(os.urandom(300_000))
    backup_files(str(data), source)
    again = cross_region_copy(source, dest, object_lock_mode="compliance", object_lock_days=3)
    assert [b.status for b in again.backups] == ["present", "copied"]
    assert again.locks["extended"] == 1 and again.locks["ok"] == again.locks["checked"] - 1
    assert vault.store.retention(reused)[1] > datetime.now(UTC) + timedelta(days=2)

    async def artifact_keys() -> set[str]:
        async with get_client() as client:
            return {a.key for a in await client.read_artifacts()}

    import asyncio

    assert {"copy-summary", "copy-replication-lag", "copy-problems"} <= asyncio.run(artifact_keys())


def test_copy_flow_fails_when_a_backup_cannot_be_copied(source, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_bytes(os.urandom(300_000))
    manifest = backup_files(str(data), source)
    chunk = manifest.streams[0].chunks[0][0]
    flip_chunk_byte(source.open_vault(), chunk, at=0.999)  # the tag of the tree chunk, inside its pack
    dest = VaultTarget(url=f"file://{tmp_path / 'dr'}", passphrase="dr-side")
    with pytest.raises(CopyFailed, match=chunk) as info:
        cross_region_copy(source, dest, init_dest=True)
    assert [b.status for b in info.value.report.backups] == ["failed"]

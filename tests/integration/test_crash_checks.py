"""The crash harness's checks fail on vaults broken on purpose (a check that cannot fail proves nothing).

One real backup, then one damage per case, each caught by its own check in `VaultChecker.check`:
a referenced chunk's object deleted (verify), a DONE manifest deleted (backup lost), the expected
trees swapped (restore comparison), a torn object under a real name that no backup references and
an index entry pointing into a pack cut short (objects open), a lease of a live process (leases
stale), and the `seawall verify` process itself on a vault missing a chunk.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from seawall.lease import SHARED_PREFIX, process_identity
from seawall.sources.files import backup_tree
from seawall.vault import init_vault, open_vault
from tests.integration.crash_harness import PASSPHRASE, Seawall, TreeVersions, VaultChecker
from tests.unit.builders import FAST_SCRYPT, SMALL_CHUNKER


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """(checker, url, vault folder, expected, vault) with two DONE backups of two tree versions."""
    cli = Seawall(tmp_path)
    for name, value in cli.settings().items():
        monkeypatch.setenv(name, value)
    url = f"file://{tmp_path / 'vault'}"
    vault = init_vault(url, PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)
    tree = TreeVersions(tmp_path / "tree", random.Random(5), small=30, large=1, large_size=256 << 10)
    for n in range(2):
        if n:
            tree.mutate()
        tree.record({backup_tree(vault, tree.root, "www", parent=vault.latest_backup("www")).backup_id})
    checker = VaultChecker(cli, tmp_path)
    checker.check(url, tree.expected, context="intact", cli=False)  # the baseline passes
    return checker, url, tmp_path / "vault", tree.expected, vault


def _file_chunk(vault, backup_id: str) -> str:
    from seawall.sources.files import iter_tree
    from seawall.streams import ChunkReader

    with ChunkReader(vault) as reader:
        return next(e.chunks[0][0] for e in iter_tree(vault, vault.require_done(backup_id), reader) if e.chunks)


def _object_of(vault, chunk_id: str) -> str:
    """The object holding a chunk: its pack."""
    return vault.chunks.object_key(chunk_id)


def test_missing_chunk_fails_verify(setup):
    checker, url, folder, expected, vault = setup
    os.unlink(folder / _object_of(vault, _file_chunk(vault, sorted(expected)[0])))
    with pytest.raises(AssertionError, match="verify --read-data"):
        checker.check(url, expected, context="chunk deleted", cli=False)
    with pytest.raises(AssertionError, match=r"`seawall verify --read-data` exit 3"):
        checker.verify_cli(url, "chunk deleted")


def test_lost_manifest_fails(setup):
    checker, url, folder, expected, _ = setup
    os.unlink(folder / "manifests" / "www" / sorted(expected)[0])
    with pytest.raises(AssertionError, match="DONE backups lost"):
        checker.check(url, expected, context="manifest deleted", cli=False)
    checker.check(url, expected, context="allowed", may_be_gone={sorted(expected)[0]}, cli=False)


def test_other_tree_fails_restore(setup):
    checker, url, _, expected, _ = setup
    first, second = sorted(expected)
    with pytest.raises(AssertionError, match="restores differently"):
        checker.check(url, {first: expected[second], second: expected[first]}, context="swapped", cli=False)
    with pytest.raises(AssertionError, match="differs from its tree"):
        checker.restore_cli(url, first, expected[second], "swapped")


def test_torn_unreferenced_object_fails(setup):
    """A half-written pack under a real name that no index lists: restores pass."""
    checker, url, folder, expected, vault = setup
    victim = folder / _object_of(vault, _file_chunk(vault, sorted(expected)[0]))
    torn = victim.parent / (victim.parent.name + "0" * 62)  # a pack written without a temporary name, killed
    assert torn != victim
    torn.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(AssertionError, match=r"verify --read-data|does not open"):  # verify reads every pack
        checker.check(url, expected, context="torn object", cli=False)
    with pytest.raises(AssertionError, match="does not open"):
        checker.objects_open(open_vault(url, PASSPHRASE), "torn object")


def test_index_into_torn_pack_fails(setup):
    """Chunks indexed (as a killed backup leaves them: no manifest) whose pack is cut short."""
    checker, url, folder, expected, vault = setup
    chunk_id, _ = vault.put_chunk(os.urandom(50_000))
    vault.commit_chunks()
    checker.check(url, expected, context="unreferenced chunks", cli=False)  # sound until cut
    with open(folder / _object_of(vault, chunk_id), "r+b") as fh:
        fh.truncate(10_000)
    with pytest.raises(AssertionError, match=r"verify --read-data|does not open"):  # v2's verify reads every pack
        checker.check(url, expected, context="torn pack", cli=False)
    with pytest.raises(AssertionError, match="does not open"):
        checker.objects_open(open_vault(url, PASSPHRASE), "torn pack")


def test_live_lease_fails(setup):
    checker, url, folder, expected, _ = setup
    now = datetime.now(UTC)
    record = {"owner": "x", "kind": "shared", "purpose": "backup www", "host": socket.gethostname(),
              "pid": os.getpid(), "created": now.isoformat(), "expires": (now + timedelta(hours=1)).isoformat(),
              "process": process_identity(os.getpid())}
    (folder / SHARED_PREFIX).mkdir(parents=True, exist_ok=True)
    (folder / SHARED_PREFIX / "x").write_text(json.dumps(record))
    with pytest.raises(AssertionError, match="a lease no taker would break"):
        checker.check(url, expected, context="live lease", cli=False)
    shutil.rmtree(folder / SHARED_PREFIX)
    checker.check(url, expected, context="lease gone", cli=False)


def test_unexpected_backup_fails(setup, tmp_path: Path):
    checker, url, _, expected, _ = setup
    with pytest.raises(AssertionError, match="DONE backups nobody expected"):
        checker.check(url, dict(list(expected.items())[:1]), context="unexpected", cli=False)

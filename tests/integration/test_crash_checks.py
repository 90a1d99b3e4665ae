"""The crash harness's checks fail on vaults broken on purpose (a check that cannot fail proves nothing).

One real backup, then one damage per case, each caught by its own check in `VaultChecker.check`:
a referenced chunk deleted (verify), a DONE manifest deleted (backup lost), the expected trees
swapped (restore comparison), a torn unreferenced chunk (objects open), a lease of a live process
(leases stale), and the `seawall verify` process itself on a vault missing a chunk.
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
from seawall.vault import chunk_key, init_vault
from tests.integration.crash_harness import PASSPHRASE, Seawall, TreeVersions, VaultChecker
from tests.unit.builders import FAST_SCRYPT, SMALL_CHUNKER


@pytest.fixture
def setup(tmp_path):
    """(checker, url, vault folder, expected, vault) with two DONE backups of two tree versions."""
    url = f"file://{tmp_path / 'vault'}"
    vault = init_vault(url, PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)
    tree = TreeVersions(tmp_path / "tree", random.Random(5), small=30, large=1, large_size=256 << 10)
    for n in range(2):
        if n:
            tree.mutate()
        tree.record({backup_tree(vault, tree.root, "www", parent=vault.latest_backup("www")).backup_id})
    checker = VaultChecker(Seawall(tmp_path), tmp_path)
    checker.check(url, tree.expected, context="intact", cli=False)  # the baseline passes
    return checker, url, tmp_path / "vault", tree.expected, vault


def _file_chunk(vault, backup_id: str) -> str:
    from seawall.sources.files import iter_tree
    from seawall.streams import ChunkReader

    with ChunkReader(vault) as reader:
        return next(e.chunks[0][0] for e in iter_tree(vault, vault.require_done(backup_id), reader) if e.chunks)


def test_missing_chunk_fails_verify(setup):
    checker, url, folder, expected, vault = setup
    os.unlink(folder / chunk_key(_file_chunk(vault, sorted(expected)[0])))
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


def test_torn_unreferenced_chunk_fails(setup):
    checker, url, folder, expected, vault = setup
    victim = folder / chunk_key(_file_chunk(vault, sorted(expected)[0]))
    torn = folder / "chunks" / "ff" / ("ff" + "0" * 62)
    torn.parent.mkdir(exist_ok=True)
    torn.write_bytes(victim.read_bytes()[:100])  # what a write without a temporary name leaves at a kill
    with pytest.raises(AssertionError, match="does not open"):
        checker.check(url, expected, context="torn object", cli=False)


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

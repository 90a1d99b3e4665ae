"""The index against the packs (format v2): damage that `seawall verify` reports and `seawall repair
index` rebuilds, and kill -9 at random points of `seawall repair index`.

Damage, each on a vault with real backups: every index file lost, an index file whose bytes were
changed, an index file listing a chunk at the wrong offset of its pack (the index disagrees with
the pack). `seawall verify --read-data` exits 3 and says to run `seawall repair index`; `seawall
repair index` exits 0; then the full crash checks pass (every DONE backup restores identical).

Crashes: `seawall repair index` writes the new index before it deletes the old files, so a kill at
any point leaves a vault that passes the checks, on a sound vault and on one whose index was lost
(there, until a run completes, only the packs must be untouched). Seeded: `SEAWALL_CRASH_SEED`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from seawall.crypto import ObjType
from seawall.vault import open_vault
from seawall.vault.index import INDEX_PREFIX, decode_index, write_index
from seawall.vault.packs import PACK_PREFIX, BlobEntry
from tests.integration.crash_harness import (
    PASSPHRASE,
    Rig,
    crash_rig,
    kills,
    lease_taken,
    new_object,
    object_deleted,
)


def _vault(tmp_path: Path, monkeypatch) -> Rig:
    """A vault with two DONE backups of two versions of a tree."""
    rig = crash_rig(tmp_path, monkeypatch, vault_name="vault ø", small=80)
    rig.add_backup(mutate=False)
    rig.add_backup()
    return rig


def _index_files(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / INDEX_PREFIX).iterdir() if not p.name.startswith(".tmp-"))


def _lose_index(folder: Path, url: str) -> None:
    for path in _index_files(folder):
        path.unlink()


def _flip_byte(folder: Path, url: str) -> None:
    path = _index_files(folder)[0]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    # verify trusts the local index cache while key and size match, so on this host the damage goes
    # unnoticed (finding in NOTES-packs.md, 01:40): check it as another host would see it.
    shutil.rmtree(folder.parent / "seawall-cache", ignore_errors=True)


def _wrong_offset(folder: Path, url: str) -> None:
    """Replace the index by one that places a chunk 16 bytes off inside its (intact) pack."""
    vault = open_vault(url, PASSPHRASE)
    packs: dict[str, list[BlobEntry]] = {}
    for path in _index_files(folder):
        key = f"{INDEX_PREFIX}{path.name}"
        packs.update(decode_index(vault.keyring.open(ObjType.INDEX, key, path.read_bytes()), key))
        path.unlink()
    pack = sorted(packs)[0]
    first = packs[pack][0]
    packs[pack][0] = BlobEntry(first.chunk_id, first.offset + 16, first.length)
    write_index(vault.store, vault.keyring, packs)


def test_verify_reports_and_repair_rebuilds(tmp_path, monkeypatch):
    rig = _vault(tmp_path, monkeypatch)
    cli, url, folder, tree, checker = rig.cli, rig.url, rig.vault_dir, rig.tree, rig.checker
    for damage in (_lose_index, _flip_byte, _wrong_offset):
        damage(folder, url)
        verify = cli.run("verify", "--vault", url, "--read-data")
        assert verify.returncode == 3, f"{damage.__name__}: verify exit {verify.returncode}: {verify.stderr}"
        assert "seawall repair index" in verify.stdout + verify.stderr, f"{damage.__name__}: {verify.stderr}"
        repair = cli.run("repair", "index", "--vault", url)
        assert repair.returncode == 0, f"{damage.__name__}: repair exit {repair.returncode}: {repair.stderr}"
        checker.check(url, tree.expected, context=f"after {damage.__name__} and `seawall repair index`")


def test_kill_repair_index(tmp_path, monkeypatch):
    rig = _vault(tmp_path, monkeypatch)
    crash, url, folder, tree, checker = rig.crash, rig.url, rig.vault_dir, rig.tree, rig.checker
    args = ("repair", "index", "--vault", url)

    def triggers():
        return [lease_taken(folder, "exclusive"), new_object(folder / "index", "an index file written"),
                object_deleted(folder / "index", "an old index file deleted")]

    packs = sorted(p.name for p in (folder / PACK_PREFIX).rglob("*") if p.is_file())
    sound = 0
    while crash.kills < kills(3):  # on a sound vault: every kill leaves one
        assert crash.runs < 4 * kills(3), f"{crash.context()}: only {crash.kills} of {crash.runs} runs killed"
        outcome = crash.kill(*args, triggers=triggers())
        checker.check(url, tree.expected, context=crash.context(outcome), cli=not outcome.killed)
        sound += 1
    _lose_index(folder, url)
    outcome = crash.kill(*args, triggers=triggers())  # index lost: the packs are all that is left
    assert sorted(p.name for p in (folder / PACK_PREFIX).rglob("*") if p.is_file()) == packs, crash.context(outcome)
    outcome = crash.complete(*args)
    checker.check(url, tree.expected, context=crash.context(outcome))
    assert os.listdir(folder / INDEX_PREFIX)

"""Damaged or forged manifests are shown, never hidden: `list` and `status` give CORRUPT rows.

A manifest truncated to 0 bytes, one copied under another backup's name and one sealed with another
vault's key each show up as a CORRUPT row naming the object and the reason (table and `--json`),
next to the intact backups, and the command exits 3.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from seawall.errors import ExitCode
from seawall.manifest import BackupStatus
from seawall.stores import open_store
from seawall.vault import Vault
from tests.unit.builders import FAST_SCRYPT, make_manifest


@pytest.fixture
def vault_with_backup(cli, tmp_path: Path) -> tuple[str, Path, str, str]:
    """(url, manifests folder of the dataset, dataset, backup id) after one real CLI backup."""
    tree = tmp_path / "tree with spaces"
    (tree / "dossier été").mkdir(parents=True)
    (tree / "dossier été" / "it's \"quoted\".txt").write_text("données\n" * 100)
    url = f"file://{tmp_path / 'vault'}"
    assert cli("init", url).code == 0
    done = cli("backup", "files", str(tree), "--vault", url, "--dataset", "www", "--json")
    assert done.code == 0, done.err
    return url, tmp_path / "vault" / "manifests" / "www", "www", done.json()["backup_id"]


def _damage(kind: str, folder: Path, backup_id: str, tmp_path: Path) -> str:
    """Add one bad manifest next to the good one; returns its backup id."""
    bad_id = "20200101T000000Z-0badf0"
    if kind == "zero-bytes":
        (folder / bad_id).write_bytes(b"")
    elif kind == "copied-under-another-name":
        shutil.copyfile(folder / backup_id, folder / bad_id)
    else:  # sealed with another vault's key, under a name that vault would use
        other = Vault.init(open_store(f"file://{tmp_path / 'other'}", create=True), "another passphrase",
                           scrypt=FAST_SCRYPT)
        other.write_manifest(make_manifest(backup_id=bad_id, dataset="www", status=BackupStatus.DONE))
        shutil.copyfile(tmp_path / "other" / "manifests" / "www" / bad_id, folder / bad_id)
    return bad_id


@pytest.mark.parametrize("kind", ["zero-bytes", "copied-under-another-name", "wrong-key"])
def test_list_and_status_show_corrupt_rows_and_exit_3(cli, vault_with_backup, tmp_path, kind):
    url, folder, dataset, good_id = vault_with_backup
    bad_id = _damage(kind, folder, good_id, tmp_path)
    bad_key = f"manifests/{dataset}/{bad_id}"

    listed = cli("list", "--vault", url, "--json")
    assert listed.code == ExitCode.INTEGRITY, listed.err
    rows = {r["backup_id"]: r for r in listed.json()["backups"]}
    assert rows[good_id]["status"] == "DONE"  # the intact backup is still listed
    assert rows[bad_id]["status"] == "CORRUPT" and rows[bad_id]["object"] == bad_key
    assert rows[bad_id]["error"], rows[bad_id]
    assert len(listed.err.strip().splitlines()) == 1 and bad_key in listed.err, listed.err

    table = cli("list", "--vault", url)
    assert table.code == ExitCode.INTEGRITY
    assert "CORRUPT" in table.out and bad_key in table.out and rows[bad_id]["error"][:40] in table.out
    assert "Traceback" not in table.err

    status = cli("status", "--vault", url, "--json")
    assert status.code == ExitCode.INTEGRITY, status.err
    (row,) = status.json()["datasets"]
    assert row["last_backup_id"] == good_id
    assert row["corrupt"] == [{"object": bad_key, "backup_id": bad_id, "reason": rows[bad_id]["error"]}]
    shown = cli("status", "--vault", url)
    assert shown.code == ExitCode.INTEGRITY and "CORRUPT" in shown.out and bad_key in shown.out


def test_only_manifest_truncated_is_not_an_empty_vault(cli, vault_with_backup):
    url, folder, _dataset, good_id = vault_with_backup
    (folder / good_id).write_bytes(b"")
    listed = cli("list", "--vault", url, "--json")
    assert listed.code == ExitCode.INTEGRITY
    assert [(r["backup_id"], r["status"]) for r in listed.json()["backups"]] == [(good_id, "CORRUPT")]
    intact = cli("list", "--vault", url, "--dataset", "other", "--json")
    assert intact.code == 0 and intact.json()["backups"] == []

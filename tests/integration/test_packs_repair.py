"""Packs through the CLI as users run it: a damaged pack named with the backups that use it, an
index that is lost or disagrees with the packs (verify reports it, `seawall repair index` rebuilds
it), and a format v1 vault (loose chunk objects) that keeps working beside new packs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seawall.crypto import ObjType
from seawall.errors import ExitCode
from seawall.sources.compare import compare_trees
from seawall.sources.files import backup_tree
from seawall.vault import Vault, chunk_key, init_vault, open_vault
from seawall.vault.config import VaultConfig
from seawall.vault.index import decode_index, encode_index
from tests.unit.builders import FAST_SCRYPT, SMALL_CHUNKER

SEAWALL = str(Path(sys.executable).with_name("seawall"))
PASSPHRASE = "pack 'repair' pässphrase"


def _tree(root: Path, tag: str) -> Path:
    (root / "sub dir").mkdir(parents=True)
    (root / "sub dir" / f"ünïcode {tag}.txt").write_text(f"text {tag}\n" * 3000)
    (root / f"{tag}.bin").write_bytes(os.urandom(150_000))
    (root / "shared.bin").write_bytes(b"shared" * 20_000)
    return root


@pytest.fixture
def vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Vault:
    monkeypatch.setenv("SEAWALL_CACHE_DIR", str(tmp_path / "cache"))
    return init_vault(f"file://{tmp_path / 'vault'}", PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEAWALL_PASSPHRASE": PASSPHRASE, "SEAWALL_CACHE_DIR": str(tmp_path / "cli-cache")}
    return subprocess.run([SEAWALL, *args], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def _verify(tmp_path: Path, url: str) -> tuple[int, dict]:
    run = _cli(tmp_path, "verify", "--vault", url, "--read-data", "--json")
    return run.returncode, json.loads(run.stdout)


def test_pack_failing_authentication_names_the_pack_and_its_backups(vault: Vault, tmp_path: Path) -> None:
    a = backup_tree(vault, _tree(tmp_path / "a", "a"), "alpha")
    b = backup_tree(vault, _tree(tmp_path / "b", "b"), "beta")  # shares shared.bin's chunks with alpha
    shared = next(iter(vault.chunks.index.locations))
    pack = vault.chunk_object(shared)
    users = {m.backup_id for m in (a, b) if pack in {vault.chunk_object(c) for s in m.streams for c, _ in s.chunks}}
    data = bytearray((tmp_path / "vault" / pack).read_bytes())
    data[-10] ^= 0x01  # inside the sealed header: the whole pack fails
    (tmp_path / "vault" / pack).write_bytes(bytes(data))

    code, report = _verify(tmp_path, vault.url)
    assert code == ExitCode.INTEGRITY and not report["ok"]
    failed = {b["backup_id"]: b["problems"] for b in report["backups"] if not b["ok"]}
    assert users <= set(failed)
    for problems in failed.values():
        assert any(pack in p and "failed authentication" in p for p in problems)
    text = _cli(tmp_path, "verify", "--vault", vault.url, "--read-data")
    assert text.returncode == ExitCode.INTEGRITY and pack in text.stdout + text.stderr
    assert "Traceback" not in text.stderr


def test_lost_or_wrong_index_is_reported_then_rebuilt(vault: Vault, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", "x")
    manifest = backup_tree(vault, src, "www")
    index_dir = tmp_path / "vault" / "index"
    (key,) = [f"index/{p.name}" for p in index_dir.iterdir()]

    # An entry at a wrong offset: the index disagrees with the pack
    packs = decode_index(vault.keyring.open(ObjType.INDEX, key, vault.store.get(key)), key)
    first = next(iter(packs))
    packs[first][0] = type(packs[first][0])(packs[first][0].chunk_id, packs[first][0].offset + 1,
                                             packs[first][0].length)
    vault.store.put(key, vault.keyring.seal(ObjType.INDEX, key, encode_index(packs)))
    code, report = _verify(tmp_path, vault.url)
    assert code == ExitCode.INTEGRITY
    assert any("disagrees with pack" in p and "repair index" in p for p in report["problems"]
               + [p for b in report["backups"] for p in b["problems"]])
    repaired = _cli(tmp_path, "repair", "index", "--vault", vault.url, "--json")
    assert repaired.returncode == 0, repaired.stderr
    assert json.loads(repaired.stdout)["ok"] and json.loads(repaired.stdout)["index_files_deleted"] == 1
    assert _verify(tmp_path, vault.url)[0] == 0

    # Every index file lost: verify says what to do; repair rebuilds; the backup restores
    for path in index_dir.iterdir():
        path.unlink()
    lost = _cli(tmp_path, "verify", "--vault", vault.url)
    assert lost.returncode == ExitCode.INTEGRITY and "repair index" in lost.stdout + lost.stderr
    assert _cli(tmp_path, "repair", "index", "--vault", vault.url).returncode == 0
    out = tmp_path / "restored"
    restored = _cli(tmp_path, "restore", manifest.backup_id, "--vault", vault.url, "--to", str(out))
    assert restored.returncode == 0, restored.stderr
    assert compare_trees(src, out) == []


def test_v1_vault_keeps_working_beside_new_packs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A vault written before packs: its loose chunks are read, deduplicated against, verified,
    copied and collected; new chunks go into packs; nothing is migrated."""
    monkeypatch.setenv("SEAWALL_CACHE_DIR", str(tmp_path / "cache"))
    url = f"file://{tmp_path / 'old'}"
    vault = init_vault(url, PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)
    src = _tree(tmp_path / "src", "v1")
    first = backup_tree(vault, src, "www")
    _as_format_v1(vault)
    assert not list(vault.store.list("data/")) and list(vault.store.list("chunks/"))

    old = open_vault(url, PASSPHRASE)
    (src / "new.bin").write_bytes(os.urandom(100_000))
    second = backup_tree(old, src, "www", parent=old.require_done(first.backup_id))
    assert second.stats.files_unchanged >= 3 and list(old.store.list("data/"))  # new data in packs only
    assert _verify(tmp_path, url)[0] == 0
    dest = _cli(tmp_path, "copy", "--from", url, "--to", f"file://{tmp_path / 'dr'}", "--init-dest", "--json")
    assert dest.returncode == 0, dest.stderr
    assert not list((tmp_path / "dr").glob("chunks/*/*"))  # copied into packs
    out = tmp_path / "restored"
    restored = _cli(tmp_path, "restore", second.backup_id, "--vault", f"file://{tmp_path / 'dr'}", "--to", str(out))
    assert restored.returncode == 0, restored.stderr
    assert compare_trees(src, out) == []
    pruned = _cli(tmp_path, "retention", "--vault", url, "--keep-last", "1", "--apply", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert _verify(tmp_path, url)[0] == 0


def _as_format_v1(vault: Vault) -> None:
    """Rewrite a vault the way format v1 stored it: one object per chunk, no packs, no index, config v1."""
    for chunk_id in list(vault.chunks.index.locations):
        vault.store.put(chunk_key(chunk_id), vault.chunks.sealed(chunk_id)[1])
    for prefix in ("data/", "index/"):
        vault.store.delete_many([i.key for i in vault.store.list(prefix)])
    config = VaultConfig.from_json(vault.store.get("config"), vault.url)
    config.version = 1
    vault.store.put("config", config.to_json())

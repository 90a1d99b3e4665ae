"""The tree restore planned by pack (seawall.sources.files_restore / files_runs), on a real local vault.

Batches and runs shrunk so a small tree crosses many of them; chunks shared between files and
repeated inside one; read-only folders at the top and below; a format v1 vault's loose chunks; a
pack repacked away after the index was read; a second restore into a locked target; and a real
`seawall restore` process killed with SIGKILL: the target then holds the staging folder alone (or,
killed during the final renames, complete entries beside it), and the same command run again
restores the whole tree.
"""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seawall.errors import ConfigError
from seawall.sources import files_native, files_runs
from seawall.sources.compare import compare_trees, snapshot
from seawall.sources.files import backup_tree, check_restore_target, restore_tree
from seawall.sources.files_restore import STAGING_PREFIX
from seawall.stores.local import LocalStore
from seawall.vault import Vault, open_vault
from seawall.vault.chunks import chunk_key
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, SMALL_CHUNKER

SEAWALL = str(Path(sys.executable).with_name("seawall"))


def _tree(root: Path, small: int = 120) -> Path:
    """Small files in a few folders (names with spaces, quotes, unicode), files of several chunks, a
    chunk shared by two files and repeated inside one, an empty file, read-only folders."""
    rng = random.Random(7)
    for i in range(small):
        folder = root / f"dir {i % 4} 'é'"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:03d}.txt").write_bytes(rng.randbytes(rng.randrange(1, 9000)))
    block = rng.randbytes(300 << 10)  # larger than the max chunk: cut alike wherever it repeats
    (root / "big one.bin").write_bytes(rng.randbytes(700 << 10))
    (root / "repeats.bin").write_bytes(block * 3)
    (root / "dir 0 'é'" / "same as repeats.bin").write_bytes(block * 3)
    (root / "empty").write_bytes(b"")
    (root / "ro top" / "ro below").mkdir(parents=True)
    (root / "ro top" / "ro below" / "inside.txt").write_bytes(b"inside a read-only folder\n")
    os.chmod(root / "ro top" / "ro below", 0o555)
    os.chmod(root / "ro top", 0o555)
    os.chmod(root, 0o750)
    return root


def _vault(path: Path) -> Vault:
    return Vault.init(LocalStore(path, create=True, fsync=False), PASSPHRASE, scrypt=FAST_SCRYPT,
                      chunker=SMALL_CHUNKER)


def _same(src: Path, out: Path) -> None:
    assert compare_trees(src, out) == []
    assert os.stat(out).st_mode & 0o7777 == os.stat(src).st_mode & 0o7777
    assert not [n for n in os.listdir(out) if n.startswith(STAGING_PREFIX)]


@pytest.fixture
def backed_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Vault, str]:
    monkeypatch.setenv("SEAWALL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SEAWALL_PACK_SIZE", str(256 << 10))  # several packs, runs crossing them
    src = _tree(tmp_path / "src")
    vault = _vault(tmp_path / "vault")
    return src, vault, backup_tree(vault, src, "www").backup_id


def test_many_batches_and_runs_restore_the_tree(backed_up, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, vault, backup_id = backed_up
    monkeypatch.setattr(files_runs, "BATCH_FILES", 7)
    monkeypatch.setattr(files_runs, "RUN_BYTES", 20 << 10)  # most runs hold one or two blobs
    count = restore_tree(open_vault(vault.url, PASSPHRASE), vault.require_done(backup_id), tmp_path / "out")
    assert count == 125
    _same(src, tmp_path / "out")


def test_python_writer_where_the_c_one_is_not_built(backed_up, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    src, vault, backup_id = backed_up
    monkeypatch.setattr(files_native, "available", lambda: False)
    monkeypatch.setattr(files_runs, "BATCH_FILES", 7)
    assert restore_tree(open_vault(vault.url, PASSPHRASE), vault.require_done(backup_id), tmp_path / "out") == 125
    _same(src, tmp_path / "out")


@pytest.mark.skipif(not files_native.available(), reason="C file writer not built (no compiler)")
def test_c_writer_times_modes_and_the_file_that_failed(tmp_path: Path) -> None:
    group = files_native.Group()
    group.add(str(tmp_path / "old"), b"a\x00b", 0o640, -1_500_000_001, 0, 0, 0)  # before 1970
    group.add(str(tmp_path / "setuid"), b"", 0o4755, 1_700_000_000_123_456_789, files_native.CHMOD, 0, 0)
    group.write()
    old, setuid = os.stat(tmp_path / "old"), os.stat(tmp_path / "setuid")
    assert (old.st_mode & 0o7777, old.st_mtime_ns, old.st_atime_ns) == (0o640, -1_500_000_001, -1_500_000_001)
    assert (setuid.st_mode & 0o7777, setuid.st_mtime_ns) == (0o4755, 1_700_000_000_123_456_789)
    assert (tmp_path / "old").read_bytes() == b"a\x00b"
    group.clear()
    group.add(str(tmp_path / "new"), b"x", 0o600, 0, 0, 0, 0)
    group.add(str(tmp_path / "old"), b"y", 0o600, 0, 0, 0, 0)  # exists: never overwritten
    with pytest.raises(FileExistsError) as caught:
        group.write()
    assert caught.value.filename == str(tmp_path / "old") and (tmp_path / "new").read_bytes() == b"x"


def test_runs_split_at_gaps_and_size() -> None:
    blobs = [(0, 10, "a"), (10, 10, "b"), (100, 5, "c"), (105, 50, "d")]
    assert [(s, e, len(m)) for s, e, m in files_runs.runs(blobs, gap=0)] == [(0, 20, 2), (100, 155, 2)]
    assert [(s, e, len(m)) for s, e, m in files_runs.runs(blobs, gap=80)] == [(0, 155, 4)]
    assert [(s, e) for s, e, _ in files_runs.runs(blobs, gap=80, limit=60)] == [(0, 20), (100, 155)]


def test_loose_v1_chunks_and_a_pack_gone_since_the_index_was_read(backed_up, tmp_path: Path) -> None:
    """Chunks the index does not list, and chunks whose pack was replaced after this process read
    the index, are read one by one through the vault, which finds them."""
    src, vault, backup_id = backed_up
    stale = open_vault(vault.url, PASSPHRASE)
    stale.chunks.index  # noqa: B018 - this process reads the index now, before the packs move
    for chunk_id in list(vault.chunks.index.locations):  # the same sealed chunks, now loose objects
        vault.store.put(chunk_key(chunk_id), vault.chunks.sealed(chunk_id)[1])
    for prefix in ("data/", "index/"):
        vault.store.delete_many([i.key for i in vault.store.list(prefix)])
    restore_tree(stale, stale.require_done(backup_id), tmp_path / "stale")
    _same(src, tmp_path / "stale")
    fresh = open_vault(vault.url, PASSPHRASE)
    assert not fresh.chunks.index.locations
    restore_tree(fresh, fresh.require_done(backup_id), tmp_path / "loose")
    _same(src, tmp_path / "loose")


def test_a_second_restore_into_a_target_in_use_is_refused(backed_up, tmp_path: Path) -> None:
    _, vault, backup_id = backed_up
    target = tmp_path / "busy"
    target.mkdir()
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running restore holds
        with pytest.raises(ConfigError, match="being written by another restore"):
            restore_tree(vault, vault.require_done(backup_id), target)
    finally:
        os.close(fd)
    assert os.listdir(target) == []


def test_kill_9_leaves_only_the_staging_folder_and_a_rerun_restores(backed_up, tmp_path: Path) -> None:
    """A real `seawall restore` killed at random points while it writes; then the same command."""
    src, vault, backup_id = backed_up
    target = tmp_path / "target"
    args = [SEAWALL, "restore", backup_id, "--vault", vault.url, "--to", str(target)]
    env = {**os.environ, "SEAWALL_PASSPHRASE": PASSPHRASE}
    seed = random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    killed = 0
    for attempt in range(6):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        while proc.poll() is None and not _staging_has_files(target):
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, 0.02))
        os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
        context = f"seed {seed}, attempt {attempt}, exit {code}: {proc.stderr.read().decode()[-300:]}"
        if code == 0:  # it finished before the kill: the whole tree, nothing else; then once more
            _same(src, target)
            _remove(target)
            continue
        killed += 1
        expected = snapshot(src)
        moved = {p: v for p, v in snapshot(target).items() if not p.startswith(STAGING_PREFIX)}
        tops = {p.split("/")[0] for p in moved}
        # Killed during the final renames: each entry that moved is complete, nothing else is there.
        assert moved == {p: v for p, v in expected.items() if p.split("/")[0] in tops}, context
        if tops:  # the documented way out: remove the target, restore again
            _remove(target)
            break
        check_restore_target(target)  # a killed restore's folder alone does not make it busy
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert killed and done.returncode == 0, done.stderr
    _same(src, target)


def _remove(target: Path) -> None:
    subprocess.run(["chmod", "-R", "u+rwx", str(target)], check=True)
    shutil.rmtree(target)


def _staging_has_files(target: Path) -> bool:
    try:
        return any(os.scandir(next(target.glob(f"{STAGING_PREFIX}*"))))
    except (StopIteration, FileNotFoundError):
        return False

"""`restore --delta` on file trees: a real local vault, a changed copy brought back to the backup's state.

Checks what a delta restore must get right beyond "the result equals the backup": it writes only the
files that changed (counted), removes what the backup lacks, never writes through a symbolic link nor
into a file shared by a hard link, and refuses what it must refuse as the CLI runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seawall.errors import ConfigError
from seawall.sources.delta import restore_tree_delta
from seawall.sources.files import backup_tree, restore_tree
from seawall.vault import Vault
from tests.integration.test_files_roundtrip import MiB, build_tree, file_chunks, new_vault, tree_snapshot
from tests.unit.builders import PASSPHRASE

SEAWALL_BIN = str(Path(sys.executable).with_name("seawall"))


@pytest.fixture
def restored(tmp_path: Path):
    """(vault, manifest, source tree, a plain restore of it)."""
    src = tmp_path / "src"
    build_tree(src)
    vault = new_vault(tmp_path / "vault")
    manifest = backup_tree(vault, src, "ds")
    dst = tmp_path / "dst"
    restore_tree(vault, manifest, dst)
    return vault, manifest, src, dst


def _mutate(dst: Path) -> None:
    """Three file contents change; the rest of the damage is structure the delta must undo."""
    with open(dst / "random.bin", "r+b") as fh:  # one chunk in the middle of a 5 MiB file
        fh.seek(3 * MiB)
        fh.write(b"X" * 100)
    (dst / "text.txt").write_bytes(b"cut short")  # shorter: refetched and cut to size
    with open(dst / "one.bin", "ab") as fh:  # longer: truncated back (its chunk is intact)
        fh.write(b"appended")
    (dst / "new dir/deeper").mkdir(parents=True)  # not in the backup: removed
    (dst / "new dir/deeper/stray.txt").write_text("stray")
    (dst / "stray file").write_text("stray")
    os.rename(dst / "empty", dst / "moved-empty")  # a folder the backup has, replaced by a file
    (dst / "empty").write_text("now a file")
    os.unlink(dst / "link-relative")  # a link retargeted
    os.symlink("elsewhere", dst / "link-relative")


@pytest.mark.parametrize("index_kept", [True, False], ids=["index-read-once", "index-streamed-twice"])
def test_delta_after_changes_gives_the_backup_writing_only_changed_files(restored, index_kept: bool,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    if not index_kept:  # a tree index too large to keep: both passes stream it from the vault
        monkeypatch.setattr("seawall.sources.delta.KEEP_INDEX_BYTES", 0)
    vault, manifest, src, dst = restored
    _mutate(dst)
    stats = restore_tree_delta(vault, manifest, dst)
    assert tree_snapshot(dst) == tree_snapshot(src)
    assert (stats.files_written, stats.files_unchanged) == (3, stats.files - 3)
    assert stats.removed == 5  # new dir (with its content), stray file, moved-empty, file 'empty', the link
    # one damaged chunk of random.bin (not its 5 MiB again), all of text.txt's, none of one.bin's
    assert stats.chunks_fetched == 1 + len(file_chunks(vault, manifest, "text.txt"))
    assert stats.bytes_fetched < (src / "text.txt").stat().st_size + 4 * MiB
    again = restore_tree_delta(vault, manifest, dst)  # idempotent: nothing left to write
    assert (again.files_written, again.removed, again.chunks_fetched) == (0, 0, 0)


def test_delta_never_writes_through_a_link_and_never_outside(restored, tmp_path: Path) -> None:
    vault, manifest, src, dst = restored
    outside = tmp_path / "outside"
    (outside / "b" / "c").mkdir(parents=True)
    (outside / "b" / "c" / "deep.txt").write_text("outside, must stay")
    (outside / "keep.txt").write_text("outside, must stay")
    os.rename(dst / "a", tmp_path / "old-a")
    os.symlink(outside, dst / "a")  # the backup's folder 'a' is now a link out of the tree
    os.symlink(outside / "keep.txt", dst / "stray-link")  # a link the backup lacks
    restore_tree_delta(vault, manifest, dst)
    assert tree_snapshot(dst) == tree_snapshot(src)
    assert (outside / "b" / "c" / "deep.txt").read_text() == "outside, must stay"
    assert (outside / "keep.txt").read_text() == "outside, must stay"


def test_a_hard_linked_file_is_replaced_not_written_in_place(restored, tmp_path: Path) -> None:
    vault, manifest, src, dst = restored
    other = tmp_path / "other-name"
    os.link(dst / "random.bin", other)  # e.g. pg_upgrade --link: two clusters share the file
    with open(other, "r+b") as fh:
        fh.write(b"changed through the other name")
    changed = other.read_bytes()
    stats = restore_tree_delta(vault, manifest, dst)
    assert (dst / "random.bin").read_bytes() == (src / "random.bin").read_bytes()
    assert other.read_bytes() == changed  # the other name kept its bytes: the delta wrote a new inode
    assert os.stat(other).st_nlink == 1 and stats.files_written == 1


def test_hinted_files_are_skipped_unread_and_a_touched_one_is_compared(restored, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With hints (data directories), a file the last restore left untouched is neither read nor handed
    to a worker; one whose bytes changed behind a restored size and mtime is still read and fixed."""
    monkeypatch.setenv("SEAWALL_CACHE_DIR", str(tmp_path / "cache"))
    vault, manifest, src, dst = restored
    first = restore_tree_delta(vault, manifest, dst, hints=True)  # records the hints
    assert first.files_written == 0 and first.bytes_compared == first.bytes  # no hints yet: all read
    path = dst / "random.bin"
    st = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(MiB)
        fh.write(b"X")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = restore_tree_delta(vault, manifest, dst, hints=True)
    assert tree_snapshot(dst) == tree_snapshot(src)
    assert (second.files_written, second.chunks_fetched) == (1, 1)
    assert second.files_hinted == second.files - 1 and second.bytes_compared == st.st_size
    third = restore_tree_delta(vault, manifest, dst, hints=True)  # the fixed file is known again
    assert (third.files_hinted, third.bytes_compared, third.files_written) == (third.files, 0, 0)


def test_trust_mtime_keeps_same_size_and_mtime_unread(restored) -> None:
    vault, manifest, src, dst = restored
    path = dst / "random.bin"
    st = os.stat(path)
    with open(path, "r+b") as fh:
        fh.write(b"same size")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # a change the shortcut cannot see
    trusted = restore_tree_delta(vault, manifest, dst, trust_mtime=True)
    assert trusted.files_written == 0 and trusted.files_trusted == trusted.files and trusted.bytes_compared == 0
    assert path.read_bytes() != (src / "random.bin").read_bytes()
    checked = restore_tree_delta(vault, manifest, dst)  # the default compares the bytes
    assert checked.files_written == 1 and path.read_bytes() == (src / "random.bin").read_bytes()


def test_delta_into_a_missing_folder_is_a_full_restore_and_a_file_target_is_refused(restored, tmp_path: Path) -> None:
    vault, manifest, src, _ = restored
    stats = restore_tree_delta(vault, manifest, tmp_path / "fresh" / "copy")
    assert tree_snapshot(tmp_path / "fresh" / "copy") == tree_snapshot(src)
    assert stats.files_written == stats.files and stats.removed == 0
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        restore_tree_delta(vault, manifest, tmp_path / "a-file")
    os.symlink(tmp_path / "fresh" / "copy", tmp_path / "link")
    with pytest.raises(ConfigError, match="symbolic link"):
        restore_tree_delta(vault, manifest, tmp_path / "link")


def _cli(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEAWALL_PASSPHRASE": PASSPHRASE}
    return subprocess.run([SEAWALL_BIN, *args, "--vault", url], env=env, capture_output=True, text=True, timeout=60)


def test_cli_delta_restore(restored) -> None:
    vault: Vault = restored[0]
    manifest, src, dst = restored[1:]
    url = vault.url
    _mutate(dst)
    refused = _cli("restore", manifest.backup_id, "--to", str(dst), url=url)
    assert refused.returncode == 2 and "not empty" in refused.stderr and "Traceback" not in refused.stderr
    wrong = _cli("restore", manifest.backup_id, "--to", str(dst), "--delta-trust-mtime", url=url)
    assert wrong.returncode == 2 and "go with --delta" in wrong.stderr
    done = _cli("restore", manifest.backup_id, "--to", str(dst), "--delta", "-j", "2", "--json", url=url)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["delta"]["files_written"] == 3 and report["delta"]["removed"] == 5
    assert tree_snapshot(dst) == tree_snapshot(src)

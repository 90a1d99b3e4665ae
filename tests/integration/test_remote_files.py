"""File trees on a remote host, through a real OpenSSH sshd on loopback, into a real local vault.

Covers the issue's acceptance: byte-identical round trips with metadata (remote → local, and back to
the host), host keys refused before authentication with the fingerprint named, a connection killed
mid-backup then resumed by a retry, an unchanged tree read not at all (counted by the SFTP server's
own log), and the bad inputs (wrong key or user, missing path, permission denied per file).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from seawall.errors import AuthError, ConfigError, RetryableError
from seawall.manifest import BackupStatus
from seawall.sources.files import restore_tree
from seawall.sources.remote import RemoteSession, RemoteSource, backup_remote_tree
from seawall.sources.remote_restore import MARKER, restore_tree_remote
from seawall.ssh import connect
from seawall.verify import verify_vault
from tests.fixtures.sshd import TEST_USER, SshServer
from tests.integration.test_files_roundtrip import build_tree, new_vault, tree_snapshot

MiB = 1 << 20


@pytest.fixture
def vault(tmp_path: Path):
    return new_vault(tmp_path / "vault")


@pytest.fixture
def tree(remote_dir: Path) -> Path:
    build_tree(remote_dir / "tree")
    return remote_dir / "tree"


def backup(vault, sshd: SshServer, path: Path, dataset: str = "remote", **kw):
    source = RemoteSource(sshd.options(**kw.pop("options", {})), str(path), **{
        k: kw.pop(k) for k in ("exclude", "one_file_system", "listing") if k in kw})
    return backup_remote_tree(vault, source, dataset, **kw)


def test_roundtrip_remote_to_local_and_back(vault, sshd, tree, remote_dir, tmp_path):
    manifest = backup(vault, sshd, tree)
    assert manifest.status == BackupStatus.DONE and manifest.stats.skipped == []
    assert manifest.source["listing"] == "find"
    expected = tree_snapshot(tree)
    restore_tree(vault, manifest, tmp_path / "local")
    assert tree_snapshot(tmp_path / "local") == expected
    with RemoteSession(sshd.options()) as session:
        count = restore_tree_remote(vault, manifest, session, str(remote_dir / "back" / "here"))
    assert count == manifest.stats.files
    assert tree_snapshot(remote_dir / "back" / "here") == expected  # owners, set-id bits, ns mtimes, links
    assert verify_vault(vault, read_data=True).ok


def test_unchanged_tree_reads_no_file_contents(vault, sshd, tree):
    first = backup(vault, sshd, tree)
    assert first.stats.bytes_read == first.stats.bytes_total > 8 * MiB
    served, opened = sshd.sftp_bytes_read(), len(sshd.sftp_opened())
    with RemoteSession(sshd.options()) as session:
        second = backup(vault, sshd, tree, parent=first, session=session)
        assert session.bytes_read == 0
    assert second.stats.bytes_read == 0 and second.stats.files_unchanged == second.stats.files == first.stats.files
    assert sshd.sftp_bytes_read() == served  # the server's own count: nothing sent
    assert [p for p in sshd.sftp_opened()[opened:] if p.startswith(str(tree))] == []
    (tree / "text.txt").write_bytes(b"changed\n" * 1000)
    third = backup(vault, sshd, tree, parent=second)
    assert third.stats.bytes_read == 8000 and sshd.sftp_bytes_read() == served + 8000


def test_unknown_host_key_refused_before_authentication(sshd, tmp_path, tree):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    accepted = sshd.log().count("Accepted publickey")
    with pytest.raises(AuthError) as info:
        RemoteSession(sshd.options(known_hosts_path=str(empty)))
    text = str(info.value)
    assert "[127.0.0.1]:" + str(sshd.port) in text and "not in known_hosts" in text
    assert sshd.host_fingerprint("ed25519") in text or sshd.host_fingerprint("rsa") in text
    assert "\n" not in text
    assert sshd.log().count("Accepted publickey") == accepted  # no key was ever offered


def test_changed_host_key_refused_before_authentication(sshd, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other}\n")
    accepted = sshd.log().count("Accepted publickey")
    with pytest.raises(AuthError) as info:
        connect(sshd.options(known_hosts_path=str(known)))
    text = str(info.value)
    assert "CHANGED" in text and f"127.0.0.1:{sshd.port}" in text
    assert sshd.host_fingerprint("ed25519") in text
    assert sshd.log().count("Accepted publickey") == accepted


def test_pinned_host_key_and_fingerprint(sshd):
    for pin in (sshd.host_key_line("ed25519"), sshd.host_fingerprint("ed25519")):
        connect(sshd.options(known_hosts_path=None, host_key=pin)).close()
    with pytest.raises(AuthError, match="CHANGED"):
        connect(sshd.options(known_hosts_path=None, host_key="SHA256:" + "A" * 43))


@pytest.mark.parametrize("change", ["wrong key", "wrong user", "encrypted key without passphrase"])
def test_refused_login_is_permanent(sshd, tmp_path, change):
    if change == "wrong key":
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
        options = sshd.options(key_path=str(tmp_path / "k"))
    elif change == "wrong user":
        options = sshd.options(username="no-such-user")
    else:
        options = sshd.options(key_path=str(sshd.encrypted_key))
    with pytest.raises(AuthError) as info:
        connect(options)
    assert not isinstance(info.value, RetryableError)
    assert sshd.key_passphrase not in str(info.value)


def test_encrypted_key_with_passphrase(sshd):
    connect(sshd.options(key_path=str(sshd.encrypted_key), passphrase=sshd.key_passphrase)).close()


def test_missing_path_or_not_a_directory(vault, sshd, remote_dir):
    (remote_dir / "file").write_text("x")
    for path, words in ((remote_dir / "nope", "does not exist"), (remote_dir / "file", "is not a directory")):
        with pytest.raises(ConfigError, match=words):
            backup(vault, sshd, path)
    assert vault.list_backups() == []  # refused before a manifest was started


def test_permission_denied_per_file(vault, sshd, remote_dir):
    root = remote_dir / "perm"
    (root / "locked").mkdir(parents=True)
    (root / "public.txt").write_text("for everyone\n")
    (root / "secret.bin").write_bytes(os.urandom(1000))
    (root / "locked" / "inside.txt").write_text("unseen\n")
    os.chmod(root / "secret.bin", 0o000)
    os.chmod(root / "locked", 0o700)
    manifest = backup(vault, sshd, root, options={"username": TEST_USER})
    assert manifest.status == BackupStatus.DONE
    assert sorted(manifest.stats.skipped) == ["locked: cannot list directory (Permission denied)",
                                              "secret.bin: Permission denied"]
    # the unreadable file is listed in skipped, not counted among the files backed up
    assert manifest.stats.files == 1 and manifest.stats.bytes_read == len("for everyone\n")
    assert manifest.stats.bytes_total == len("for everyone\n")
    os.chmod(root, 0o700)
    with pytest.raises(ConfigError, match="not readable"):
        backup(vault, sshd, root, options={"username": TEST_USER})


def test_vanished_and_changed_files_reported(vault, sshd, remote_dir):
    root = remote_dir / "moving"
    root.mkdir()
    for name in ("a-first.bin", "b-grows.bin", "c-vanishes.bin"):
        (root / name).write_bytes(os.urandom(100_000))
    done = []

    def meddle(_n: int) -> None:  # called while a-first.bin is being read: after the listing
        if not done:
            done.append(1)
            with open(root / "b-grows.bin", "ab") as fh:
                fh.write(b"more")
            (root / "c-vanishes.bin").unlink()

    manifest = backup(vault, sshd, root, progress=meddle)
    assert manifest.status == BackupStatus.DONE
    assert sorted(manifest.stats.skipped) == ["b-grows.bin: changed while being read (backed up as read)",
                                              "c-vanishes.bin: vanished before it was read"]
    assert manifest.stats.files == 2  # the vanished file is not counted


def test_sshd_killed_mid_backup_then_retry_completes(vault, sshd_private, remote_dir, tmp_path):
    root = remote_dir / "big"
    root.mkdir()
    for i in range(6):
        (root / f"part{i}.bin").write_bytes(os.urandom(8 * MiB))
    seen = [0]

    def kill_midway(n: int) -> None:
        seen[0] += n
        if seen[0] > 12 * MiB and sshd_private.proc is not None:
            sshd_private.kill()

    with pytest.raises(RetryableError):
        backup(vault, sshd_private, root, backup_id="20260101T000000Z-abcdef", progress=kill_midway)
    assert vault.list_backups()[0].status == BackupStatus.FAILED
    sshd_private.start()
    manifest = backup(vault, sshd_private, root, backup_id="20260101T000000Z-abcdef")
    assert [(m.backup_id, m.status) for m in vault.list_backups()] == [(manifest.backup_id, BackupStatus.DONE)]
    assert verify_vault(vault, read_data=True).ok
    restore_tree(vault, manifest, tmp_path / "out")
    assert tree_snapshot(tmp_path / "out") == tree_snapshot(root)


def test_excludes(vault, sshd, remote_dir):
    root = remote_dir / "ex"
    for rel in ("app/debug.log", "app/keep.log", "app/main.py", "cache/x.bin", "src/cache/y.py", "node_modules/m/i.js"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    manifest = backup(vault, sshd, root, exclude=["*.log", "!keep.log", "/cache/", "node_modules/"])
    restore_tree(vault, manifest, remote_dir / "ex-out")
    files = sorted(str(p.relative_to(remote_dir / "ex-out")) for p in (remote_dir / "ex-out").rglob("*") if p.is_file())
    assert files == ["app/keep.log", "app/main.py", "src/cache/y.py"]


def test_one_file_system(vault, sshd, remote_dir):
    root = remote_dir / "fs"
    (root / "mnt").mkdir(parents=True)
    (root / "here.txt").write_text("same fs\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root / "mnt")], check=True)
    try:
        (root / "mnt" / "elsewhere.txt").write_text("other fs\n")
        crossing = backup(vault, sshd, root, dataset="fs-all")
        staying = backup(vault, sshd, root, dataset="fs-one", one_file_system=True)
    finally:
        subprocess.run(["umount", str(root / "mnt")], check=True)
    assert crossing.stats.files == 2 and staying.stats.files == 1
    restore_tree(vault, staying, remote_dir / "fs-out")
    assert (remote_dir / "fs-out" / "mnt").is_dir() and not any((remote_dir / "fs-out" / "mnt").iterdir())


def test_sftp_only_listing(vault, sshd, remote_dir, tmp_path):
    root = remote_dir / "plain"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f.txt").write_text("hello\n")
    (root / "big.bin").write_bytes(os.urandom(3 * MiB))
    os.symlink("d/f.txt", root / "link")
    for p in (root / "d" / "f.txt", root / "big.bin", root / "d", root):
        os.utime(p, (1_600_000_000, 1_600_000_000 + len(str(p))))
    manifest = backup(vault, sshd, root, listing="sftp")
    assert manifest.source["listing"] == "sftp" and manifest.stats.skipped == []
    restore_tree(vault, manifest, tmp_path / "out")
    expected, got = tree_snapshot(root), tree_snapshot(tmp_path / "out")
    expected.pop("link"), got.pop("link")  # SFTP attributes carry no symlink mtime
    assert got == expected and os.readlink(tmp_path / "out" / "link") == "d/f.txt"
    with pytest.raises(ConfigError, match="one-file-system"):
        backup(vault, sshd, root, listing="sftp", one_file_system=True)


def test_restore_to_remote_never_overwrites_but_resumes_its_own(vault, sshd, tree, remote_dir):
    manifest = backup(vault, sshd, tree)
    busy = remote_dir / "busy"
    busy.mkdir()
    (busy / "someone-else.txt").write_text("x")
    with RemoteSession(sshd.options()) as session:
        with pytest.raises(ConfigError, match="not empty"):
            restore_tree_remote(vault, manifest, session, str(busy))
        resumed = remote_dir / "resumed"
        resumed.mkdir()
        (resumed / MARKER).write_text(manifest.backup_id + "\n")
        (resumed / "text.txt").write_text("half-written by an earlier attempt")
        restore_tree_remote(vault, manifest, session, str(resumed))
    assert tree_snapshot(resumed) == tree_snapshot(tree)

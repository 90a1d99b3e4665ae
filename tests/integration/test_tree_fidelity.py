"""Tree fidelity: hard links, extended attributes, POSIX ACLs, sparse files and special files survive
a backup and restore, compared with the system's own tools (`stat`, `getfattr`, `getfacl`, `du`);
what is not kept is listed, never dropped silently.

Runs as root (the test machine's user); one restore runs as the unprivileged `seawalltest` user
in a separate process, where device nodes and trusted.* attributes cannot be restored and must be
listed as such.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from seawall.checks.tree import check_tree
from seawall.sources import files_native
from seawall.sources.files import backup_tree, restore_tree
from seawall.sources.tree import Entry
from seawall.vault import init_vault
from tests.fixtures.sshd import TEST_USER, ensure_test_user
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, SMALL_CHUNKER

MiB = 1 << 20
SPARSE_SIZE = 48 * MiB


def _run(*cmd: str, cwd: Path | None = None) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def build(root: Path) -> socket.socket:
    """Every kind of object the fidelity work covers; returns the bound socket (kept open)."""
    ensure_test_user()
    (root / "dir ü").mkdir(parents=True)
    (root / "dir ü" / "sub").mkdir()
    first = root / "dir ü" / "a 'quoted'.txt"
    first.write_bytes(b"linked content\n" * 1000)
    os.link(first, root / "dir ü" / "hard link.txt")
    os.link(first, root / "dir ü" / "sub" / "third link")
    attrs = root / "attrs"
    attrs.write_text("has attributes")
    os.setxattr(attrs, "user.comment", "hello wörld".encode())
    os.setxattr(attrs, "user.binary", bytes(range(256)))
    os.setxattr(attrs, "trusted.seawall", b"root only")
    acl_file, acl_dir = root / "acl file", root / "acl dir"
    acl_file.write_text("acl")
    acl_dir.mkdir()
    _run("setfacl", "-m", f"u:{TEST_USER}:rw-,g:{TEST_USER}:r--", str(acl_file))
    _run("setfacl", "-d", "-m", f"u:{TEST_USER}:r-x", str(acl_dir))
    with open(root / "sparse.img", "wb") as fh:  # 48 MiB apparent, ~3 MiB of data in three extents
        fh.seek(MiB)
        fh.write(os.urandom(2 * MiB))
        fh.seek(30 * MiB)
        fh.write(b"middle" * 10_000)
        fh.truncate(SPARSE_SIZE)
    os.mkfifo(root / "fifo")
    os.mknod(root / "null device", 0o640 | 0o020000, os.makedev(1, 3))
    os.symlink("attrs", root / "link")
    os.setxattr(root / "link", "trusted.on-link", b"x", follow_symlinks=False)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "server.sock"))
    return sock


def stat_lines(root: Path) -> list[str]:
    """type, mode, owner, link count, size, mtime, device numbers per path; link groups by first name."""
    out = _run("find", ".", "-not", "-name", "server.sock", "-exec", "stat", "-c", "%n|%F|%a|%u|%g|%h|%s|%Y|%t:%T|%i",
               "{}", "+", cwd=root)
    rows, inodes = [], {}
    for line in sorted(out.splitlines()):
        *fields, inode = line.split("|")
        group = inodes.setdefault(inode, fields[0]) if fields[5] != "1" and fields[1] == "regular file" else ""
        if fields[1] == "directory":
            fields[7] = "-"  # a directory's mtime is checked by the restore check, not here
        rows.append("|".join([*fields, group]))
    return rows


def xattr_dump(root: Path) -> str:
    return _run("getfattr", "-R", "-P", "-d", "-m", "-", "-e", "hex", ".", cwd=root)


def acl_dump(root: Path, without: tuple[str, ...] = ("server.sock",)) -> str:
    """getfacl of every path but those listed as not kept (the socket)."""
    blocks = _run("getfacl", "-R", "-P", "-p", ".", cwd=root).split("\n\n")
    return "\n\n".join(b for b in blocks if not any(b.startswith(f"# file: ./{name}\n") for name in without))


def allocated(path: Path) -> int:
    return int(_run("du", "--block-size=1", str(path)).split()[0])


@pytest.fixture
def tree(tmp_path: Path):
    src = tmp_path / "src tree"
    sock = build(src)
    yield src
    sock.close()


@pytest.mark.parametrize("writer", ["c", "python"])
def test_everything_kept_and_compared_with_system_tools(tree: Path, tmp_path: Path, writer: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways small files are written (files_native's C writer, and Python where it is not built)."""
    if writer == "python":
        monkeypatch.setattr(files_native, "available", lambda: False)
    elif shutil.which("cc"):
        assert files_native.available(), "scripts/setup.sh builds the C file writer where a compiler is"
    vault = init_vault(f"file://{tmp_path / 'vault'}", PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)
    manifest = backup_tree(vault, tree, "fidelity")
    assert manifest.stats.skipped == ["server.sock: a socket is not kept (its server creates it again)"]

    out, skipped = tmp_path / "out", []
    restore_tree(vault, vault.require_done(manifest.backup_id), out, skipped=skipped)
    assert skipped == []
    assert stat_lines(out) == stat_lines(tree)
    assert xattr_dump(out) == xattr_dump(tree) and "trusted.seawall" in xattr_dump(out)
    assert acl_dump(out) == acl_dump(tree) and f"user:{TEST_USER}:rw-" in acl_dump(out)
    assert allocated(tree / "sparse.img") < 4 * MiB
    assert allocated(out / "sparse.img") <= allocated(tree / "sparse.img") + 64 * 1024
    assert (out / "sparse.img").read_bytes() == (tree / "sparse.img").read_bytes()
    assert os.stat(out / "dir ü" / "hard link.txt").st_ino == os.stat(out / "dir ü" / "a 'quoted'.txt").st_ino
    result = check_tree(vault, vault.require_done(manifest.backup_id), out)[0]
    assert result.ok, result.detail

    # An incremental backup reuses the unchanged files and keeps every attribute and hole.
    second = backup_tree(vault, tree, "fidelity", parent=manifest)
    assert second.stats.bytes_read == 0
    again = tmp_path / "again"
    restore_tree(vault, vault.require_done(second.backup_id), again)
    assert stat_lines(again) == stat_lines(tree) and xattr_dump(again) == xattr_dump(tree)
    assert allocated(again / "sparse.img") == allocated(out / "sparse.img")


def test_unprivileged_restore_lists_what_it_cannot_keep(tree: Path, tmp_path: Path) -> None:
    vault_dir = tmp_path / "vault"
    vault = init_vault(f"file://{vault_dir}", PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)
    backup_id = backup_tree(vault, tree, "fidelity").backup_id
    user = pwd.getpwnam(TEST_USER)
    scratch = Path(f"/tmp/seawall-fidelity-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(vault_dir, scratch / "vault")
    _run("chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(scratch))
    os.chmod(scratch, 0o755)
    script = ("import json, sys; from seawall.vault import open_vault; from seawall.sources.files import restore_tree;"
              f"v = open_vault(sys.argv[1], {PASSPHRASE!r}); skipped = [];"
              "restore_tree(v, v.require_done(sys.argv[2]), sys.argv[3], skipped=skipped); print(json.dumps(skipped))")
    try:
        proc = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
                               sys.executable, "-c", script, f"file://{scratch / 'vault'}", backup_id,
                               str(scratch / "out")], capture_output=True, text=True, cwd=Path.cwd(),
                              env={**os.environ, "HOME": str(scratch)})
        assert proc.returncode == 0, proc.stderr
        assert sorted(json.loads(proc.stdout)) == [
            "attrs: extended attribute trusted.seawall not restored (needs root)",
            "link: extended attribute trusted.on-link not restored (needs root)",
            "null device: device node not restored (needs root)",
        ]
        # user.* attributes, ACLs, the fifo, holes and links come through without root
        out = scratch / "out"
        assert os.getxattr(out / "attrs", "user.comment") == "hello wörld".encode()
        assert (os.stat(out / "fifo").st_mode & 0o170000) == 0o010000
        assert f"user:{TEST_USER}:rw-" in acl_dump(out)
        assert allocated(out / "sparse.img") < 4 * MiB
        assert os.stat(out / "dir ü" / "sub" / "third link").st_nlink == 3
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_old_index_lines_still_read_and_plain_entries_write_as_before() -> None:
    old = b'{"path":"a/b.txt","type":"f","mode":420,"mtime_ns":1700000000000000000,"size":3,"inode":12,' \
          b'"hash":"ab","chunks":[["cd",3]]}'
    entry = Entry.from_line(old)
    assert (entry.xattrs, entry.holes, entry.rdev) == (None, None, 0)
    assert entry.to_line() == old + b"\n"  # nothing new is written for a plain file


# ---- over SSH ---------------------------------------------------------------------------------------
def _without(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if not line.startswith(f"./{name}|")]


def test_over_ssh_what_the_server_permits(sshd, remote_dir: Path, tmp_path: Path) -> None:
    """find + getfattr on the host: links, attributes, ACLs, fifos and holes kept; device nodes (find
    gives no device numbers) and the socket listed. Restored locally and back onto the host."""
    from seawall.sources.remote import RemoteSession, RemoteSource, backup_remote_tree
    from seawall.sources.remote_restore import restore_tree_remote

    src = remote_dir / "src tree"
    sock = build(src)
    try:
        vault = init_vault(f"file://{tmp_path / 'vault'}", PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)
        manifest = backup_remote_tree(vault, RemoteSource(sshd.options(), str(src)), "ssh-fidelity")
        assert sorted(manifest.stats.skipped) == [
            "null device: device node not kept over SSH (find reports no device numbers)",
            "server.sock: a socket is not kept (its server creates it again)"]
        assert "not_kept" not in manifest.source
        expected = _without(stat_lines(src), "null device")

        local = tmp_path / "local"
        restore_tree(vault, manifest, local)
        assert stat_lines(local) == expected
        not_kept = ("server.sock", "null device")
        assert xattr_dump(local) == xattr_dump(src) and acl_dump(local) == acl_dump(src, not_kept)
        assert allocated(local / "sparse.img") < 4 * MiB

        back, skipped = remote_dir / "back", []
        with RemoteSession(sshd.options()) as session:
            restore_tree_remote(vault, manifest, session, str(back), skipped=skipped)
        assert skipped == []
        assert stat_lines(back) == expected
        assert xattr_dump(back) == xattr_dump(src) and acl_dump(back) == acl_dump(src, not_kept)
        assert allocated(back / "sparse.img") < 4 * MiB

        sftp_only = backup_remote_tree(vault, RemoteSource(sshd.options(), str(src), listing="sftp"), "sftp-only")
        assert sftp_only.source["not_kept"] == [
            "hard links, fifos, extended attributes and ACLs (an SFTP-only account cannot see them)"]
    finally:
        sock.close()


def test_local_backup_restored_onto_ssh_hosts_as_root_and_as_a_plain_user(sshd, remote_dir: Path,
                                                                          tmp_path: Path) -> None:
    """Device nodes and trusted.* attributes go back onto a host as root; a plain user gets the rest
    and a list of what it could not make."""
    from seawall.sources.remote import RemoteSession
    from seawall.sources.remote_restore import restore_tree_remote

    src = tmp_path / "src tree"
    sock = build(src)
    try:
        vault = init_vault(f"file://{tmp_path / 'vault'}", PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)
        manifest = backup_tree(vault, src, "fidelity")
    finally:
        sock.close()
    as_root, skipped = remote_dir / "as root", []
    with RemoteSession(sshd.options()) as session:
        restore_tree_remote(vault, manifest, session, str(as_root), skipped=skipped)
    assert skipped == []
    assert stat_lines(as_root) == stat_lines(src) and xattr_dump(as_root) == xattr_dump(src)

    user = pwd.getpwnam(TEST_USER)
    plain = remote_dir / "plain"
    plain.mkdir()
    os.chown(plain, user.pw_uid, user.pw_gid)
    skipped = []
    with RemoteSession(sshd.options(username=TEST_USER)) as session:
        restore_tree_remote(vault, manifest, session, str(plain / "out"), skipped=skipped)
    assert "null device: device node not restored (needs root)" in skipped
    refused = [line for line in skipped if "extended attributes not all restored" in line]
    assert refused and all("Operation not permitted" in line for line in refused)
    assert os.getxattr(plain / "out" / "attrs", "user.comment") == "hello wörld".encode()
    assert os.stat(plain / "out" / "dir ü" / "sub" / "third link").st_nlink == 3

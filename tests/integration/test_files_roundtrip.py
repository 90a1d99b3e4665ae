"""File trees through a real local vault: backup, incremental backup, restore, secrecy and verify.

Everything here is real: a LocalStore vault in a temp folder, real files with explicit modes,
owners and nanosecond mtimes, symlinks, special files, and byte-level corruption of stored objects.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from seawall.errors import ConfigError, IntegrityError
from seawall.manifest import BackupStatus, Manifest
from seawall.sources.files import backup_tree, iter_tree, restore_tree
from seawall.stores.local import LocalStore
from seawall.streams import ChunkReader
from seawall.vault import Vault
from seawall.verify import VerifyReport, verify_vault
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, flip_chunk_byte

MiB = 1 << 20
IS_ROOT = os.geteuid() == 0
CANARY = b"SEAWALL-CANARY-7f3c1a9e"
T0 = 1_600_000_000_123_456_789  # an mtime with all nine nanosecond digits in use

# ---- helpers ---------------------------------------------------------------------------------------


def tree_snapshot(root: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Everything a restore must reproduce, per relative path ('.' is the root), never following links."""
    root = Path(root)
    out: dict[str, dict[str, Any]] = {}

    def visit(path: Path, rel: str) -> None:
        st = os.lstat(path)
        info: dict[str, Any] = {"mtime_ns": st.st_mtime_ns, "uid": st.st_uid, "gid": st.st_gid}
        if stat.S_ISLNK(st.st_mode):
            info.update(type="symlink", target=os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            info.update(type="dir", mode=oct(stat.S_IMODE(st.st_mode)))
            for name in sorted(os.listdir(path)):
                visit(path / name, name if rel == "." else f"{rel}/{name}")
        elif stat.S_ISREG(st.st_mode):
            info.update(type="file", mode=oct(stat.S_IMODE(st.st_mode)), size=st.st_size,
                        sha256=hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            info.update(type="special", mode=oct(st.st_mode))
        out[rel] = info

    visit(root, ".")
    return out


def set_mtime(path: Path, ns: int) -> None:
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


def text_bytes(size: int, seed: str = "") -> bytes:
    line = f"{seed}line of ordinary text, compressible and boring 0123456789\n".encode()
    return (line * (size // len(line) + 1))[:size]


def fix_dir_mtimes(root: Path, base_ns: int) -> None:
    """Give every directory a distinct explicit mtime, deepest first (children change parents)."""
    dirs = [root] + [Path(d) / n for d, names, _ in os.walk(root) for n in names]
    dirs = [d for d in dirs if not d.is_symlink()]
    for i, d in enumerate(sorted(dirs, key=lambda p: -len(p.parts))):
        set_mtime(d, base_ns + i * 1_000_000_007)


def build_tree(root: Path) -> dict[str, int]:
    """A tree with every kind of object the files source supports. Returns {file: size} of regular files."""
    root.mkdir()
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty" / "nested-empty").mkdir(parents=True)
    (root / "private").mkdir(mode=0o700)
    (root / "sticky").mkdir()
    os.chmod(root / "sticky", 0o1777)
    files = {
        "a/b/c/deep.txt": text_bytes(5000, "deep"),
        "zero.bin": b"",
        "one.bin": b"\x00",
        "random.bin": os.urandom(5 * MiB + 123),
        "text.txt": text_bytes(3 * MiB + 7),
        "private/secret.key": os.urandom(64),
        "sticky/note.txt": b"sticky dir content\n",
        "run.sh": b"#!/bin/sh\necho hi\n",
        "name with spaces and \u00fcn\u00efc\u00f6d\u00e9 \u2603.txt": "h\u00e9llo w\u00f6rld\n".encode(),
        os.fsdecode(b"latin1-caf\xe9.txt"): b"a name that is not UTF-8\n",
        "line\nbreak": b"a newline in a file name\n",
        "a/-dash and 'quote\" $x": b"shell-hostile name\n",
    }
    for i, (rel, data) in enumerate(sorted(files.items())):
        path = root / rel
        path.write_bytes(data)
        set_mtime(path, T0 + i * 1_000_003)
    os.chmod(root / "private/secret.key", 0o600)
    os.chmod(root / "run.sh", 0o755)
    os.chmod(root / "one.bin", 0o444)
    os.chmod(root / "zero.bin", 0o640)
    if IS_ROOT:
        suid = root / "suid-tool"
        suid.write_bytes(b"\x7fELF pretend\n")
        files["suid-tool"] = suid.read_bytes()
        os.chown(suid, 1234, 2345)
        os.chmod(suid, 0o4755)  # after chown: chown clears set-id bits
        set_mtime(suid, T0 - 10**9)
        os.chown(root / "a/b/c/deep.txt", 4321, 4321)
    links = {
        "link-relative": "a/b/c/deep.txt",
        "link-absolute": "/etc/hostname",
        "link-dangling": "no/such/target",
        "link-to-dir": "a",
        "a/b/up": "../../text.txt",
        "link-unicode": "\u2603/target",
    }
    for i, (rel, target) in enumerate(sorted(links.items())):
        os.symlink(target, root / rel)
        set_mtime(root / rel, T0 + 500_000_000 + i)
    os.chmod(root, 0o750)
    fix_dir_mtimes(root, T0 + 10**12)
    return {rel: len(data) for rel, data in files.items()}


def new_vault(path: Path) -> Vault:
    return Vault.init(LocalStore(path, create=True, fsync=False), PASSPHRASE, scrypt=FAST_SCRYPT)


def reopen(vault: Vault) -> Vault:
    """What the next process sees: a fresh Vault over the same folder, nothing cached."""
    return Vault.open(LocalStore(vault.store.root, fsync=False), PASSPHRASE)


def vault_files(vault: Vault) -> list[Path]:
    return sorted(p for p in vault.store.root.rglob("*") if p.is_file())


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(data))


def file_chunks(vault: Vault, manifest: Manifest, rel: str) -> list[str]:
    with ChunkReader(vault) as reader:
        return [c[0] for e in iter_tree(vault, manifest, reader) if e.path == rel for c in e.chunks]


def by_id(report: VerifyReport) -> dict[str, Any]:
    return {b.backup_id: b for b in report.backups}


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    src = tmp_path / "src"
    return src, build_tree(src)


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return new_vault(tmp_path / "vault")


# ---- round trip ------------------------------------------------------------------------------------


def test_backup_and_restore_reproduce_the_tree(tmp_path: Path, source, vault: Vault) -> None:
    src, files = source
    before = tree_snapshot(src)
    manifest = backup_tree(vault, src, "files")
    assert manifest.status == BackupStatus.DONE and manifest.kind == "files"
    assert manifest.stats.files == len(files)
    assert manifest.stats.bytes_total == manifest.stats.bytes_read == sum(files.values())
    assert manifest.stats.skipped == [] and manifest.stats.files_unchanged == 0
    assert tree_snapshot(src) == before  # a backup never modifies its source

    restored = reopen(vault)
    target = tmp_path / "restored" / "here"
    assert restore_tree(restored, restored.require_done(manifest.backup_id), target) == len(files)
    after = tree_snapshot(target)
    assert after.keys() == before.keys()
    for rel in before:
        assert after[rel] == before[rel], rel
    assert not list(target.rglob("*.seawall-partial"))


def test_restore_checks_every_kind_of_entry(tmp_path: Path, source, vault: Vault) -> None:
    """The same comparison, spelled out, so a failure says which property broke."""
    src, _ = source
    restore_tree(vault, backup_tree(vault, src, "files"), tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "empty" / "nested-empty").is_dir() and not any((out / "empty" / "nested-empty").iterdir())
    assert os.readlink(out / "link-relative") == "a/b/c/deep.txt"
    assert os.readlink(out / "link-absolute") == "/etc/hostname"
    assert os.readlink(out / "link-dangling") == "no/such/target" and not (out / "link-dangling").exists()
    assert (out / "link-to-dir").is_symlink()
    assert stat.S_IMODE(os.lstat(out / "private/secret.key").st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(out / "run.sh").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(out / "sticky").st_mode) == 0o1777
    assert stat.S_IMODE(os.lstat(out).st_mode) == 0o750
    assert os.lstat(out / "text.txt").st_mtime_ns == os.lstat(src / "text.txt").st_mtime_ns
    assert os.lstat(out / "link-relative").st_mtime_ns == os.lstat(src / "link-relative").st_mtime_ns
    assert (out / "zero.bin").read_bytes() == b"" and (out / "one.bin").read_bytes() == b"\x00"
    assert (out / os.fsdecode(b"latin1-caf\xe9.txt")).exists()
    assert (out / "line\nbreak").read_bytes() == b"a newline in a file name\n"
    if IS_ROOT:
        st = os.lstat(out / "suid-tool")
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 1234, 2345)


def test_restore_into_an_existing_empty_folder(tmp_path: Path, source, vault: Vault) -> None:
    src, _ = source
    target = tmp_path / "empty-target"
    target.mkdir()
    restore_tree(vault, backup_tree(vault, src, "files"), target)
    assert tree_snapshot(target) == tree_snapshot(src)


@pytest.mark.parametrize("occupant", ["file", "hidden-file", "empty-dir", "symlink", "target-is-a-file"])
def test_restore_into_a_non_empty_folder_is_refused(tmp_path: Path, source, vault: Vault, occupant: str) -> None:
    src, _ = source
    manifest = backup_tree(vault, src, "files")
    target = tmp_path / "busy"
    if occupant == "target-is-a-file":
        target.write_bytes(b"I am a file")
    else:
        target.mkdir()
        {"file": lambda: (target / "keep.txt").write_bytes(b"mine"),
         "hidden-file": lambda: (target / ".keep").write_bytes(b""),
         "empty-dir": lambda: (target / "sub").mkdir(),
         "symlink": lambda: os.symlink("/nowhere", target / "ln")}[occupant]()
    before = tree_snapshot(target)
    said = "is a file, not a folder" if occupant == "target-is-a-file" else "is not empty"
    with pytest.raises(ConfigError, match=said):
        restore_tree(vault, manifest, target)
    assert tree_snapshot(target) == before


def test_restore_refuses_a_non_files_backup(tmp_path: Path, source, vault: Vault) -> None:
    src, _ = source
    manifest = backup_tree(vault, src, "files")
    manifest.kind = "postgres-logical"
    with pytest.raises(ConfigError):
        restore_tree(vault, manifest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---- incremental -------------------------------------------------------------------------------------


def test_second_backup_of_an_unchanged_tree_reads_nothing(tmp_path: Path, source, vault: Vault) -> None:
    src, files = source
    first = backup_tree(vault, src, "files")
    stored_before = {p: p.stat().st_size for p in vault_files(vault)}
    again = reopen(vault)
    second = backup_tree(again, src, "files", parent=again.latest_backup("files"))
    s = second.stats
    assert second.status == BackupStatus.DONE and second.parent == first.backup_id
    assert s.bytes_read == 0
    assert s.files_unchanged == s.files == len(files)
    assert s.bytes_total == first.stats.bytes_total
    assert s.stored_bytes_new < 64 << 10 and s.chunks_new <= 1
    new_objects = set(vault_files(vault)) - set(stored_before)
    assert all("manifests" in p.parts or "chunks" in p.parts for p in new_objects)
    restore_tree(again, second, tmp_path / "out")
    assert tree_snapshot(tmp_path / "out") == tree_snapshot(src)


def test_only_the_changed_file_is_read(tmp_path: Path, source, vault: Vault) -> None:
    src, files = source
    old_snapshot = tree_snapshot(src)
    first = backup_tree(vault, src, "files")
    changed = src / "a/b/c/deep.txt"
    inode = changed.stat().st_ino
    with open(changed, "r+b") as fh:  # rewrite in place: same inode, new size and content
        fh.write(text_bytes(7000, "changed"))
    set_mtime(changed, T0 + 77)
    fix_dir_mtimes(src, T0 + 2 * 10**12)
    assert changed.stat().st_ino == inode

    second = backup_tree(vault, src, "files", parent=first)
    s = second.stats
    assert s.bytes_read == 7000
    assert s.files_unchanged == len(files) - 1
    assert s.bytes_new < 64 << 10

    restore_tree(vault, second, tmp_path / "new")
    assert tree_snapshot(tmp_path / "new") == tree_snapshot(src)
    restore_tree(vault, first, tmp_path / "old")  # the older backup is untouched by the newer one
    assert tree_snapshot(tmp_path / "old") == old_snapshot


def test_touched_file_is_reread_but_stores_nothing_new(tmp_path: Path, source, vault: Vault) -> None:
    src, files = source
    first = backup_tree(vault, src, "files")
    touched = src / "random.bin"
    set_mtime(touched, T0 + 999)
    second = backup_tree(vault, src, "files", parent=first)
    s = second.stats
    assert s.bytes_read == files["random.bin"]
    assert s.files_unchanged == len(files) - 1
    assert s.stored_bytes_new < 64 << 10  # only the new tree index; every data chunk deduplicated
    assert s.bytes_new < 64 << 10
    assert s.chunks_new <= 1
    restore_tree(vault, second, tmp_path / "out")
    assert tree_snapshot(tmp_path / "out") == tree_snapshot(src)


@pytest.fixture
def one_chunk_per_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk fills its own pack: deleting a pack loses exactly one chunk (as in format v1)."""
    monkeypatch.setenv("SEAWALL_PACK_SIZE", "1")


def test_incremental_after_a_chunk_went_missing_rereads_the_file(one_chunk_per_pack, tmp_path: Path, source,
                                                                 vault: Vault) -> None:
    src, files = source
    first = backup_tree(vault, src, "files")
    lost = file_chunks(vault, first, "text.txt")[0]
    (vault.store.root / vault.chunk_object(lost)).unlink()  # its pack, with the other chunks in it
    again = reopen(vault)
    second = backup_tree(again, src, "files", parent=first)
    assert second.stats.bytes_read >= files["text.txt"]
    restore_tree(again, second, tmp_path / "out")
    assert tree_snapshot(tmp_path / "out") == tree_snapshot(src)


# ---- secrecy -------------------------------------------------------------------------------------------


def test_no_plaintext_canary_reaches_the_vault(tmp_path: Path, vault: Vault) -> None:
    src = tmp_path / "src"
    (src / f"dir-{CANARY.decode()}").mkdir(parents=True)
    (src / "compressible.txt").write_bytes((b"prefix " + CANARY + b" suffix\n") * 50_000)
    (src / "incompressible.bin").write_bytes(
        b"".join(os.urandom(4096) + CANARY for _ in range(300))
    )
    (src / "tiny.txt").write_bytes(CANARY)  # below the compression threshold: stored raw, still encrypted
    (src / f"name-{CANARY.decode()}.txt").write_bytes(b"innocent content")
    os.symlink(f"/target/{CANARY.decode()}", src / "link")
    manifest = backup_tree(vault, src, "files")
    assert manifest.status == BackupStatus.DONE

    needles = [CANARY, CANARY.lower(), CANARY.hex().encode(), CANARY.decode().encode("utf-16-le")]
    files = vault_files(vault)
    assert len(files) >= 5 and any("data" in p.parts for p in files)  # config, key, pack, index, manifest
    for path in files:
        data = path.read_bytes()
        assert not any(n in data for n in needles), path
        assert CANARY.decode() not in str(path.relative_to(vault.store.root))
    restore_tree(vault, manifest, tmp_path / "out")
    assert tree_snapshot(tmp_path / "out") == tree_snapshot(src)


# ---- special files ---------------------------------------------------------------------------------------


def test_special_files_are_kept_and_sockets_reported(tmp_path: Path, vault: Vault, monkeypatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "regular.txt").write_bytes(b"regular")
    os.mkfifo(src / "fifo")
    monkeypatch.chdir(src)  # bind by relative name: AF_UNIX paths are limited to 108 bytes
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("sock")
    restored = ["fifo", "regular.txt"]
    if IS_ROOT:
        os.mknod(src / "null-dev", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        restored.insert(1, "null-dev")
    try:
        manifest = backup_tree(vault, src, "files")  # must not block on the FIFO
    finally:
        sock.close()
    assert manifest.status == BackupStatus.DONE
    assert manifest.stats.files == 1
    assert manifest.stats.skipped == ["sock: a socket is not kept (its server creates it again)"]
    stored = reopen(vault).find_backup(manifest.backup_id)
    assert stored.stats.skipped == manifest.stats.skipped
    restore_tree(vault, manifest, tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == restored
    assert stat.S_ISFIFO(os.lstat(tmp_path / "out" / "fifo").st_mode)
    if IS_ROOT:
        assert os.lstat(tmp_path / "out" / "null-dev").st_rdev == os.makedev(1, 3)


# ---- verify --------------------------------------------------------------------------------------------


@pytest.fixture
def two_datasets(tmp_path: Path, vault: Vault) -> dict[str, Any]:
    """alpha (two backups, the second incremental) and beta, sharing one file."""
    shared = os.urandom(300_000)
    trees = {}
    for name in ("alpha", "beta"):
        root = tmp_path / name
        root.mkdir()
        (root / "shared.bin").write_bytes(shared)
        (root / f"only-{name}.bin").write_bytes(os.urandom(400_000))
        (root / "notes.txt").write_bytes(text_bytes(20_000, name))
        trees[name] = root
    alpha1 = backup_tree(vault, trees["alpha"], "alpha")
    alpha2 = backup_tree(vault, trees["alpha"], "alpha", parent=alpha1)
    beta1 = backup_tree(vault, trees["beta"], "beta")
    return {"alpha1": alpha1, "alpha2": alpha2, "beta1": beta1}


@pytest.mark.parametrize("read_data", [True, False])
def test_verify_a_good_vault(vault: Vault, two_datasets, read_data: bool) -> None:
    report = verify_vault(reopen(vault), read_data=read_data)
    assert report.ok and report.read_data is read_data
    assert {b.backup_id for b in report.backups} == {m.backup_id for m in two_datasets.values()}
    assert all(b.ok and b.checked and b.status == "DONE" and b.chunks > 0 for b in report.backups)
    if read_data:
        stored_chunks = reopen(vault).chunks.index.locations
        assert report.chunks_read == len(stored_chunks)  # each unique chunk read exactly once
        assert report.packs_read == len(list(vault.store.list("data/")))
        assert report.bytes_read > 1_000_000
    else:
        assert report.chunks_read == report.bytes_read == 0
    assert report.to_dict()["ok"] is True


def test_corrupt_unique_chunk_fails_exactly_the_backups_that_use_it(vault: Vault, two_datasets) -> None:
    alpha1, alpha2, beta1 = two_datasets["alpha1"], two_datasets["alpha2"], two_datasets["beta1"]
    bad = file_chunks(vault, alpha1, "only-alpha.bin")[0]
    assert bad not in file_chunks(vault, beta1, "only-beta.bin") + file_chunks(vault, beta1, "shared.bin")
    flip_chunk_byte(vault, bad)

    report = by_id(verify_vault(reopen(vault), read_data=True))
    for m in (alpha1, alpha2):
        check = report[m.backup_id]
        assert not check.ok
        assert len(check.problems) == 1 and bad in check.problems[0]
    assert report[beta1.backup_id].ok and report[beta1.backup_id].problems == []

    # Without reading data, presence is all that is checked: the chunk is there.
    assert verify_vault(reopen(vault), read_data=False).ok


def test_corrupt_shared_chunk_fails_every_backup_that_uses_it(vault: Vault, two_datasets) -> None:
    bad = file_chunks(vault, two_datasets["beta1"], "shared.bin")[0]
    flip_chunk_byte(vault, bad, at=0.999)  # the tag
    report = verify_vault(reopen(vault), read_data=True)
    assert not report.ok
    for check in report.backups:
        assert not check.ok and any(bad in p for p in check.problems)


def test_corrupt_chunk_problem_names_the_chunk_its_pack_and_the_backups(vault: Vault, two_datasets) -> None:
    bad = file_chunks(vault, two_datasets["beta1"], "only-beta.bin")[0]
    pack = flip_chunk_byte(vault, bad)
    check = by_id(verify_vault(reopen(vault), read_data=True))[two_datasets["beta1"].backup_id]
    assert bad in check.problems[0] and pack in check.problems[0]
    assert f"used by backup beta/{two_datasets['beta1'].backup_id}" in check.problems[0]


def test_restore_of_a_corrupt_backup_fails_loudly(tmp_path: Path, vault: Vault, two_datasets) -> None:
    bad = file_chunks(vault, two_datasets["beta1"], "only-beta.bin")[0]
    flip_chunk_byte(vault, bad)
    with pytest.raises(IntegrityError, match=bad):
        restore_tree(reopen(vault), two_datasets["beta1"], tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*.seawall-partial"))
    restore_tree(reopen(vault), two_datasets["alpha2"], tmp_path / "alpha-out")  # others still restore


@pytest.mark.parametrize("read_data", [True, False])
def test_corrupt_manifest_makes_only_that_backup_unreadable(vault: Vault, two_datasets, read_data: bool) -> None:
    victim = two_datasets["alpha2"]
    flip_byte(vault.store.root / victim.key)
    report = verify_vault(reopen(vault), read_data=read_data)
    checks = by_id(report)
    assert not report.ok
    assert checks[victim.backup_id].status == "UNREADABLE"
    assert len(checks[victim.backup_id].problems) == 1
    assert f"manifest {victim.key}" in checks[victim.backup_id].problems[0]
    for other in ("alpha1", "beta1"):
        assert checks[two_datasets[other].backup_id].ok
    assert {m.backup_id for m in reopen(vault).list_backups()} == {
        two_datasets["alpha1"].backup_id, two_datasets["beta1"].backup_id}


def test_missing_chunk_is_reported_without_reading_data(vault: Vault, two_datasets) -> None:
    gone = file_chunks(vault, two_datasets["beta1"], "only-beta.bin")[0]
    pack = vault.chunk_object(gone)
    (vault.store.root / pack).unlink()
    for read_data in (False, True):
        report = verify_vault(reopen(vault), read_data=read_data)
        checks = by_id(report)
        beta = checks[two_datasets["beta1"].backup_id]
        assert not beta.ok and len(beta.problems) == 1
        assert pack in beta.problems[0] and "missing" in beta.problems[0]
        assert checks[two_datasets["alpha1"].backup_id].ok and checks[two_datasets["alpha2"].backup_id].ok


def test_verify_skips_unfinished_backups(tmp_path: Path, vault: Vault, two_datasets) -> None:
    src = tmp_path / "never-finished"
    src.mkdir()
    (src / "f").write_bytes(b"x")


    def interrupt(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backup_tree(vault, src, "gamma", progress=interrupt)
    report = verify_vault(reopen(vault), read_data=True)
    gamma = [b for b in report.backups if b.dataset == "gamma"]
    assert len(gamma) == 1 and gamma[0].status == "FAILED" and not gamma[0].checked
    assert report.ok


def test_verify_sees_chunks_deleted_after_the_vault_was_opened(one_chunk_per_pack, vault: Vault,
                                                              two_datasets) -> None:
    """The long-lived Vault that wrote the backups (a flow process) must not trust its chunk cache."""
    gone = file_chunks(vault, two_datasets["alpha1"], "only-alpha.bin")[0]
    (vault.store.root / vault.chunk_object(gone)).unlink()
    checks = by_id(verify_vault(vault, read_data=False))
    assert not checks[two_datasets["alpha1"].backup_id].ok
    assert not checks[two_datasets["alpha2"].backup_id].ok
    assert checks[two_datasets["beta1"].backup_id].ok


def test_backup_with_a_stale_chunk_cache_does_not_reference_missing_chunks(
    one_chunk_per_pack, tmp_path: Path, vault: Vault, two_datasets
) -> None:
    first = two_datasets["beta1"]
    gone = file_chunks(vault, first, "only-beta.bin")[0]
    (vault.store.root / vault.chunk_object(gone)).unlink()
    second = backup_tree(vault, tmp_path / "beta", "beta", parent=first)
    assert by_id(verify_vault(reopen(vault), read_data=False))[second.backup_id].ok

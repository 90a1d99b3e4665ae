"""WAL prefetch planning and the spooled restore_command (pure parts)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from seawall.postgres.walprefetch import segments_to_prefetch, spooled_command
from tests.unit.builders import make_manifest


def test_prefetch_follows_the_backup_timeline_from_its_start():
    manifest = make_manifest(kind="postgres-physical", source={"start_wal_file": "000000010000000000000003"})
    names = ["000000010000000000000002", "000000010000000000000004", "000000010000000000000003",
             "00000002.history", "000000020000000000000005", "000000010000000000000003.00000028.backup"]
    assert segments_to_prefetch(names, manifest) == ["000000010000000000000003", "000000010000000000000004"]
    assert segments_to_prefetch(names, make_manifest(source={})) == []


def test_spooled_command_moves_a_spooled_file_else_falls_back(tmp_path: Path):
    spool, dest = tmp_path / "spool dir", tmp_path / "pg_wal"
    spool.mkdir()
    dest.mkdir()
    (spool / "000000010000000000000003").write_bytes(b"wal")
    template = spooled_command(spool, "echo fallback %f > " + str(dest / "fallback.txt"))

    def run(name: str) -> None:
        cmd = template.replace("%f", name).replace("%p", str(dest / name))
        subprocess.run(["sh", "-c", cmd], check=True)

    run("000000010000000000000003")
    assert (dest / "000000010000000000000003").read_bytes() == b"wal"
    assert not (spool / "000000010000000000000003").exists()
    run("000000010000000000000004")
    assert (dest / "fallback.txt").read_text().strip() == "fallback 000000010000000000000004"


def test_names_missing_from_the_archive_are_answered_without_the_vault(tmp_path: Path):
    spool, dest = tmp_path / "spool", tmp_path / "pg_wal"
    spool.mkdir()
    dest.mkdir()
    (spool / ".archived").write_text("000000010000000000000003\n00000002.history\n000000020000000000000004\n")
    (spool / "00000002.history").write_text("1\t0/3000000\tno recovery target specified\n")
    template = spooled_command(spool, "echo fallback > " + str(dest / "fallback.txt"))

    def run(name: str) -> int:
        cmd = template.replace("%f", name).replace("%p", str(dest / name))
        return subprocess.run(["sh", "-c", cmd]).returncode

    assert run("00000003.history") == 1  # a future timeline PostgreSQL probes for: not archived
    assert not (dest / "fallback.txt").exists()
    assert run("00000002.history") == 0 and run("00000002.history") == 0  # copied, so asked twice is fine
    assert (spool / "00000002.history").exists()
    assert run("000000020000000000000004") == 0  # archived but not spooled: the vault is asked
    assert (dest / "fallback.txt").exists()


def _flagged_spool(tmp_path: Path) -> tuple[Path, Path]:
    """(spool, pg_wal): the spool holds segment 7, flagged to be kept (asked for twice)."""
    spool, dest = tmp_path / "spool", tmp_path / "pg_wal"
    spool.mkdir()
    dest.mkdir()
    (spool / "000000010000000000000007").write_bytes(b"last")
    (spool / "000000010000000000000007.keep").touch()
    return spool, dest


def test_a_flagged_segment_is_copied_so_it_can_be_asked_for_again(tmp_path: Path):
    """PostgreSQL reads the newest segment a second time when recovery ends there."""
    spool, dest = _flagged_spool(tmp_path)
    template = spooled_command(spool, "exit 7")

    def run(name: str) -> int:
        cmd = template.replace("%f", name).replace("%p", str(dest / "RECOVERYXLOG"))
        return subprocess.run(["sh", "-c", cmd]).returncode

    assert run("000000010000000000000007") == 0
    # a hard link (no 16 MiB copy for PostgreSQL to fsync), renamed into place by the server
    assert (dest / "RECOVERYXLOG").stat().st_ino == (spool / "000000010000000000000007").stat().st_ino
    (dest / "RECOVERYXLOG").rename(dest / "000000010000000000000007")
    assert run("000000010000000000000007") == 0  # still spooled: the vault is not asked
    assert (dest / "RECOVERYXLOG").read_bytes() == b"last"


def test_a_flagged_segment_is_copied_where_it_cannot_be_linked(tmp_path: Path):
    spool, dest = _flagged_spool(tmp_path)
    (dest / "RECOVERYXLOG").write_bytes(b"stale")  # ln refuses an existing name, as it would EXDEV
    cmd = spooled_command(spool, "exit 7").replace("%f", "000000010000000000000007")
    subprocess.run(["sh", "-c", cmd.replace("%p", str(dest / "RECOVERYXLOG"))], check=True)
    assert (dest / "RECOVERYXLOG").read_bytes() == b"last"
    assert (dest / "RECOVERYXLOG").stat().st_ino != (spool / "000000010000000000000007").stat().st_ino


class _Archive:
    """A WAL archive holding segments 3..6 of timeline 1 and one history file."""

    def __init__(self, vault: object) -> None:
        self.fetched: list[str] = []

    def names(self) -> list[str]:
        return ["00000001.history"] + [f"00000001000000000000000{n}" for n in range(3, 7)]

    def get(self, name: str, dest: Path) -> None:
        Path(dest).write_bytes(name.encode())


def test_an_immediate_restore_lists_only_its_path(tmp_path: Path, monkeypatch) -> None:
    """With `path_only` (target immediate) a segment after the path is "not archived" to
    restore_command: PostgreSQL's read-ahead asks for it, and the vault is never asked."""
    from seawall.postgres import walprefetch

    monkeypatch.setattr(walprefetch, "WalArchive", _Archive)
    manifest = make_manifest(kind="postgres-physical", source={"start_wal_file": "000000010000000000000003"})
    path = ["000000010000000000000003", "000000010000000000000004"]
    for path_only, listed in ((True, ["00000001.history", *path]), (False, _Archive(None).names())):
        spool = tmp_path / f"spool-{path_only}"
        prefetch = walprefetch.WalPrefetcher(object(), manifest, spool, names=path, path_only=path_only).start()
        try:
            assert (spool / ".archived").read_text().split() == listed
            template = spooled_command(spool, "exit 9")  # 9: the vault would have been asked
            cmd = template.replace("%f", "000000010000000000000005").replace("%p", str(tmp_path / "x"))
            assert subprocess.run(["sh", "-c", cmd]).returncode == (1 if path_only else 9)
        finally:
            prefetch.close()

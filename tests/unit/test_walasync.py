"""Async WAL push: the spool's status rules and the push daemon against a real local vault.

The daemon runs on a thread here (the CLI runs it as its own process); the foreground is the same
`push_async` archive_command uses, so acknowledging, conflicts and stale statuses are the real code.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from seawall.crypto import ScryptParams
from seawall.errors import ConfigError, PermanentError
from seawall.postgres.wal import WalArchive
from seawall.postgres.walasync import push_async
from seawall.postgres.walpushd import PushDaemon
from seawall.postgres.walspool import SpoolDir
from seawall.vault import init_vault, open_vault

PASSPHRASE = "unit passphrase"
SEG = 16 << 20


def segment(segno: int, sysid: int = 7300000000000000001, fill: bytes = b"w") -> bytes:
    """The first 8 KiB of a WAL segment: a long page header where the name says (xlog_internal.h)."""
    header = ((0xD110).to_bytes(2, sys.byteorder) + (0x0002).to_bytes(2, sys.byteorder)
              + (1).to_bytes(4, sys.byteorder) + (segno * SEG).to_bytes(8, sys.byteorder) + bytes(8)
              + sysid.to_bytes(8, sys.byteorder) + SEG.to_bytes(4, sys.byteorder) + (8192).to_bytes(4, sys.byteorder))
    return header + fill * (8192 - len(header))


def name_of(segno: int) -> str:
    return f"00000001{segno >> 8:08X}{segno & 0xFF:08X}"


class Cluster:
    def __init__(self, tmp: Path):
        self.wal = tmp / "data dir" / "pg_wal"
        (self.wal / "archive_status").mkdir(parents=True)
        self.url = f"file://{tmp / 'vault é'}"
        init_vault(self.url, PASSPHRASE, scrypt=ScryptParams(n=2**10))
        self.spool = SpoolDir.of(str(tmp / "spool"), "push", str(self.wal), self.url)

    def ready(self, segno: int, **kw) -> str:
        name = name_of(segno)
        (self.wal / name).write_bytes(segment(segno, **kw))
        (self.wal / "archive_status" / f"{name}.ready").touch()
        return name

    def done(self, name: str) -> None:
        os.replace(self.wal / "archive_status" / f"{name}.ready", self.wal / "archive_status" / f"{name}.done")

    def archive(self) -> WalArchive:
        return WalArchive(open_vault(self.url, PASSPHRASE))


@pytest.fixture
def cluster(tmp_path: Path):
    c = Cluster(tmp_path)
    c.spool.prepare("ok", "error")
    daemon = PushDaemon(c.spool, str(c.wal), c.archive, jobs=3, idle=30)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    yield c
    daemon.stop.set()
    thread.join(10)


def test_ready_files_are_pushed_and_acknowledged_one_by_one(cluster: Cluster) -> None:
    names = [cluster.ready(n) for n in range(3, 8)]
    for name in names:
        assert push_async(str(cluster.wal / name), cluster.spool, [], timeout=20) == "archived"
        cluster.done(name)
    archive = cluster.archive()
    assert [archive.read(n) for n in names] == [(cluster.wal / n).read_bytes() for n in names]
    deadline = time.monotonic() + 5  # statuses of acknowledged files are swept (PRUNE_EVERY)
    while os.listdir(cluster.spool.sub("ok")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.listdir(cluster.spool.sub("ok")) == []

    # PostgreSQL calls again after a crash: the identical file is success.
    again = cluster.ready(3)
    assert push_async(str(cluster.wal / again), cluster.spool, [], timeout=20) == "already archived"


def test_different_content_under_an_archived_name_is_refused_and_not_retried(cluster: Cluster) -> None:
    name = cluster.ready(9)
    assert push_async(str(cluster.wal / name), cluster.spool, [], timeout=20) == "archived"
    forged = cluster.ready(9, fill=b"x")
    with pytest.raises(PermanentError, match="different content") as info:
        push_async(str(cluster.wal / forged), cluster.spool, [], timeout=20)
    assert info.value.exit_code == 1 and "\n" not in str(info.value)
    assert cluster.archive().read(name) == segment(9)


def test_a_status_of_another_file_under_the_same_name_never_acknowledges(cluster: Cluster, tmp_path: Path) -> None:
    name = cluster.ready(12)
    other = tmp_path / "other"
    other.write_bytes(b"an earlier life of the cluster")
    cluster.spool.write_ok(name, os.stat(other), "archived")
    assert not cluster.spool.ok_matches(name, os.stat(cluster.wal / name))
    assert push_async(str(cluster.wal / name), cluster.spool, [], timeout=20) == "archived"
    assert cluster.archive().read(name) == (cluster.wal / name).read_bytes()


def test_a_spool_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    with pytest.raises(ConfigError, match="not a private directory"):
        SpoolDir.of(str(root), "push", str(tmp_path), "file:///v").prepare("ok")


@pytest.mark.parametrize("argv, expected", [
    (["wal-push", "p", "--async", "--jobs", "0"], "--jobs: must be at least 1"),
    (["wal-get", "f", "p", "--prefetch", "4", "--spool-max", "lots"], "not a size"),
])
def test_bad_async_options_are_one_line_exit_2(argv: list[str], expected: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from seawall.cli.wal import main

    code = main([*argv, "--vault", "file:///v"])
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert code == (126 if argv[0] == "wal-get" else 2)


def test_the_fast_path_answers_only_for_the_very_file_the_daemon_pushed(tmp_path: Path) -> None:
    from seawall.postgres.walack import acknowledged

    c = Cluster(tmp_path)
    name = c.ready(20)
    argv = [str(c.wal / name), "--async", "--vault", c.url, "--spool", str(tmp_path / "spool")]
    assert not acknowledged(argv)  # nothing recorded yet
    c.spool.prepare("ok").write_ok(name, os.stat(c.wal / name), "archived")
    assert acknowledged(argv)
    assert not acknowledged([*argv, "--some-new-option"])  # unknown: the full path decides
    os.chown(c.spool.sub("ok", name), 4321, -1)  # a status someone else wrote is never trusted
    assert not acknowledged(argv)
    os.chown(c.spool.sub("ok", name), os.getuid(), -1)
    assert acknowledged(argv)
    (c.wal / name).write_bytes(segment(20, fill=b"z"))  # another file under that name now
    os.utime(c.wal / name, ns=(1, 1))
    assert not acknowledged(argv)


def test_the_fast_path_waits_for_the_running_daemon_and_steps_aside_on_an_error(cluster: Cluster) -> None:
    from seawall.postgres.walack import acknowledged

    argv = ["--async", "--vault", cluster.url, "--spool", cluster.spool.root, "--timeout", "20"]
    lock = Path(cluster.spool.lock_path)  # its pid is written once the daemon (a thread here) holds it
    deadline = time.monotonic() + 10
    while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.01)
    name = cluster.ready(30)  # the daemon runs: the call waits for its ok
    assert acknowledged([str(cluster.wal / name), *argv])
    cluster.done(name)

    stuck = name_of(31)  # written but never marked .ready: the daemon never pushes it
    (cluster.wal / stuck).write_bytes(segment(31))
    started = time.monotonic()
    assert not acknowledged([str(cluster.wal / stuck), *argv[:-1], "0.3"])  # --timeout: then the full path
    assert 0.3 <= time.monotonic() - started < 5
    cluster.spool.write_error(stuck, 1, False, "refused")  # a verdict against it: the full path reports it
    started = time.monotonic()
    assert not acknowledged([str(cluster.wal / stuck), *argv])
    assert time.monotonic() - started < 1


def test_a_whole_segment_is_sealed_in_the_aligned_buffer_and_written_past_the_page_cache(tmp_path: Path) -> None:
    from tests.unit.test_local_direct_io import cached_pages

    c = Cluster(tmp_path)
    data = segment(40) + os.urandom(SEG // 2) + bytes(SEG // 2 - 8192)  # half noise: sealed ~8 MiB
    archive = c.archive()
    view = memoryview(bytearray(data))  # what the daemon passes: a view of its reused read buffer
    assert archive.push_bytes(name_of(40), view) == "archived"
    stored = Path(c.url.removeprefix("file://")) / archive.key(name_of(40))
    in_cache, pages = cached_pages(stored)
    assert pages > 2000 and in_cache <= 1  # only the unaligned tail went through the cache
    assert c.archive().read(name_of(40)) == data
    assert archive.push_bytes(name_of(40), view) == "already archived"

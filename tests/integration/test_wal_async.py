"""Async WAL archiving against real PostgreSQL: archive_command = `seawall wal-push %p --async`.

Faults are real: the S3 vault sits behind a TCP gate that refuses connections (vault unreachable) or
holds requests (a push in flight when the daemon is killed -9), the spool lives on a full tmpfs.
The invariant checked throughout: a segment PostgreSQL counts as archived is in the vault.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from seawall.crypto import ScryptParams
from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster, make_private_dir
from seawall.postgres.wal import WalArchive
from seawall.postgres.walspool import SpoolDir
from seawall.vault import init_vault, open_vault
from tests.fixtures.postgres import PASSPHRASE, SEAWALL_BIN

SCRYPT = ScryptParams(n=2**12)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class TcpGate:
    """A loopback TCP relay to `upstream`: up, down (connections refused and cut) or hold (requests
    are taken but not forwarded until `up()`, open keep-alive connections included)."""

    def __init__(self, upstream: str):
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode = "up"
        self.held = 0
        self.released = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def down(self) -> None:
        self.mode = "down"
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def hold(self) -> None:
        self.released.clear()
        self.mode = "hold"

    def up(self) -> None:
        self.mode = "up"
        self.released.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "down":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            self.conns += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, request: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                if request and self.mode == "hold":
                    self.held += 1
                    self.released.wait()
                if self.mode == "down":
                    break
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        self.up()
        self.down()


class AsyncCluster:
    """A primary archiving with `wal-push --async` into `vault_url`, its spool under `spool`."""

    def __init__(self, workdir: Path, vault_url: str, spool: Path, *, env: str = "", timeout: float = 60,
                 extra: dict | None = None):
        pass_file = workdir / "pass phrase"
        pass_file.write_text(PASSPHRASE)
        binaries.chown_to_server_user(pass_file)
        pass_file.chmod(0o600)
        self.vault_url, self.spool_root, self.pass_file = vault_url, spool, pass_file
        q = shlex.quote
        command = (f"{env}{SEAWALL_BIN} wal-push %p --async --timeout {timeout:g} --idle 20 --spool {q(str(spool))}"
                   f" --vault {q(vault_url)} --passphrase-file {q(str(pass_file))}")
        self.cluster = LocalCluster.create(workdir, settings={
            "archive_mode": "on", "archive_command": command, "wal_level": "replica", **(extra or {})})
        self.cluster.start()

    @property
    def spool(self) -> SpoolDir:
        return SpoolDir.of(str(self.spool_root), "push", str(self.cluster.datadir / "pg_wal"), self.vault_url)

    def stats(self) -> dict:
        row = self.cluster.execute("SELECT archived_count, last_archived_wal, failed_count FROM pg_stat_archiver")[0]
        return dict(zip(("archived", "last", "failed"), row, strict=True))

    def switch(self) -> str:
        self.cluster.execute("CREATE TABLE IF NOT EXISTS t (i int); INSERT INTO t SELECT generate_series(1, 500)")
        return self.cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]

    def ready(self) -> list[str]:
        status = self.cluster.datadir / "pg_wal" / "archive_status"
        return sorted(p.name.removesuffix(".ready") for p in status.glob("*.ready"))

    def archived(self, name: str) -> bool:
        return (self.stats()["last"] or "") >= name and name not in self.ready()

    def stop(self) -> None:
        self.cluster.remove()
        pid = self.spool.daemon_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)


def assert_acknowledged_are_durable(pg: AsyncCluster, archive: WalArchive) -> None:
    """Every segment PostgreSQL marked .done since the start is in the vault, byte for byte."""
    status = pg.cluster.datadir / "pg_wal" / "archive_status"
    for done in status.glob("*.done"):
        name = done.name.removesuffix(".done")
        path = pg.cluster.datadir / "pg_wal" / name
        data = archive.read(name)  # raises ObjectNotFound if acknowledged but not archived
        if path.exists():
            assert data == path.read_bytes(), name


@pytest.fixture
def gate(moto_server: str) -> Iterator[TcpGate]:
    tcp = TcpGate(moto_server)
    yield tcp
    tcp.close()


@pytest.fixture
def s3_async(pg_workdir: Path, s3_env: dict[str, str], gate: TcpGate,
             moto_server: str) -> Iterator[tuple[AsyncCluster, WalArchive]]:
    """A primary archiving asynchronously into an S3 vault reached through `gate`; the test's own
    view of the vault goes to moto directly."""
    import uuid

    bucket = f"seawall-walasync-{uuid.uuid4().hex[:12]}"
    direct = f"s3://{bucket}/v?region=eu-west-1&endpoint={moto_server}"
    init_vault(direct, PASSPHRASE, scrypt=SCRYPT)
    env = "".join(f"{k}={v} " for k, v in s3_env.items())
    pg = AsyncCluster(pg_workdir, direct.replace(moto_server, gate.url), make_private_dir("spool-", str(pg_workdir)),
                      env=env, timeout=8)
    yield pg, WalArchive(open_vault(direct, PASSPHRASE))
    pg.stop()


def test_unreachable_vault_makes_postgres_retry_and_loses_nothing(s3_async, gate: TcpGate) -> None:
    pg, archive = s3_async
    first = pg.switch()
    wait_for(lambda: pg.archived(first), f"{first} to be archived")

    gate.down()
    pending = pg.switch()
    wait_for(lambda: pg.stats()["failed"] > 0, "the archiver to fail")
    assert pending in pg.ready()
    log = pg.cluster.log_tail(40)
    assert "seawall wal-push: error:" in log and "Traceback" not in log and PASSPHRASE not in log
    assert_acknowledged_are_durable(pg, archive)

    gate.up()
    later = pg.switch()  # new WAL wakes the archiver, which retries the oldest file first
    wait_for(lambda: pg.archived(later), f"{pending} and {later} to be archived after the vault returned", 40)
    assert pending in archive.names() and later in archive.names()
    assert_acknowledged_are_durable(pg, archive)


def test_daemon_killed_mid_push_acknowledges_nothing_and_is_restarted(s3_async, gate: TcpGate) -> None:
    pg, archive = s3_async
    first = pg.switch()
    wait_for(lambda: pg.archived(first), f"{first} to be archived")
    old_pid = pg.spool.daemon_pid()
    assert old_pid

    gate.hold()  # the daemon's next PUT hangs inside the vault's put
    pending = pg.switch()
    wait_for(lambda: gate.held, "a push to be in flight", 10)
    os.kill(old_pid, signal.SIGKILL)
    time.sleep(0.5)
    assert pending in pg.ready() and not pg.archived(pending)
    assert pending not in archive.names()
    assert_acknowledged_are_durable(pg, archive)

    gate.up()
    wait_for(lambda: pg.archived(pending), f"{pending} to be archived by a restarted daemon", 40)
    new_pid = pg.spool.daemon_pid()
    assert new_pid and new_pid != old_pid
    assert_acknowledged_are_durable(pg, archive)


@pytest.fixture
def tiny_spool(pg_workdir: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs the server OS user owns: a spool disk that can really fill up."""
    import pwd

    mount = make_private_dir("tinyspool-", str(pg_workdir))
    uid = pwd.getpwnam(binaries.os_user() or "root").pw_uid
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=2m,mode=0700,uid={uid}", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_spool_is_an_error_and_loses_nothing(pg_workdir: Path, tiny_spool: Path) -> None:
    url = f"file://{make_private_dir('vault-', str(pg_workdir))}"
    init_vault(url, PASSPHRASE, scrypt=SCRYPT)
    pg = AsyncCluster(pg_workdir, url, tiny_spool / "spool root")
    archive = WalArchive(open_vault(url, PASSPHRASE))
    try:
        first = pg.switch()
        wait_for(lambda: pg.archived(first), f"{first} to be archived")
        filler = tiny_spool / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as fh:  # until ENOSPC: not one page left
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()

        pending = pg.switch()
        wait_for(lambda: pg.stats()["failed"] > 0, "the archiver to fail on the full spool")
        assert pending in pg.ready() and not pg.archived(pending)
        assert "is full" in pg.cluster.log_tail(20)
        assert_acknowledged_are_durable(pg, archive)

        filler.unlink()
        later = pg.switch()
        wait_for(lambda: pg.archived(later), f"{pending} and {later} to be archived once the spool has room")
        assert {first, pending, later} <= set(archive.names())
        assert_acknowledged_are_durable(pg, archive)
    finally:
        pg.stop()


def _pgbench(cluster: LocalCluster, *args: str) -> None:
    argv = [binaries.tool("pgbench"), "-h", str(cluster.socket_dir), "-p", str(cluster.port), "-U", "postgres",
            *args, "postgres"]
    binaries.run(argv, as_server_user=False)


def _totals(cluster: LocalCluster) -> tuple:
    return cluster.execute("SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT count(*) FROM"
                           " pgbench_history), (SELECT string_agg(note, ',') FROM marker)")[0]


def test_async_push_under_pgbench_then_pitr_with_prefetch_loses_nothing(pg_workdir: Path) -> None:
    url = f"file://{make_private_dir('vault ü-', str(pg_workdir))}"
    init_vault(url, PASSPHRASE, scrypt=SCRYPT)
    spool = make_private_dir("spool-", str(pg_workdir))
    pg = AsyncCluster(pg_workdir, url, spool, extra={"max_wal_size": "64MB", "min_wal_size": "32MB"})
    restored = None
    try:
        primary = pg.cluster
        base = make_private_dir("base-", str(pg_workdir)) / "data"
        binaries.run([binaries.tool("pg_basebackup"), "-D", str(base), "-X", "none", "-c", "fast",
                      "-d", primary.conninfo()])
        _pgbench(primary, "-i", "-s", "3", "-q")
        _pgbench(primary, "-c", "4", "-j", "2", "-T", "4", "-n")
        primary.execute("CREATE TABLE marker (note text); INSERT INTO marker VALUES ('it''s all \"there\"')")
        last = primary.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        wait_for(lambda: pg.archived(last), f"every segment up to {last} to be archived", 60)
        assert pg.stats()["failed"] == 0
        expected = _totals(primary)
        archive = WalArchive(open_vault(url, PASSPHRASE))
        assert_acknowledged_are_durable(pg, archive)
        primary.stop()

        assert sum(1 for n in archive.names() if len(n) == 24) > 5
        restored = _restore(base, pg)
        assert _totals(restored) == expected
        get_spool = SpoolDir.of(str(spool), "get", str(base / "pg_wal"), url)
        assert "started" in Path(get_spool.log_path).read_text()  # the prefetch daemon served it

        # Both daemons are listed, and `wal-async stop` ends them.
        status = json.loads(_cli("wal-async", "status", "--json", "--spool", str(spool)))
        assert {d["kind"] for d in status["daemons"] if d["pid"]} == {"push", "get"}
        _cli("wal-async", "stop", "--spool", str(spool))
        assert not any(d["pid"] for d in json.loads(_cli("wal-async", "status", "--json", "--spool",
                                                          str(spool)))["daemons"])
        fetched = re.search(r"exiting after (\d+) fetched", Path(get_spool.log_path).read_text())
        assert fetched and int(fetched.group(1)) > 0  # recovery was served from the prefetch spool
    finally:
        if restored is not None:
            restored.remove()
        pg.stop()


def _cli(*argv: str) -> str:
    result = subprocess.run([SEAWALL_BIN, *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _restore(base: Path, pg: AsyncCluster) -> LocalCluster:
    """Start the base backup with restore_command = wal-get --prefetch, recovering to the archive's end."""
    q = shlex.quote
    pass_file = pg.pass_file
    restore = (f"{SEAWALL_BIN} wal-get %f %p --prefetch 4 --jobs 2 --idle 5 --spool {q(str(pg.spool_root))}"
               f" --vault {q(pg.vault_url)} --passphrase-file {q(str(pass_file))}")
    (base.parent / "sock").mkdir()
    binaries.chown_to_server_user(base.parent / "sock")
    cluster = LocalCluster(base, socket_dir=str(base.parent / "sock"))
    cluster.configure({"archive_mode": "off", "restore_command": restore, "recovery_target_action": "promote",
                       "port": cluster.port})
    (base / "recovery.signal").touch()
    binaries.chown_to_server_user(base / "recovery.signal")
    cluster.start()
    cluster.wait_ready(writable=True, timeout=120)
    return cluster

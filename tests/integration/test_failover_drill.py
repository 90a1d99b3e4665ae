"""Failover drills against a real primary + streaming standby on loopback, with pgbench write load.

Acceptance (issue 6): 1 end to end with measured RTO/RPO and the original topology restored with
zero lag; 3 Route53 UPSERT on a moto server; 4 SIGKILL right after promotion, rerun with the same
drill id: no second promotion, never two writable primaries; 5 a standby that is not streaming
stops the drill in preflight and changes nothing; 6 a restore drill from a DR vault; bad input:
same server twice, a standby of another cluster, no checksums/wal_log_hints (re-clone), a missed
RTO objective.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from blocks.drill import DrillObjectives, PostgresNode, TrafficSwitchBlock
from flows.failover_drill import failover_drill
from seawall.drill import ops
from seawall.drill.state import DirStateStore, DrillFailed, ObjectiveMissed, load_state
from seawall.drill.switch import Route53Switch
from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster, free_port, make_private_dir


@pytest.fixture(scope="module", autouse=True)
def prefect_harness():
    # Imported here, not at the top: it loads Prefect's whole server (~2 CPU-s), and every xdist
    # worker imports every test module to collect it, most of them never running these tests.
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass
class Pair:
    """A primary and a streaming standby made with pg_basebackup -R."""

    primary: LocalCluster
    standby: LocalCluster
    archive: Path
    nodes: dict = field(default_factory=dict)

    def node(self, which: str, **extra) -> PostgresNode:
        c = self.primary if which == "primary" else self.standby
        return PostgresNode(name=which, dsn=c.conninfo(), datadir=str(c.datadir), **extra)


def make_standby(primary: LocalCluster, base: Path, archive_dir: Path) -> LocalCluster:
    root = make_private_dir("standby-", str(base))
    sock = root / "sock"
    sock.mkdir()
    binaries.chown_to_server_user(sock)
    standby = LocalCluster(root / "data", free_port(), socket_dir=str(sock))
    binaries.run([binaries.tool("pg_basebackup"), "-D", str(standby.datadir), "-d", primary.conninfo(),
                  "-X", "stream", "-R", "-c", "fast"])
    # The copy inherits the primary's port, sockets and archive_command: give it its own.
    standby.configure({"port": standby.port, "unix_socket_directories": str(sock),
                       "archive_command": f"test ! -f {archive_dir}/%f && cp %p {archive_dir}/%f"})
    standby.start()
    return standby


def wait_streaming(primary: LocalCluster, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if primary.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")[0][0]:
            return
        time.sleep(0.2)
    raise AssertionError("standby never started streaming")


def build_pair(base: Path, *, checksums: bool = True) -> Pair:
    archive = make_private_dir("archive-", str(base))
    archive2 = make_private_dir("archive-standby-", str(base))
    primary = LocalCluster.create(base, checksums=checksums, settings={
        "archive_mode": "on", "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
        "wal_keep_size": "512MB", "max_wal_size": "256MB", "hot_standby": "on"})
    primary.start()
    try:
        standby = make_standby(primary, base, archive2)
        wait_streaming(primary)
    except BaseException:
        primary.remove()
        raise
    return Pair(primary, standby, archive)


@pytest.fixture
def pair(pg_workdir: Path) -> Iterator[Pair]:
    p = build_pair(pg_workdir)
    yield p
    p.standby.remove()
    p.primary.remove()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEAWALL_DRILL_STATE_DIR", str(tmp_path / "drills"))
    return tmp_path / "drills"


class Load:
    """pgbench -c 2 in the background (its connection errors during the switch are expected)."""

    def __init__(self, cluster: LocalCluster, seconds: int):
        binaries.run([binaries.tool("pgbench"), "-i", "-s", "5", "-q", cluster.conninfo()], as_server_user=False)
        self.proc = subprocess.Popen([binaries.tool("pgbench"), "-c", "2", "-T", str(seconds), "-n",
                                      cluster.conninfo()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(30)


class WritableMonitor:
    """Polls both nodes; records any moment both accept writes (must never happen)."""

    def __init__(self, *clusters: LocalCluster):
        self.clusters, self.both, self.samples = clusters, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def writable(c: LocalCluster) -> bool:
        try:
            with psycopg.connect(c.conninfo(), autocommit=True, connect_timeout=1) as pg:
                return not pg.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        except psycopg.Error:
            return False

    def _run(self) -> None:
        while not self._stop.is_set():
            if all(self.writable(c) for c in self.clusters):
                self.both += 1
            self.samples += 1
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def promote_requests(c: LocalCluster) -> int:
    return c.logfile.read_text(errors="replace").count(ops.PROMOTE_LOG_LINE)


def assert_original_topology(p: Pair) -> None:
    assert p.primary.execute("SELECT pg_is_in_recovery()")[0][0] is False
    assert p.standby.execute("SELECT pg_is_in_recovery()")[0][0] is True
    lsn = p.primary.execute("SELECT pg_current_wal_lsn()::text")[0][0]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = p.primary.execute("SELECT state, pg_wal_lsn_diff(%s::pg_lsn, replay_lsn) FROM pg_stat_replication",
                                 (lsn,))
        if rows and rows[0][0] == "streaming" and rows[0][1] <= 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"standby not streaming with zero lag: {rows}")


# ---- acceptance 1 (+3: Route53 on moto) -----------------------------------------------------------
def test_drill_end_to_end_with_route53(pair: Pair, state_dir: Path, moto_server: str, s3_env) -> None:
    r53 = Route53Switch("", "db.drill.example.com.", endpoint_url=moto_server)
    zone = r53._client().create_hosted_zone(Name="drill.example.com.", CallerReference=str(time.time()))
    r53.zone_id = zone["HostedZone"]["Id"].split("/")[-1]
    switch = TrafficSwitchBlock(route53_zone_id=r53.zone_id, record_name=r53.record, endpoint_url=moto_server)
    seen: list[str | None] = []
    original = Route53Switch.point_to

    def spy(self, node_name, value):  # records the record's value after each UPSERT
        out = original(self, node_name, value)
        seen.append(r53.current())
        return out

    load = Load(pair.primary, 25)
    monitor = WritableMonitor(pair.primary, pair.standby)
    time.sleep(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Route53Switch, "point_to", spy)
            report = failover_drill(pair.node("primary", endpoint="db1.drill.example.com"),
                                    pair.node("standby", endpoint="db2.drill.example.com"), switch=switch,
                                    objectives=DrillObjectives(rto_seconds=120, rpo_seconds=30))
    finally:
        monitor.stop()
        load.stop()
    assert report.status == "PASSED", report
    m = report.measurements
    assert m.rto_s is not None and 0 < m.rto_writable_s <= m.rto_s < 120
    assert m.rpo_s is not None and m.rpo_lost_transactions is not None and m.heartbeats_committed >= 3
    assert [s.name for s in report.steps] == ["preflight", "heartbeat", "fence", "promote", "switch", "checks",
                                              "measure", "fail_back", "final_health"]
    assert all(s.ok and s.seconds is not None for s in report.steps)
    assert seen == ["db2.drill.example.com", "db1.drill.example.com"]
    assert r53.current() == "db1.drill.example.com"
    assert report.promotions == {"standby": 1, "primary": 1}
    assert sum("rejoined" in n and "(pg_rewind:" in n for n in report.notes) == 2, report.notes
    assert monitor.both == 0 and monitor.samples > 10
    assert_original_topology(pair)


# ---- acceptance 5 and bad input: preflight stops the drill, nothing is touched -------------------
def _untouched(p: Pair) -> None:
    assert p.primary.execute("SELECT pg_is_in_recovery()")[0][0] is False
    assert p.standby.execute("SELECT pg_is_in_recovery()")[0][0] is True
    assert p.primary.execute("SELECT to_regclass('public.seawall_heartbeat')")[0][0] is None
    assert promote_requests(p.standby) == 0


def test_standby_not_streaming_stops_in_preflight(pair: Pair, state_dir: Path) -> None:
    pair.standby.execute("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1 connect_timeout=1'")
    pair.standby.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 30
    while pair.standby.execute("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")[0][0]:
        assert time.monotonic() < deadline, "wal receiver kept streaming"
        time.sleep(0.2)
    with pytest.raises(DrillFailed) as info:
        failover_drill(pair.node("primary"), pair.node("standby"))
    report = info.value.report
    assert "standby is not streaming from primary" in str(info.value)
    assert report.status == "FAILED" and [s.name for s in report.steps] == ["preflight"]
    failed = {c["name"] for c in report.preflight if not c["ok"]}
    assert "standby-streaming" in failed
    _untouched(pair)
    # fixed, the same drill id runs again from preflight (nothing had been touched)
    pair.standby.execute(f"ALTER SYSTEM SET primary_conninfo = '{pair.primary.conninfo()}'")
    pair.standby.execute("SELECT pg_reload_conf()")
    wait_streaming(pair.primary)
    again = failover_drill(pair.node("primary"), pair.node("standby"), drill_id=report.drill_id, fail_back=False)
    assert again.drill_id == report.drill_id and again.status == "PASSED"
    assert pair.standby.execute("SELECT pg_is_in_recovery()")[0][0] is False  # no fail-back asked


def test_same_server_twice_is_refused(pair: Pair, state_dir: Path) -> None:
    with pytest.raises(DrillFailed) as info:
        failover_drill(pair.node("primary"), PostgresNode(name="standby", dsn=pair.primary.conninfo(),
                                                          datadir=str(pair.primary.datadir)))
    assert "same server" in str(info.value) and info.value.exit_code == 2
    _untouched(pair)


def test_standby_of_another_cluster_is_refused(pair: Pair, state_dir: Path, pg_workdir: Path) -> None:
    other = LocalCluster.create(pg_workdir)
    other.start()
    try:
        with pytest.raises(DrillFailed) as info:
            failover_drill(pair.node("primary"), PostgresNode(name="standby", dsn=other.conninfo(),
                                                              datadir=str(other.datadir)))
    finally:
        other.remove()
    assert "belongs to another cluster" in str(info.value)
    _untouched(pair)


# ---- bad input: no checksums / wal_log_hints → re-clone; RTO objective missed ------------------------
@pytest.fixture
def pair_no_checksums(pg_workdir: Path) -> Iterator[Pair]:
    p = build_pair(pg_workdir, checksums=False)
    yield p
    p.standby.remove()
    p.primary.remove()


def test_no_rewind_possible_reclones_and_rto_objective_missed(pair_no_checksums: Pair, state_dir: Path) -> None:
    p = pair_no_checksums
    state = failover_drill(p.node("primary"), p.node("standby"), return_state=True,
                           objectives=DrillObjectives(rto_seconds=0.001, rpo_seconds=30))
    assert state.is_failed()
    with pytest.raises(ObjectiveMissed) as info:
        state.result()
    report = info.value.report
    assert report.status == "OBJECTIVE_MISSED" and report.rto_met is False
    assert all(s.ok for s in report.steps) and len(report.steps) == 9
    assert any("re-cloned with pg_basebackup instead of pg_rewind" in n for n in report.notes), report.notes
    assert_original_topology(p)


# ---- acceptance 4: SIGKILL right after promotion, rerun with the same drill id -------------------------
def _cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seawall.cli.drill", "drill", "failover", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_killed_after_promotion_resumes_without_second_promotion(pair: Pair, state_dir: Path,
                                                                 prefect_server) -> None:
    env = dict(os.environ, PREFECT_API_URL=prefect_server["url"], PREFECT_HOME=prefect_server["home"],
               SEAWALL_DRILL_STATE_DIR=str(state_dir), COLUMNS="200")
    args = ["--primary-dsn", pair.primary.conninfo(), "--primary-datadir", str(pair.primary.datadir),
            "--standby-dsn", pair.standby.conninfo(), "--standby-datadir", str(pair.standby.datadir),
            "--drill-id", "drill-kill-test", "--json"]
    load = Load(pair.primary, 20)
    monitor = WritableMonitor(pair.primary, pair.standby)
    try:
        first = _cli(args, dict(env, SEAWALL_DRILL_TEST_KILL_AFTER="promote"))
        assert first.returncode == -9, first.stderr[-2000:]
        state = load_state(DirStateStore(str(state_dir)), "drill-kill-test")
        assert state.promotions == {"standby": 1} and not state.done("promote") and state.done("fence")
        assert promote_requests(pair.standby) == 1
        second = _cli(args, env)
    finally:
        monitor.stop()
        load.stop()
    assert second.returncode == 0, second.stderr[-3000:]
    import json

    report = json.loads(second.stdout)
    assert report["status"] == "PASSED"
    assert report["promotions"] == {"standby": 1, "primary": 1}
    assert any("already writable on re-entry" in n for n in report["notes"])
    assert any("RTO includes the time it was down" in n for n in report["notes"])
    assert promote_requests(pair.standby) == 1 and promote_requests(pair.primary) == 1
    assert monitor.both == 0 and monitor.samples > 10
    assert_original_topology(pair)


# ---- acceptance 6: restore drill from the DR vault ---------------------------------------------
def test_restore_drill_from_dr_vault(pg_archived, prefect_server) -> None:
    from blocks.vault import VaultTarget
    from flows.restore_drill import restore_drill
    from seawall import heartbeat
    from seawall.drill.state import VaultStateStore, load_report
    from seawall.postgres.conn import PgConn
    from seawall.postgres.physical import backup_physical
    from seawall.vault import open_vault
    from tests.fixtures.postgres import PASSPHRASE, switch_and_archive

    cluster = pg_archived.cluster
    cluster.execute("CREATE TABLE t (id serial PRIMARY KEY, v text)")
    cluster.execute("INSERT INTO t (v) SELECT 'row ' || g FROM generate_series(1, 1000) g")
    heartbeat.beat(PgConn(cluster.conninfo()))
    backup_physical(open_vault(pg_archived.vault_url, PASSPHRASE), PgConn(cluster.conninfo()), "pg-dr")
    for _ in range(4):
        time.sleep(0.3)
        heartbeat.beat(PgConn(cluster.conninfo()))
    switch_and_archive(cluster)
    vault = VaultTarget(url=pg_archived.vault_url, passphrase=PASSPHRASE)
    report = restore_drill(vault, "pg-dr", rto_seconds=600, seed=7)
    assert report.kind == "restore" and report.status == "PASSED" and report.rto_met is True
    assert report.measurements.rto_s is not None and report.measurements.rto_s > 0
    assert any("restored to 20" in n for n in report.notes)  # a random point in time, not "its end"
    stored = load_report(VaultStateStore(vault.open_vault()), report.drill_id)
    assert stored is not None and stored.status == "PASSED"
    env = dict(os.environ, PREFECT_API_URL=prefect_server["url"], PREFECT_HOME=prefect_server["home"])
    proc = subprocess.run([sys.executable, "-m", "seawall.cli.drill", "drill", "restore", "--vault",
                           pg_archived.vault_url, "--dataset", "pg-dr", "--passphrase-file",
                           str(pg_archived.passphrase_file), "--json"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    cli_report = json.loads(proc.stdout)
    assert cli_report["status"] == "PASSED" and cli_report["measurements"]["rto_s"] > 0


# ---- acceptance 2: the standby operated over SSH (a real sshd on loopback) ----------------------
def _ssh_standby(pair: Pair, sshd, known_hosts: Path) -> PostgresNode:
    from blocks.ssh import SshHost

    host = SshHost(host=sshd.host, port=sshd.port, username="root", key_path=str(sshd.client_key),
                   known_hosts_path=str(known_hosts), use_system_known_hosts=False, connect_timeout=5,
                   banner_timeout=5, auth_timeout=5, channel_timeout=60)
    return pair.node("standby", ssh=host, bindir=str(binaries.bindir()))


def test_drill_with_standby_over_ssh(pair: Pair, state_dir: Path, sshd) -> None:
    load = Load(pair.primary, 15)
    try:
        report = failover_drill(pair.node("primary"), _ssh_standby(pair, sshd, sshd.known_hosts))
    finally:
        load.stop()
    assert report.status == "PASSED"
    assert report.preflight[1]["name"] == "standby-reachable" and "host key verified" in report.preflight[1]["detail"]
    assert report.promotions == {"standby": 1, "primary": 1}
    assert promote_requests(pair.standby) == 1
    assert_original_topology(pair)


def test_unknown_or_changed_host_key_stops_before_anything(pair: Pair, state_dir: Path, sshd,
                                                           tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    with pytest.raises(DrillFailed) as info:
        failover_drill(pair.node("primary"), _ssh_standby(pair, sshd, empty))
    assert "not in known_hosts" in str(info.value) and info.value.exit_code == 2
    wrong = tmp_path / "known_hosts_wrong"
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong.write_text(f"[{sshd.host}]:{sshd.port} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n")
    with pytest.raises(DrillFailed) as info:
        failover_drill(pair.node("primary"), _ssh_standby(pair, sshd, wrong))
    assert "CHANGED" in str(info.value) and info.value.exit_code == 2
    _untouched(pair)


# ---- abort path: checks fail on the new primary → the original primary is restored ---------------
def test_failed_checks_abort_and_restore_the_original_primary(pair: Pair, state_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from seawall.checks import result
    from seawall.drill import measure

    monkeypatch.setattr(measure, "smoke_check", lambda node, drill_id: result("smoke-write-read", None, False,
                                                                              "injected failure"))
    monitor = WritableMonitor(pair.primary, pair.standby)
    try:
        with pytest.raises(DrillFailed) as info:
            failover_drill(pair.node("primary"), pair.node("standby"))
    finally:
        monitor.stop()
    report = info.value.report
    assert report.status == "ABORTED" and "injected failure" in report.error
    assert any("primary was restored as the primary" in n for n in report.notes)
    assert monitor.both == 0
    assert_original_topology(pair)


# ---- the CLI with no Prefect API configured: the same drill in plain mode ----------------------
def test_cli_drill_without_prefect(pair: Pair, state_dir: Path, tmp_path: Path) -> None:
    """`seawall drill failover` as a whole process with no API anywhere: the same steps and report,
    exit 0, the original topology back, and Prefect never imported (import-time trace)."""
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PYTHONPROFILEIMPORTTIME="1")
    seawall = str(Path(sys.executable).with_name("seawall"))
    proc = subprocess.run([seawall, "drill", "failover", "--primary-dsn", pair.primary.conninfo(),
                           "--primary-datadir", str(pair.primary.datadir), "--standby-dsn", pair.standby.conninfo(),
                           "--standby-datadir", str(pair.standby.datadir), "--rto", "120", "--rpo", "30", "--json"],
                          env=env, capture_output=True, text=True, timeout=600)
    err = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 0, err[-20:]
    report = json.loads(proc.stdout)
    assert report["status"] == "PASSED" and [s["name"] for s in report["steps"]][-1] == "final_health"
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "flows.failover_drill" in imported and not {m for m in imported if m.split(".")[0] == "prefect"}
    assert not (tmp_path / "prefect-home").exists()
    assert_original_topology(pair)

"""A nightly of 20 datasets on a real `prefect server` and process workers: the set-up that
tests/e2e/test_scale.py asserts on and bench/scale_nightly.py times.

- The Prefect server keeps its database in PostgreSQL (its own small cluster), as the README
  advises for a nightly over several workers: on its default SQLite database, Prefect 3.8's server
  stalls for 60 s at a time under a handful of concurrent runs ("database is locked", busy_timeout
  60 s, its 5+10 connection pool exhausted), and every run waits, slot acquisitions included.
- 20 datasets into two vaults (10 each): PostgreSQL logical (6) and physical (1) on a real cluster
  that archives its WAL into vault A, local trees (9), SSH trees on the real sshd (4); plus `VICTIM`
  alone in vault C. Names with spaces, quotes and non-ASCII.
- Workers are `prefect worker start --type process` processes, each in its own session.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from tests.e2e.prefect_helpers import PASSPHRASE, ROOT, Sink, create_pool, seawall, seawall_env
from tests.fixtures.prefect import running_prefect_server

POOL = "seawall-scale"
VAULTS = ("region-a", "region-b", "region-c")
DBS = ("app one", "shop's", "crm", "Ünï data", "billing", "ledger")  # logical datasets, 3 per vault
TABLE = '"Tëst ""t"" 1"'
RETAINED = "tree-a0"  # its retention (keep_last 1) prunes vault A
VICTIM = "pg-victim"  # in vault C: its run is killed mid-backup
WORKER_LIMIT = 3  # flow runs at once per worker (each is a Python process importing Prefect)


def _tree(root: Path, name: str, size: int) -> str:
    path = root / name
    (path / "sub dir").mkdir(parents=True)
    (path / "a file 'x'.txt").write_text(f"{name}\n" * 50)
    (path / "sub dir" / "ünï.bin").write_bytes(os.urandom(size))
    return str(path)


def datasets(local: Path, remote: Path, sshd, tree_bytes: int = 2048) -> dict[str, dict]:
    """The 20 nightly datasets: vault A and vault B get 10 each."""
    out: dict[str, dict] = {"pg-physical": {"postgres": {"dsn_env": "SCALE_PG_POSTGRES", "mode": "physical"},
                                            "vault": "region-a"}}
    for i, _db in enumerate(DBS):
        out[f"pg-logical-{i}"] = {"postgres": {"dsn_env": f"SCALE_PG_{i}", "jobs": 1},
                                  "vault": "region-a" if i < 3 else "region-b"}
    for i in range(4):
        out[f"tree-a{i}"] = {"files": {"path": _tree(local, f"tree a{i} ä", tree_bytes)}, "vault": "region-a"}
    for i in range(5):
        out[f"tree-b{i}"] = {"files": {"path": _tree(local, f"tree b{i}", tree_bytes)}, "vault": "region-b"}
    for i, vault in enumerate(("region-a", "region-a", "region-b", "region-b")):
        out[f"ssh-{i}"] = {"files": {"path": sshd.url(_tree(remote, f"remote {i}", tree_bytes))}, "vault": vault}
    out[RETAINED]["retention"] = {"keep_last": 1}
    return out


def policy(sets: dict[str, dict], urls: dict[str, str], unresponsive: int) -> str:
    import yaml

    common = {"rpo": "26h", "rto": "1h", "schedule": {"cron": "0 2 * * *", "timezone": "UTC"}, "verify": False}
    specs = {name: {**spec, **common} for name, spec in sets.items()}
    specs[VICTIM] = {"postgres": {"dsn_env": "SCALE_PG_VICTIM", "jobs": 1}, "vault": "region-c", **common}
    return yaml.safe_dump({
        "version": 1, "work_pool": POOL, "vaults": {v: {"url": urls[v]} for v in VAULTS},
        "datasets": specs, "alerts": {"webhooks": [{"url_env": "SCALE_ALERT_HOOK"}], "on_staleness": False},
        "unresponsive_after": f"{unresponsive}s"}, allow_unicode=True)


def data_cluster(work: Path, vault: str, passfile: Path, rows: int = 50):
    """The datasets' PostgreSQL: one database per logical dataset (and the victim's), archiving into `vault`."""
    from seawall.postgres.cluster import LocalCluster

    seawall_bin = Path(sys.executable).with_name("seawall")
    archive = f"{seawall_bin} wal-push %p --vault {shlex.quote(vault)} --passphrase-file {shlex.quote(str(passfile))}"
    cluster = LocalCluster.create(work, settings={"archive_mode": "on", "archive_command": archive,
                                                  "wal_level": "replica", "max_wal_size": "256MB"})
    cluster.start()
    for db in (*DBS, "victim"):
        cluster.execute(f'CREATE DATABASE "{db.replace(chr(34), "")}"')
        cluster.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, note text); "
                        f"INSERT INTO {TABLE} SELECT g, 'row ' || g FROM generate_series(1, {rows}) g", dbname=db)
    return cluster


@contextlib.contextmanager
def server_on_postgres(work: Path) -> Iterator[dict]:
    """A `prefect server` whose database is a PostgreSQL cluster of its own (no WAL archiving)."""
    from seawall.postgres.cluster import LocalCluster

    cluster = LocalCluster.create(work, settings={"fsync": "off", "synchronous_commit": "off"}, checksums=False)
    cluster.start()
    home = work / "prefect-home"
    home.mkdir()
    try:
        cluster.execute("CREATE DATABASE prefect")
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/prefect"
        with running_prefect_server(home, {"PREFECT_API_DATABASE_CONNECTION_URL": url}) as server:
            yield server
    finally:
        cluster.remove()


def ssh_home(sshd, home: Path) -> None:
    """The workers' ~/.ssh: the client key and the sshd's known_hosts (how users run SSH datasets)."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    shutil.copy(sshd.client_key, ssh / "id_ed25519")
    (ssh / "id_ed25519").chmod(0o600)
    shutil.copy(sshd.known_hosts, ssh / "known_hosts")


@contextlib.contextmanager
def nightly_setup(sshd, *, unresponsive: int, lease_seconds: int, tree_bytes: int = 2048,
                  rows: int = 50) -> Iterator[dict]:
    """Vaults, the datasets' cluster, a Prefect server on PostgreSQL, the policy deployed."""
    from seawall.crypto import ScryptParams
    from seawall.postgres.binaries import chown_to_server_user
    from seawall.postgres.cluster import make_private_dir
    from seawall.vault import init_vault

    work = make_private_dir("seawall-scale-")  # the postgres user owns it (cluster, passphrase file)
    remote = Path(tempfile.mkdtemp(prefix="seawall-scale-remote-"))
    remote.chmod(0o755)
    urls = {v: f"file://{work / ('vault ' + v)}" for v in VAULTS}
    for url in urls.values():
        init_vault(url, PASSPHRASE, scrypt=ScryptParams(n=2**12))
    passfile = work / "passphrase"
    passfile.write_text(PASSPHRASE)
    for path in (passfile, *(work / "vault region-a").rglob("*"), work / "vault region-a"):  # WAL goes there
        chown_to_server_user(path)
    passfile.chmod(0o600)
    cluster, sink = data_cluster(work, urls["region-a"], passfile, rows), Sink()
    ssh_home(sshd, work / "home")
    try:
        with server_on_postgres(work) as server:
            env = seawall_env(server) | {
                "HOME": str(work / "home"), "SCALE_ALERT_HOOK": sink.url, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
                "PREFECT_WORKER_QUERY_SECONDS": "2", "SEAWALL_SLOT_LEASE_SECONDS": str(lease_seconds),
                "SCALE_PG_POSTGRES": cluster.conninfo(), "SCALE_PG_VICTIM": cluster.conninfo("victim")}
            env |= {f"SCALE_PG_{i}": cluster.conninfo(db) for i, db in enumerate(DBS)}
            sets = datasets(work / "local", remote, sshd, tree_bytes)
            (work / "seawall.yaml").write_text(policy(sets, urls, unresponsive))
            create_pool(server, POOL)
            deployed = seawall(env, "deploy", "--policy", str(work / "seawall.yaml"))
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
            workers = Workers(env, work)
            try:
                yield {"server": server, "env": env, "datasets": sets, "vaults": urls, "sink": sink,
                       "cluster": cluster, "workers": workers}
            finally:
                workers.stop_all()
    finally:
        sink.close()
        cluster.remove()
        shutil.rmtree(remote, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


class Workers:
    """`prefect worker start --type process --name N` processes on the pool, each in its own session."""

    def __init__(self, env: dict, logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, {}

    def start(self, name: str, **extra_env: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type",
                                 "process", "--name", name, "--prefetch-seconds", "5", "--limit", str(WORKER_LIMIT)],
                                env=self.env | extra_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.log = log
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        if sig == signal.SIGKILL:  # flow-run processes have sessions of their own: the group kill misses them
            for child in _descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(os.getpgid(child), signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)  # the worker and any flow-run process it started in its group
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc.log.close()

    def stop_all(self, sig: int = signal.SIGKILL) -> None:
        """Idle workers end at once (SIGTERM makes a worker wait for its loops, ~10-20 s)."""
        for name in list(self.procs):
            self.stop(name, sig)


def _descendants(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        for task in Path(f"/proc/{stack.pop()}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                kids = [int(k) for k in (task / "children").read_text().split()]
                out += kids
                stack += kids
    return out


# ---- reading Prefect's records -------------------------------------------------------------------
def flow_of(deployment: str) -> str:
    name = deployment.split("-", 1)[1]
    if deployment.startswith("retention-"):
        return "apply-retention"
    if name.startswith("pg-"):
        return "backup-postgres"
    return "backup-remote-files" if name.startswith("ssh-") else "backup-files"


def start_run(client, deployment: str):
    return client.create_flow_run_from_deployment(client.read_deployment_by_name(
        f"{flow_of(deployment)}/{deployment}").id)


def wait_workers_online(client, names: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        online = {w.name for w in client.read_workers_for_work_pool(POOL) if w.status.value == "ONLINE"}
        if set(names) <= online:
            return
        time.sleep(0.5)
    raise AssertionError(f"workers {names} not online within {timeout} s")


def wait_final(client, ids: list, timeout: float) -> dict:
    """The runs by id once every one is in a final state (AssertionError with their last logs otherwise)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    runs = []
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=200)
        if len(runs) == len(ids) and all(r.state and r.state.is_final() for r in runs):
            return {r.id: r for r in runs}
        time.sleep(1)
    stuck = [r for r in runs if not (r.state and r.state.is_final())]
    raise AssertionError(f"not final within {timeout} s: " + "; ".join(
        f"{r.name} {r.state_name} {r.tags}: {run_logs(client, r.id)[-4:]}" for r in stuck))


def run_logs(client, run_id) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return [f"{log.timestamp:%H:%M:%S} {log.message[:200]}" for log in logs]


def nightly_figures(runs: list) -> dict:
    """The nightly's wall time (first start to last end) against the sum of its runs' durations."""
    wall = (max(r.end_time for r in runs) - min(r.start_time for r in runs)).total_seconds()
    total = sum((r.end_time - r.start_time).total_seconds() for r in runs)
    return {"runs": len(runs), "wall_s": round(wall, 2), "sum_s": round(total, 2),
            "sum_over_wall": round(total / wall, 2)}


def stamp(moment: datetime) -> str:
    return f"{moment:%H:%M:%S.%f}"[:-3]

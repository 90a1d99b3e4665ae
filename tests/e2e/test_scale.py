"""A nightly of 20 datasets over two process workers, per-vault slots, and a worker killed mid-run.

Acceptance (issue 22, points 1 and bad input): a real `prefect server`, two `prefect worker start`
processes on one process pool, a policy of 20 small datasets (PostgreSQL logical and physical on a
real cluster, local trees, SSH trees on the real sshd) into two vaults, deployed with
`seawall deploy`. The 20 nightly runs are created through the API (the cron tick itself is
test_schedule.py's subject). Asserted from Prefect's own records:

- all 20 runs COMPLETED, and the workers' `prefect.worker.submitted-flow-run` events name both
  workers among them;
- every hold of a vault's slot (`prefect.concurrency-limit.acquired` → `released`, related to the
  task run) is disjoint from every other hold of the same vault, and the retention's prune
  (triggered by its dataset's backup event, as deployed) asked for the slot while a write held it
  and got it only after that write released it;
- a worker killed with SIGKILL (with its flow-run process: the machine died) mid-backup, while the
  run holds the vault slot: the run is marked CRASHED by the crash-detection automation deploy
  created, the failure alert names it, the slot comes back (the dead holder's lease expires), the
  next run of the dataset completes on a fresh worker, and `seawall verify --read-data` passes;
- the vault slots have no slot decay (with one, Prefect 3.8 makes a refused waiter sleep 1/decay
  seconds: deployments/apply.py `_limits`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.prefect_helpers import PASSPHRASE, ROOT, Sink, api, create_pool, seawall, seawall_env

POOL = "seawall-scale"
LEASE_SECONDS = 60  # SEAWALL_SLOT_LEASE_SECONDS on the workers: how long a killed holder keeps its slot
UNRESPONSIVE = 90  # policy unresponsive_after: three heartbeats (30 s, the minimum); 45 s crashed a healthy run
DBS = ("app one", "shop's", "crm", "Ünï data", "billing", "ledger")  # logical datasets, 3 per vault
RETAINED = "tree-a0"  # its retention runs after its backup, while vault A's other writes go on
VICTIM = "pg-victim"  # the dataset whose run is killed mid-backup
WORKER_LIMIT = 3  # flow runs at once per worker (each is a Python process importing Prefect)


def _tree(root: Path, name: str) -> str:
    path = root / name
    (path / "sub dir").mkdir(parents=True)
    (path / "a file 'x'.txt").write_text(f"{name}\n" * 50)
    (path / "sub dir" / "ünï.bin").write_bytes(os.urandom(2048))
    return str(path)


def _datasets(local: Path, remote: Path, sshd) -> dict[str, dict]:
    """20 datasets: vault A and vault B get 10 each."""
    out: dict[str, dict] = {"pg-physical": {"postgres": {"dsn_env": "SCALE_PG_POSTGRES", "mode": "physical"},
                                            "vault": "region-a"}}
    for i, _db in enumerate(DBS):
        out[f"pg-logical-{i}"] = {"postgres": {"dsn_env": f"SCALE_PG_{i}", "jobs": 1},
                                  "vault": "region-a" if i < 3 else "region-b"}
    for i in range(4):
        out[f"tree-a{i}"] = {"files": {"path": _tree(local, f"tree a{i} ä")}, "vault": "region-a"}
    for i in range(5):
        out[f"tree-b{i}"] = {"files": {"path": _tree(local, f"tree b{i}")}, "vault": "region-b"}
    for i, vault in enumerate(("region-a", "region-a", "region-b", "region-b")):
        out[f"ssh-{i}"] = {"files": {"path": sshd.url(_tree(remote, f"remote {i}"))}, "vault": vault}
    out[RETAINED]["retention"] = {"keep_last": 1}
    return out


def _policy(datasets: dict[str, dict], a: str, b: str, victim_dsn_env: str) -> str:
    import yaml

    common = {"rpo": "26h", "rto": "1h", "schedule": {"cron": "0 2 * * *", "timezone": "UTC"}, "verify": False}
    sets = {name: {**spec, **common} for name, spec in datasets.items()}
    sets[VICTIM] = {"postgres": {"dsn_env": victim_dsn_env, "jobs": 1}, "vault": "region-a", **common}
    return yaml.safe_dump({
        "version": 1, "work_pool": POOL, "vaults": {"region-a": {"url": a}, "region-b": {"url": b}},
        "datasets": sets, "alerts": {"webhooks": [{"url_env": "SCALE_ALERT_HOOK"}], "on_staleness": False},
        "unresponsive_after": f"{UNRESPONSIVE}s"}, allow_unicode=True)


def _cluster(workdir: Path, vault: str, passfile: Path):
    from seawall.postgres.cluster import LocalCluster

    seawall_bin = Path(sys.executable).with_name("seawall")
    archive = f"{seawall_bin} wal-push %p --vault {shlex.quote(vault)} --passphrase-file {shlex.quote(str(passfile))}"
    cluster = LocalCluster.create(workdir, settings={"archive_mode": "on", "archive_command": archive,
                                                     "wal_level": "replica", "max_wal_size": "256MB"})
    cluster.start()
    for db in (*DBS, "victim"):
        cluster.execute(f'CREATE DATABASE "{db.replace(chr(34), "")}"')
        cluster.execute('CREATE TABLE "Tëst ""t"" 1" (id int PRIMARY KEY, note text); '
                        "INSERT INTO \"Tëst \"\"t\"\" 1\" SELECT g, 'row ' || g FROM generate_series(1, 50) g",
                        dbname=db)
    return cluster


def _ssh_home(sshd, home: Path) -> None:
    """The workers' ~/.ssh: the client key and the sshd's known_hosts (how users run SSH datasets)."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    shutil.copy(sshd.client_key, ssh / "id_ed25519")
    (ssh / "id_ed25519").chmod(0o600)
    shutil.copy(sshd.known_hosts, ssh / "known_hosts")


class Workers:
    """`prefect worker start --type process --name N` processes on the pool, each in its own session."""

    def __init__(self, env: dict, logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, {}

    def start(self, name: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type",
                                 "process", "--name", name, "--prefetch-seconds", "5", "--limit", str(WORKER_LIMIT)],
                                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log = log
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)  # the worker and any flow-run process it started in its group
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc.log.close()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


@pytest.fixture(scope="module")
def scale(prefect_server, sshd):
    from seawall.crypto import ScryptParams
    from seawall.postgres.cluster import make_private_dir
    from seawall.vault import init_vault

    work = make_private_dir("seawall-scale-")  # the postgres user owns it (cluster, passphrase file)
    remote = Path(tempfile.mkdtemp(prefix="seawall-scale-remote-"))
    remote.chmod(0o755)
    a, b = f"file://{work / 'vault a'}", f"file://{work / 'vault b'}"
    for url in (a, b):
        init_vault(url, PASSPHRASE, scrypt=ScryptParams(n=2**12))
    passfile = work / "passphrase"
    passfile.write_text(PASSPHRASE)
    from seawall.postgres.binaries import chown_to_server_user

    for path in (passfile, *(work / "vault a").rglob("*"), work / "vault a"):  # the archiver writes WAL there
        chown_to_server_user(path)
    passfile.chmod(0o600)
    cluster = _cluster(work, a, passfile)
    sink = Sink()
    home = work / "home"
    _ssh_home(sshd, home)
    env = seawall_env(prefect_server) | {
        "HOME": str(home), "SCALE_ALERT_HOOK": sink.url, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "SEAWALL_SLOT_LEASE_SECONDS": str(LEASE_SECONDS), "SCALE_PG_POSTGRES": cluster.conninfo(),
        "SCALE_PG_VICTIM": cluster.conninfo("victim")}
    env |= {f"SCALE_PG_{i}": cluster.conninfo(db) for i, db in enumerate(DBS)}
    datasets = _datasets(work / "local", remote, sshd)
    policy = work / "seawall.yaml"
    policy.write_text(_policy(datasets, a, b, "SCALE_PG_VICTIM"))
    create_pool(prefect_server, POOL)
    deployed = seawall(env, "deploy", "--policy", str(policy))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    workers = Workers(env, work)
    try:
        yield {"server": prefect_server, "env": env, "datasets": datasets, "vaults": (a, b), "sink": sink,
               "cluster": cluster, "workers": workers, "deployed": deployed.stdout}
    finally:
        workers.stop_all()
        sink.close()
        if os.environ.get("SCALE_KEEP"):
            shutil.copy(Path(prefect_server["home"]) / "server.log", work / "server.log")
        cluster.remove()
        shutil.rmtree(remote, ignore_errors=True)
        if not os.environ.get("SCALE_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def test_twenty_datasets_spread_over_two_workers_and_retention_waits_for_the_vault_slot(scale):
    workers = scale["workers"]
    names = ["scale-worker-a", "scale-worker-b"]
    for name in names:
        workers.start(name)
    since = datetime.now(UTC) - timedelta(seconds=5)
    with api(scale["server"]) as client:
        _wait_workers_online(client, names)
        # The retained dataset first: its retention then runs while vault A's other writes go on.
        order = [RETAINED, *sorted(d for d in scale["datasets"] if d != RETAINED)]
        runs = {ds: _run(client, f"nightly-{ds}") for ds in order}
        finished = _wait_final(client, [r.id for r in runs.values()], timeout=600)
        retention = _wait_deployment_run(client, f"retention-{RETAINED}", timeout=60)
        events = _settled_events(client, since)
    states = {ds: finished[r.id].state.type.value for ds, r in runs.items()}
    bad = {ds: (s, finished[runs[ds].id].state.message) for ds, s in states.items() if s != "COMPLETED"}
    assert not bad, bad
    assert len(states) == 20
    assert retention.state.type.value == "COMPLETED", retention.state.message

    by_worker = _runs_by_worker(events)
    used = {by_worker.get(str(r.id)) for r in runs.values()}
    assert set(names) <= used, f"runs per worker: {by_worker}"

    holds = _holds(events)
    for vault in ("seawall-vault-region-a", "seawall-vault-region-b"):
        spans = sorted(holds[vault], key=lambda h: h["acquired"])
        assert len(spans) >= 10, (vault, len(spans))
        for first, second in itertools.pairwise(spans):
            assert first["released"] <= second["acquired"], f"{vault}: {first} overlaps {second}"
    prune = [h for h in holds["seawall-vault-region-a"] if h["flow_run"] == str(retention.id)]
    assert len(prune) == 1, holds["seawall-vault-region-a"]
    prune = prune[0]
    with api(scale["server"]) as client:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[retention.id])))
        asked = next(t for t in tasks if t.name.startswith("prune")).start_time
    writes = [h for h in holds["seawall-vault-region-a"] if h is not prune]
    blocking = [w for w in writes if w["acquired"] <= asked < w["released"]]
    assert blocking, f"the prune asked at {asked} while no write held the slot: {writes}"
    assert prune["acquired"] >= max(w["released"] for w in blocking)
    ran = [finished[r.id] for r in runs.values()]
    wall = (max(r.end_time for r in ran) - min(r.start_time for r in ran)).total_seconds()
    total = sum((r.end_time - r.start_time).total_seconds() for r in ran)
    print(f"\nnightly of {len(ran)} runs: wall {wall:.1f} s, sum of runs {total:.1f} s ({total / wall:.2f}x); "
          f"per worker {sorted(Counter(by_worker[str(r.id)] for r in ran).items())}")
    print(f"workers: {sorted(used)}; prune asked {asked:%H:%M:%S.%f}, write held until "
          f"{max(w['released'] for w in blocking):%H:%M:%S.%f}, prune acquired {prune['acquired']:%H:%M:%S.%f}")


def _run(client, deployment: str):
    return client.create_flow_run_from_deployment(client.read_deployment_by_name(
        f"{_flow_of(deployment)}/{deployment}").id)


def _flow_of(deployment: str) -> str:
    name = deployment.split("-", 1)[1]
    if deployment.startswith("retention-"):
        return "apply-retention"
    if name.startswith("pg-"):
        return "backup-postgres"
    return "backup-remote-files" if name.startswith("ssh-") else "backup-files"


def _wait_workers_online(client, names: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        online = {w.name for w in client.read_workers_for_work_pool(POOL) if w.status.value == "ONLINE"}
        if set(names) <= online:
            return
        time.sleep(0.5)
    raise AssertionError(f"workers {names} not online within {timeout} s")


def _wait_final(client, ids: list, timeout: float) -> dict:
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
        f"{r.name} {r.state_name} {r.tags}: {_last_logs(client, r.id)}" for r in stuck))


def _last_logs(client, run_id, count: int = 4) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return [f"{log.timestamp:%H:%M:%S} {log.message[:160]}" for log in logs[-count:]]


def _wait_deployment_run(client, deployment: str, timeout: float, after: datetime | None = None):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])))
        done = [r for r in runs if r.state and r.state.is_final() and (after is None or r.created > after)]
        if done:
            return done[0]
        time.sleep(1)
    raise AssertionError(f"no finished run of {deployment} within {timeout} s")


def _events(client, since: datetime) -> list:
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    wanted = EventNameFilter(prefix=["prefect.concurrency-limit.", "prefect.worker.submitted-flow-run"])
    page = client.read_events(EventFilter(occurred=EventOccurredFilter(since=since), event=wanted), limit=50)
    events = list(page.events)
    while page.next_page:
        page = client.read_events_page(page.next_page)
        events += page.events
    return events


def _settled_events(client, since: datetime, timeout: float = 30) -> list:
    """The events, once every slot acquisition has its release (events reach the server asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        events = _events(client, since)
        acquired = {e.id for e in events if e.event == "prefect.concurrency-limit.acquired"}
        released = {e.follows for e in events if e.event == "prefect.concurrency-limit.released"}
        if acquired <= released or time.monotonic() > deadline:
            return events
        time.sleep(1)


def _related(event, role: str) -> str | None:
    for resource in event.related:
        if resource.role == role:
            return resource.id.rsplit(".", 1)[-1]
    return None


def _runs_by_worker(events) -> dict[str, str]:
    """flow run id → the name of the worker that submitted it."""
    return {_related(e, "flow-run"): e.resource.name for e in events if e.event == "prefect.worker.submitted-flow-run"}


def _holds(events) -> dict[str, list[dict]]:
    """Per limit name: each hold of the slot, an acquired event and the released event that follows it."""
    spans: dict = {}
    for e in sorted(events, key=lambda e: e.occurred):
        if e.event == "prefect.concurrency-limit.acquired":
            spans[e.id] = {"limit": e.resource.name, "flow_run": _related(e, "flow-run"), "acquired": e.occurred}
        elif e.event == "prefect.concurrency-limit.released":
            spans[e.follows]["released"] = e.occurred
    out: dict[str, list[dict]] = {}
    for span in spans.values():
        assert "released" in span, span
        out.setdefault(span.pop("limit"), []).append(span)
    return out


def test_a_worker_killed_mid_backup_crashes_the_run_alerts_and_the_next_run_completes(scale):
    """The victim's pg_dump waits on a table lock the test holds, so the run is mid-backup (holding
    vault A's slot) when its worker and flow-run process get SIGKILL."""
    import psycopg

    workers, env = scale["workers"], scale["env"]
    workers.stop_all()
    workers.start("scale-worker-doomed")
    lock = psycopg.connect(scale["cluster"].conninfo("victim"))
    lock.execute('LOCK TABLE "Tëst ""t"" 1" IN ACCESS EXCLUSIVE MODE')  # pg_dump will wait for it
    with api(scale["server"]) as client:
        _wait_workers_online(client, ["scale-worker-doomed"])
        run = _run(client, f"nightly-{VICTIM}")
        holder = _wait_slot_holder(client, str(run.id), timeout=180)
        pid = int(client.read_flow_run(run.id).infrastructure_pid.rsplit(":", 1)[-1])
        workers.stop("scale-worker-doomed", signal.SIGKILL)  # the worker's process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)  # and the flow run's (its own session), pg_dump too
        killed = datetime.now(UTC)
        lock.close()
        crashed = _wait_state(client, run.id, "CRASHED", timeout=UNRESPONSIVE + 90)
        alert = scale["sink"].wait_for(str(run.id), 60)
        workers.start("scale-worker-new")
        again = _run(client, f"nightly-{VICTIM}")
        done = _wait_final(client, [again.id], timeout=240)[again.id]
        took = _wait_slot_holder(client, str(again.id), timeout=30)
    assert "no heartbeat" in (crashed.state.message or ""), crashed.state.message
    assert f"backup of {VICTIM} CRASHED" in alert["subject"], alert
    assert done.state.type.value == "COMPLETED", done.state.message
    assert took >= holder + timedelta(seconds=LEASE_SECONDS), (holder, took)  # the dead holder's lease ran out
    listed = seawall(env, "list", "--vault", scale["vaults"][0], "--dataset", VICTIM, "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    statuses = [b["status"] for b in json.loads(listed.stdout)["backups"]]
    assert statuses.count("DONE") == 1, statuses  # the rerun's; the killed backup never counts as restorable
    verified = seawall(env, "verify", "--vault", scale["vaults"][0], "--read-data")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    print(f"\nkilled {killed:%H:%M:%S}, crashed {crashed.state.timestamp:%H:%M:%S}, slot held since "
          f"{holder:%H:%M:%S} retaken {took:%H:%M:%S}")


def _slot_events(client, flow_run: str) -> list:
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    related = EventRelatedFilter(id=[f"prefect.flow-run.{flow_run}"])
    page = client.read_events(EventFilter(event=EventNameFilter(name=["prefect.concurrency-limit.acquired"]),
                                          related=related), limit=10)
    return list(page.events)


def _wait_slot_holder(client, flow_run: str, timeout: float) -> datetime:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _slot_events(client, flow_run)
        if events:
            return events[0].occurred
        time.sleep(1)
    raise AssertionError(f"run {flow_run} did not take its vault slot within {timeout} s")


def _wait_state(client, run_id, state: str, timeout: float):
    deadline = time.monotonic() + timeout
    run = None
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        if run.state and run.state.type.value == state:
            return run
        time.sleep(1)
    raise AssertionError(f"run not {state} within {timeout} s: {run.state if run else None}")

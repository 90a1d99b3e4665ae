"""A nightly of 20 datasets over two process workers, per-vault slots, a worker killed mid-run, a slot
that never frees (issue 22: acceptance 1 and its bad input). The set-up: tests/e2e/scale_nightly.py.

Asserted from Prefect's own records (runs, logs, events, limits):

- all 20 nightly runs COMPLETED, and the workers' `prefect.worker.submitted-flow-run` events name
  both workers among them;
- every hold of a vault's slot (`prefect.concurrency-limit.acquired` → the `released` that follows
  it) is disjoint from every other hold of that vault, and a retention's prune asked for vault A's
  slot while a write held it and got it only after that write released it. The write is made to
  last: its pg_dump waits on a table lock the test holds until the prune is seen waiting;
- a worker killed with SIGKILL (with its flow-run process: the machine died) mid-backup while the
  run holds vault C's slot: the run is marked CRASHED by the automation deploy created, the failure
  alert names it, the slot comes back only when the dead holder's lease expires, the next run
  completes and `seawall verify --read-data` passes. This runs alongside the nightly;
- a slot that never frees (a holder with a day-long lease) delays a run by SEAWALL_SLOT_WAIT_SECONDS
  and no more: the run goes on under the vault lease, says so, and completes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.prefect_helpers import api, seawall
from tests.e2e.scale_nightly import (
    RETAINED,
    TABLE,
    VICTIM,
    nightly_figures,
    nightly_setup,
    run_logs,
    stamp,
    start_run,
    wait_final,
    wait_workers_online,
)

LEASE_SECONDS = 60  # SEAWALL_SLOT_LEASE_SECONDS on the workers: how long a killed holder keeps its slot
UNRESPONSIVE = 90  # policy unresponsive_after: three heartbeats (30 s, Prefect's minimum)
BLOCKER = "pg-logical-0"  # a vault A write kept in its slot until a retention's prune waits for it
WORKERS = ["scale-worker-a", "scale-worker-b"]


@pytest.fixture(scope="module")
def scale(sshd):
    with nightly_setup(sshd, unresponsive=UNRESPONSIVE, lease_seconds=LEASE_SECONDS) as ctx:
        yield ctx


@contextlib.contextmanager
def table_locked(cluster, db: str):
    """Hold ACCESS EXCLUSIVE on the dataset's table: its pg_dump waits (inside its vault slot)."""
    import psycopg

    conn = psycopg.connect(cluster.conninfo(db))
    conn.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        conn.close()


def test_twenty_datasets_over_two_workers_slots_and_a_killed_worker(scale):
    workers, cluster = scale["workers"], scale["cluster"]
    since = datetime.now(UTC) - timedelta(seconds=5)
    with api(scale["server"]) as client:
        victim, holder = _kill_mid_backup(client, workers, cluster)
        freed = _first_free(scale["server"], "seawall-vault-region-c")
        wait_workers_online(client, WORKERS)
        # The retained dataset alone first: its backup's event starts its retention (as deployed).
        runs = {RETAINED: start_run(client, f"nightly-{RETAINED}")}
        wait_final(client, [runs[RETAINED].id], timeout=180)
        _finished_runs(client, f"retention-{RETAINED}", timeout=120)
        # Then a write that lasts, and a retention asking for the same vault meanwhile. The rest of the
        # nightly comes after: waiting runs would take every worker slot before the retention got one.
        with table_locked(cluster, "app one"):
            runs[BLOCKER] = start_run(client, f"nightly-{BLOCKER}")
            held = _wait_slot_holder(client, str(runs[BLOCKER].id), timeout=180)
            start_run(client, f"retention-{RETAINED}")
            _wait_log(client, f"retention-{RETAINED}", "waiting for vault slot seawall-vault-region-a", held, 180)
        runs |= {ds: start_run(client, f"nightly-{ds}") for ds in sorted(scale["datasets"]) if ds not in runs}
        finished = wait_final(client, [r.id for r in runs.values()], timeout=300)
        retentions = _finished_runs(client, f"retention-{RETAINED}", timeout=120)
        crashed, alert, again = _after_the_crash(client, scale, victim, freed)
        dead = {str(victim.id)}  # its acquisition has no release: the holder was killed
        events = _settled_events(client, since, [*finished, *retentions, again.id], dead)
        asks = {str(i): _prune_started(client, i) for i in retentions}
    bad = {ds: (finished[r.id].state_name, finished[r.id].state.message) for ds, r in runs.items()
           if finished[r.id].state.type.value != "COMPLETED"}
    assert not bad, bad
    assert len(runs) == 20
    assert all(r.state.type.value == "COMPLETED" for r in retentions.values()), retentions

    by_worker = _runs_by_worker(events)
    assert set(WORKERS) <= {by_worker.get(str(r.id)) for r in runs.values()}, by_worker

    holds = _holds(events, dead)
    for vault in ("seawall-vault-region-a", "seawall-vault-region-b"):
        spans = sorted(holds[vault], key=lambda h: h["acquired"])
        assert len(spans) >= 10, (vault, spans)
        for first, second in itertools.pairwise(spans):
            assert first["released"] <= second["acquired"], f"{vault}: {first} overlaps {second}"
    prunes = [h for h in holds["seawall-vault-region-a"] if h["flow_run"] in {str(i) for i in retentions}]
    writes = [h for h in holds["seawall-vault-region-a"] if h not in prunes]
    waited = []
    for prune in prunes:
        asked = asks[prune["flow_run"]]
        blocking = [w for w in writes if w["acquired"] <= asked < w["released"]]
        assert all(prune["acquired"] >= w["released"] for w in blocking), (prune, blocking)
        waited += [(asked, max(w["released"] for w in blocking), prune["acquired"])] if blocking else []
    assert waited, f"no retention's prune asked while a write held vault A: {prunes} / {writes}"

    assert "no heartbeat" in (crashed.state.message or ""), crashed.state.message
    assert f"backup of {VICTIM} CRASHED" in alert["subject"], alert
    assert again.state.type.value == "COMPLETED", again.state.message
    # Held by the dead run until its lease ran out, freed by the repossessor's next pass (every 15 s).
    # (The server grants the lease a moment before the holder emits its event: 1 s of slack.)
    lease = timedelta(seconds=LEASE_SECONDS)
    assert holder + lease - timedelta(seconds=1) <= freed[0] <= holder + lease + timedelta(seconds=45), (holder, freed)
    took = [h for h in holds["seawall-vault-region-c"] if h["flow_run"] == str(again.id)]
    assert len(took) == 1, took
    listed = seawall(scale["env"], "list", "--vault", scale["vaults"]["region-c"], "--dataset", VICTIM, "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    statuses = [b["status"] for b in json.loads(listed.stdout)["backups"]]
    assert statuses.count("DONE") == 1, statuses  # the rerun's; the killed backup never counts as restorable
    verified = seawall(scale["env"], "verify", "--vault", scale["vaults"]["region-c"], "--read-data")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    figures = nightly_figures([finished[r.id] for r in runs.values()])
    print(f"\nnightly: {figures}; per worker {sorted(Counter(by_worker[str(r.id)] for r in runs.values()).items())}")
    for asked, released, acquired in waited:
        print(f"prune asked {stamp(asked)}, the write held vault A until {stamp(released)}, prune took it "
              f"{stamp(acquired)}")
    print(f"victim: slot held {stamp(holder)}, CRASHED {stamp(crashed.state.timestamp)}, slot freed (lease "
          f"{LEASE_SECONDS} s) {stamp(freed[0])}, retaken {stamp(took[0]['acquired'])}")


def test_a_slot_that_never_frees_delays_a_run_by_the_wait_bound_only(scale):
    """A holder that never releases (its lease lasts a day): the run waits SEAWALL_SLOT_WAIT_SECONDS,
    warns, backs up under the vault lease alone, and completes. Without the bound it waits forever."""
    from uuid import UUID

    workers = scale["workers"]
    workers.stop_all()
    workers.start("scale-worker-c", SEAWALL_SLOT_WAIT_SECONDS="10")
    with api(scale["server"]) as client:
        wait_workers_online(client, ["scale-worker-c"])
        stuck = client.increment_concurrency_slots_with_lease(
            names=["seawall-vault-region-b"], slots=1, mode="concurrency", lease_duration=86400)
        try:
            run = start_run(client, "nightly-tree-b1")
            done = wait_final(client, [run.id], timeout=120)[run.id]
            _wait_log(client, "nightly-tree-b1", "going on under the vault's own lease", done.start_time, 30)
            logs = run_logs(client, run.id)
        finally:
            client.release_concurrency_slots_with_lease(UUID(stuck.json()["lease_id"]))
    assert done.state.type.value == "COMPLETED", (done.state.message, logs)
    assert any("vault slot seawall-vault-region-b not free after 1" in line for line in logs), logs
    assert not any("holding vault slot" in line for line in logs), logs
    listed = seawall(scale["env"], "list", "--vault", scale["vaults"]["region-b"], "--dataset", "tree-b1", "--json")
    assert [b["status"] for b in json.loads(listed.stdout)["backups"]].count("DONE") == 2, listed.stdout


# ---- the killed worker ----------------------------------------------------------------------------
def _kill_mid_backup(client, workers, cluster):
    """The victim's pg_dump waits on a table lock, so its run is mid-backup holding vault C's slot when
    its worker and flow-run process get SIGKILL. The nightly's workers start once the victim's worker
    has it. Returns (run, when it took the slot)."""
    workers.start("scale-worker-doomed")
    with table_locked(cluster, "victim"):
        wait_workers_online(client, ["scale-worker-doomed"])
        run = start_run(client, f"nightly-{VICTIM}")
        while client.read_flow_run(run.id).state.type.value == "SCHEDULED":
            time.sleep(0.5)
        for name in WORKERS:
            workers.start(name)
        holder = _wait_slot_holder(client, str(run.id), timeout=120)
        pid = int(client.read_flow_run(run.id).infrastructure_pid.rsplit(":", 1)[-1])
        workers.stop("scale-worker-doomed", signal.SIGKILL)  # the worker's process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)  # and the flow run's (its own session), pg_dump too
    return run, holder


def _first_free(server: dict, limit: str) -> list:
    """Polls the limit from now on; the list gets the first moment no slot is taken."""
    out: list = []

    def poll() -> None:
        with api(server) as client:
            while client.read_global_concurrency_limit_by_name(limit).active_slots:
                time.sleep(0.5)
        out.append(datetime.now(UTC))

    threading.Thread(target=poll, daemon=True).start()
    return out


def _after_the_crash(client, scale, victim, freed: list):
    """CRASHED, the alert, the slot back (the dead holder's lease expired), then the next run on a live worker."""
    crashed = _wait_state(client, victim.id, "CRASHED", timeout=UNRESPONSIVE + 120)
    alert = scale["sink"].wait_for(str(victim.id), 60)
    deadline = time.monotonic() + LEASE_SECONDS + 60
    while not freed:
        assert time.monotonic() < deadline, "vault C's slot never came back"
        time.sleep(0.5)
    again = start_run(client, f"nightly-{VICTIM}")
    return crashed, alert, wait_final(client, [again.id], timeout=180)[again.id]


def _wait_state(client, run_id, state: str, timeout: float):
    deadline = time.monotonic() + timeout
    run = None
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        if run.state and run.state.type.value == state:
            return run
        time.sleep(1)
    raise AssertionError(f"run not {state} within {timeout} s: {run.state if run else None}")


# ---- runs, logs, events --------------------------------------------------------------------------
def _deployment_runs(client, deployment: str) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    return client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])))


def _wait_log(client, deployment: str, text: str, after: datetime, timeout: float) -> None:
    """Until a run of the deployment logs `text` later than `after`."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = [r.id for r in _deployment_runs(client, deployment)]
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids))) if ids else []
        if any(text in log.message and log.timestamp > after for log in logs):
            return
        time.sleep(1)
    raise AssertionError(f"no run of {deployment} logged {text!r} within {timeout} s; running: {_running(client)}")


def _finished_runs(client, deployment: str, timeout: float) -> dict:
    """Every run of the deployment, once all are final (the triggered one and the test's)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = _deployment_runs(client, deployment)
        if runs and all(r.state and r.state.is_final() for r in runs):
            return {r.id: r for r in runs}
        assert time.monotonic() < deadline, [(r.name, r.state_name) for r in runs]
        time.sleep(1)


def _prune_started(client, run_id) -> datetime:
    """When a retention's prune task started (it asks for the slot first thing)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return next(t for t in tasks if t.name.startswith("prune")).start_time


def _events(client, since: datetime) -> list:
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    wanted = EventNameFilter(prefix=["prefect.concurrency-limit.", "prefect.worker.submitted-flow-run"])
    page = client.read_events(EventFilter(occurred=EventOccurredFilter(since=since), event=wanted), limit=50)
    events = list(page.events)
    while page.next_page:
        page = client.read_events_page(page.next_page)
        events += page.events
    return events


def _settled_events(client, since: datetime, run_ids: list, dead: set[str], timeout: float = 60) -> list:
    """The events once every run has a slot acquisition and each acquisition but the `dead` runs' its
    release (events reach the server asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        events = _events(client, since)
        acquired = {e.id for e in events if e.event == "prefect.concurrency-limit.acquired"
                    and _related(e, "flow-run") not in dead}
        released = {e.follows for e in events if e.event == "prefect.concurrency-limit.released"}
        holders = {_related(e, "flow-run") for e in events if e.event == "prefect.concurrency-limit.acquired"}
        if (acquired <= released and {str(i) for i in run_ids} <= holders) or time.monotonic() > deadline:
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


def _holds(events, dead: set[str]) -> dict[str, list[dict]]:
    """Per limit name: each hold of the slot, an acquired event and the released event that follows it
    (but the `dead` runs' holds, which no release ends)."""
    spans: dict = {}
    for e in sorted(events, key=lambda e: e.occurred):
        if e.event == "prefect.concurrency-limit.acquired" and _related(e, "flow-run") not in dead:
            spans[e.id] = {"limit": e.resource.name, "flow_run": _related(e, "flow-run"), "acquired": e.occurred}
        elif e.event == "prefect.concurrency-limit.released":
            spans[e.follows]["released"] = e.occurred  # a KeyError: a release of no acquisition
    out: dict[str, list[dict]] = {}
    for span in spans.values():
        assert "released" in span, span
        out.setdefault(span.pop("limit"), []).append(span)
    return out


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
    raise AssertionError(f"run {flow_run} did not take its vault slot within {timeout} s: "
                         f"{run_logs(client, flow_run)[-6:]}; running: {_running(client)}")


def _running(client) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType

    running = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["RUNNING", "PENDING"])))
    return [(r.name, r.tags[-1:], run_logs(client, r.id)[-2:]) for r in client.read_flow_runs(flow_run_filter=running)]

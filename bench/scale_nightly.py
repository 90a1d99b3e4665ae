"""The nightly's wall time against the sum of its runs (issue 22, acceptance 2), on a real Prefect server.

The set-up is tests/e2e/test_scale.py's (tests/e2e/scale_nightly.py): a `prefect server` on PostgreSQL,
a policy of 20 datasets (PostgreSQL logical and physical, local and SSH trees) into two vaults with
their `vault:<name>` slots (one writer per vault at a time), deployed with `seawall deploy`, and
`prefect worker start --type process --limit 3` workers. Each repetition creates the 20 nightly runs
at once, as the cron tick does, and waits until all are final. Figures from Prefect's own run records:

* **wall**: the first run's start to the last run's end;
* **sum of runs**: the runs' own durations (start to end) added up: what the nightly would take if
  the runs went one after another. sum / wall is how much the workers overlap them;
* the same nightly with **one worker** as the baseline of two workers, in the same process.

The first nightly backs everything up in full; the later ones find no change (incremental). Run it
as root (PostgreSQL runs as the `postgres` user), through the gate on the shared machine:

    bench/gate bench .venv/bin/python -m bench.scale_nightly --workers 1,2 --reps 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import REPO
from bench.scale_measure import alone, git_commit
from tests.e2e.prefect_helpers import api
from tests.e2e.scale_nightly import VICTIM, nightly_figures, nightly_setup, start_run, wait_final, wait_workers_online
from tests.fixtures.sshd import SshServer, ensure_test_user


def one_nightly(ctx: dict, workers: int, rep: int) -> dict:
    names = [f"bench-w{workers}-{i}" for i in range(workers)]
    for name in names:
        ctx["workers"].start(name)
    load_before = os.getloadavg()[0]
    try:
        with api(ctx["server"]) as client:
            wait_workers_online(client, names)
            runs = [start_run(client, f"nightly-{ds}") for ds in ctx["datasets"] if ds != VICTIM]
            finished = wait_final(client, [r.id for r in runs], timeout=1200)
            wait_idle(client)  # the retention a backup triggered too: a killed holder would keep its slot
    finally:
        ctx["workers"].stop_all()
    bad = [r.name for r in finished.values() if r.state.type.value != "COMPLETED"]
    if bad:
        raise RuntimeError(f"runs not COMPLETED: {bad}")
    return {"workers": workers, "rep": rep, **nightly_figures(list(finished.values())),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2), "alone": alone(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def wait_idle(client, timeout: float = 300) -> None:
    """Until no flow run is pending or running."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType

    busy = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["PENDING", "RUNNING"])))
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 5:
        if client.read_flow_runs(flow_run_filter=busy):
            quiet_since = time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError("flow runs still running")
        time.sleep(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    ap.add_argument("--reps", type=int, default=2, help="nightlies per worker count (default 2)")
    ap.add_argument("--tree-mb", type=float, default=8, help="incompressible MB per tree dataset (default 8)")
    ap.add_argument("--rows", type=int, default=200_000, help="rows per logical database (default 200000)")
    ap.add_argument("--results", default=str(REPO / "bench" / "scale_nightly.json"), help="JSON rows (appended)")
    args = ap.parse_args()
    ensure_test_user()
    sshd_dir = Path(tempfile.mkdtemp(prefix="seawall-sshd-"))
    sshd = SshServer(sshd_dir)
    sshd.start()
    rows = []
    try:
        with nightly_setup(sshd, unresponsive=600, lease_seconds=300, tree_bytes=int(args.tree_mb * 2**20),
                           rows=args.rows) as ctx:
            for rep in range(1, args.reps + 1):
                for workers in (int(w) for w in args.workers.split(",")):
                    row = one_nightly(ctx, workers, rep) | {"commit": git_commit(REPO), "tree_mb": args.tree_mb,
                                                           "rows": args.rows}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        sshd.stop()
        shutil.rmtree(sshd_dir, ignore_errors=True)
    path = Path(args.results)
    path.write_text(json.dumps((json.loads(path.read_text()) if path.exists() else []) + rows, indent=1) + "\n")
    for workers in sorted({r["workers"] for r in rows}):
        mine = [r for r in rows if r["workers"] == workers]
        print(f"{workers} worker(s): wall {[r['wall_s'] for r in mine]} s, sum of runs {[r['sum_s'] for r in mine]} s,"
              f" median sum/wall {statistics.median(r['sum_over_wall'] for r in mine):.2f}")


if __name__ == "__main__":
    main()

"""A deployment on a one-minute cron fires by itself: Prefect's scheduler creates the run, a worker runs it.

Acceptance (issue 14, point 1): real `prefect server` (its services on) + a process worker; the
policy is deployed with `seawall deploy`; nobody calls `deployment run`. Within 3 minutes the
scheduler has created a run (auto_scheduled) and the worker has completed it, and the server log
carries no scheduler error (SQLAlchemy 2.1 made every scheduler loop fail with "Can't evaluate bulk
DML statement": the server ran, nothing ever fired).
"""

from __future__ import annotations

import time

from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.e2e.prefect_helpers import PASSPHRASE, ROOT, create_pool, seawall, seawall_env
from tests.fixtures.prefect import process_worker, server_errors

POOL = "seawall-cron"  # its own pool: no other test's worker picks these runs up


def test_one_minute_cron_is_fired_by_the_scheduler_and_run_by_a_worker(prefect_server, tmp_path):
    from seawall.vault import init_vault

    vault = f"file://{tmp_path / 'vault ä'}"
    src = tmp_path / "tick's files"
    src.mkdir()
    (src / "a file.txt").write_text("tick\n")
    init_vault(vault, PASSPHRASE)
    policy = tmp_path / "seawall.yaml"
    policy.write_text(f"""\
version: 1
work_pool: {POOL}
vaults:
  primary: {{url: "{vault}"}}
datasets:
  tick:
    files: {{path: "{src}"}}
    vault: primary
    rpo: 10m
    rto: 10m
    schedule: {{cron: "* * * * *", timezone: UTC}}
    verify: false
""")
    env = seawall_env(prefect_server)
    create_pool(prefect_server, POOL)
    started = time.monotonic()
    deployed = seawall(env, "deploy", "--policy", str(policy), cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    with process_worker(POOL, env, tmp_path / "worker.log", ROOT), \
            temporary_settings({PREFECT_API_URL: prefect_server["url"]}):
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("backup-files/nightly-tick")
            try:
                run = _first_completed(client, deployment.id, started + 180)
            finally:
                client.delete_deployment(deployment.id)  # stop the every-minute schedule for later tests
    errors = server_errors(prefect_server)
    assert not errors, "the server log shows failed service loops:\n" + "\n".join(errors[:6])
    assert not isinstance(run, list), f"no completed run within 3 minutes of deploy; runs: {run}"
    assert run.auto_scheduled, "the completed run was not created by the scheduler"
    assert run.expected_start_time.second == 0, run.expected_start_time  # a cron tick, on the minute


def _first_completed(client, deployment_id, deadline: float):
    """The first completed run of the deployment, or (on timeout) the runs seen, as a list."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    by_id = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    runs = []
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(deployment_filter=by_id)
        done = [r for r in runs if r.state and r.state.is_completed()]
        if done:
            return done[0]
        failed = [r for r in runs if r.state and r.state.is_final() and not r.state.is_completed()]
        assert not failed, f"scheduled run ended {failed[0].state.type.value}: {failed[0].state.message}"
        time.sleep(2)
    return [(r.name, r.auto_scheduled, r.state.type.value if r.state else None) for r in runs]

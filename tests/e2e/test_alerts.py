"""Alerts that say what broke, delivered by the real `prefect server` (its services on) to a webhook.

Acceptance (issue 14, point 4): a forced failure (the nightly backup of a folder that is gone)
delivers a webhook whose subject and body name the deployment, the dataset, the vault, the stage,
the failing task, the first error line and a link to the run; a dataset with a 1-minute RPO whose
pipeline stopped fires the staleness alerts of its copy and of its verified restore.
"""

from __future__ import annotations

from tests.e2e.prefect_helpers import (
    PASSPHRASE,
    ROOT,
    Sink,
    api,
    create_pool,
    files_dataset,
    seawall,
    seawall_env,
    two_region_policy,
    wait_run,
)
from tests.fixtures.prefect import process_worker, server_errors

POOL = "seawall-alerts"


def policy_text(a: str, b: str, gone: str, quiet: str) -> str:
    site = files_dataset("site", gone)
    stopped = files_dataset("quiet", quiet, rpo="1m", cron="* * * * *")  # its pipeline never runs: stale
    return two_region_policy(POOL, a, b, site, stopped, alerts="  webhooks:\n    - url_env: SEAWALL_TEST_ALERT_HOOK\n")


def test_failure_alert_names_what_broke_and_staleness_fires_per_stage(prefect_server, tmp_path):
    from seawall.vault import init_vault

    a, b = f"file://{tmp_path / 'region-a'}", f"file://{tmp_path / 'region-b'}"
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    (quiet / "f.txt").write_text("x")
    init_vault(a, PASSPHRASE)
    sink = Sink()
    env = seawall_env(prefect_server) | {"SEAWALL_TEST_ALERT_HOOK": sink.url}
    policy = tmp_path / "seawall.yaml"
    policy.write_text(policy_text(a, b, str(tmp_path / "gone ä 'site'"), str(quiet)))
    create_pool(prefect_server, POOL)
    deployed = seawall(env, "deploy", "--policy", str(policy))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    try:
        with api(prefect_server) as client:  # quiet stands for a dataset whose pipeline stopped
            client.pause_deployment(client.read_deployment_by_name("backup-files/nightly-quiet").id)
            with process_worker(POOL, env, tmp_path / "worker.log", ROOT):
                run = client.create_flow_run_from_deployment(
                    client.read_deployment_by_name("backup-files/nightly-site").id)
                wait_run(client, "nightly-site", 90, state="FAILED")
                failure = sink.wait_for(str(run.id), 30)
            copy_stale = sink.wait_for("quiet copy is stale", 150)
            verification_stale = sink.wait_for("quiet verification is stale", 30)
    finally:
        sink.close()

    subject, body = failure["subject"], failure["body"]
    assert subject == "seawall: backup of site FAILED (deployment nightly-site)", subject
    for line in ("Deployment: nightly-site", "Dataset: site", "Vault: region-a", "Stage: backup",
                 "Failed: task preflight_files: ConfigError: ", f"/runs/flow-run/{run.id}"):
        assert line in body, body
    assert "gone ä 'site'" in body  # the first error line names the missing folder
    for alert, stage in ((copy_stale, "copy"), (verification_stale, "verification")):
        assert f"Dataset: quiet\nStage: {stage}\n" in alert["body"], alert
        assert "within its RPO of 1m" in alert["body"], alert
    assert server_errors(prefect_server) == []

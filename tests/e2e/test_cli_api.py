"""The CLI with a Prefect API configured: a job command is a flow run like a deployment's.

A real `prefect server` and a process worker: `seawall deploy` creates the dataset's copy
deployment (triggered by `seawall.backup.completed`); then a plain `seawall backup files` run from
the command line appears as a flow run tagged `seawall`, `stage:backup` and `dataset:<name>`, with
its artifact, and its event starts the copy deployment, which the worker completes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.prefect_helpers import (
    ROOT,
    api,
    create_pool,
    files_dataset,
    seawall,
    seawall_env,
    two_region_policy,
    wait_run,
)
from tests.fixtures.prefect import process_worker

POOL = "seawall-cli-api"


def policy(a: str, b: str, src: Path) -> str:
    dataset = files_dataset("cliapi", str(src), cron="0 3 * * *", extra="    verify: false\n")
    return two_region_policy(POOL, a, b, dataset, alerts='  webhooks: [{url: "http://127.0.0.1:9/unused"}]\n')


@pytest.fixture
def env(prefect_server):
    return seawall_env(prefect_server)


@pytest.fixture
def worker(env, tmp_path):
    with process_worker(POOL, env, tmp_path / "worker.log", ROOT):
        yield


def test_cli_backup_is_a_tagged_flow_run_whose_event_starts_the_copy(env, worker, prefect_server, tmp_path):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterTags

    a, b, src = f"file://{tmp_path / 'region a'}", f"file://{tmp_path / 'region-b'}", tmp_path / "www"
    src.mkdir()
    (src / "index.html").write_text("<h1>héllo</h1>\n" * 500)
    assert seawall(env, "init", a).returncode == 0
    (tmp_path / "seawall.yaml").write_text(policy(a, b, src))
    create_pool(prefect_server, POOL)  # deploy requires the pool; the worker may not have made it yet
    deployed = seawall(env, "deploy", "--policy", str(tmp_path / "seawall.yaml"), "--json")
    assert deployed.returncode == 0, deployed.stderr

    backup = seawall(env, "backup", "files", str(src), "--vault", a, "--dataset", "cliapi", "--json")
    assert backup.returncode == 0, backup.stderr
    assert "Traceback" not in backup.stderr and json.loads(backup.stdout)["status"] == "DONE"
    with api(prefect_server) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=["seawall", "dataset:cliapi", "stage:backup"])))
        cli_runs = [r for r in runs if r.deployment_id is None]
        assert len(cli_runs) == 1 and cli_runs[0].state.is_completed(), runs
        assert cli_runs[0].parameters["vault"] == a
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[cli_runs[0].id])))
        assert "backup-cliapi" in {x.key for x in artifacts}
        copy = wait_run(client, "copy-cliapi", 240)
        assert {"seawall", "dataset:cliapi", "stage:copy"} <= set(copy.tags)
    assert (tmp_path / "region-b" / "manifests" / "cliapi" / json.loads(backup.stdout)["backup_id"]).exists()

"""The CLI with a Prefect API configured: a job command is a flow run like a deployment's.

A real `prefect server` and a process worker: `seawall deploy` creates the dataset's copy
deployment (triggered by `seawall.backup.completed`); then a plain `seawall backup files` run from
the command line appears as a flow run tagged `seawall`, `stage:backup` and `dataset:<name>`, with
its artifact, and its event starts the copy deployment, which the worker completes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.prefect_helpers import create_pool

ROOT = Path(__file__).resolve().parents[2]
SEAWALL = str(Path(sys.executable).with_name("seawall"))
PASSPHRASE = "correct horse"
POOL = "seawall-cli-api"


def policy(a: str, b: str, src: Path) -> str:
    return f"""\
version: 1
work_pool: {POOL}
vaults:
  region-a: {{url: "{a}"}}
  region-b: {{url: "{b}", role: dr}}
datasets:
  cliapi:
    files: {{path: "{src}"}}
    vault: region-a
    copy_to: region-b
    verify: false
    rpo: 26h
    rto: 1h
    schedule: {{cron: "0 3 * * *", timezone: UTC}}
alerts:
  webhooks: [{{url: "http://127.0.0.1:9/unused"}}]
"""


@pytest.fixture
def env(prefect_server):
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    return dict(base, PREFECT_API_URL=prefect_server["url"], PREFECT_HOME=prefect_server["home"],
                SEAWALL_PASSPHRASE=PASSPHRASE, COLUMNS="200")


@pytest.fixture
def worker(env, tmp_path):
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process",
                             "--prefetch-seconds", "5"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    yield
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def seawall(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SEAWALL, *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_cli_backup_is_a_tagged_flow_run_whose_event_starts_the_copy(env, worker, prefect_server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterTags,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

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
    with temporary_settings({PREFECT_API_URL: prefect_server["url"]}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=["seawall", "dataset:cliapi", "stage:backup"])))
        cli_runs = [r for r in runs if r.deployment_id is None]
        assert len(cli_runs) == 1 and cli_runs[0].state.is_completed(), runs
        assert cli_runs[0].parameters["vault"] == a
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[cli_runs[0].id])))
        assert "backup-cliapi" in {x.key for x in artifacts}
        copy = _wait_completed(client, DeploymentFilter(name=DeploymentFilterName(any_=["copy-cliapi"])), 240)
        assert {"seawall", "dataset:cliapi", "stage:copy"} <= set(copy.tags)
    assert (tmp_path / "region-b" / "manifests" / "cliapi" / json.loads(backup.stdout)["backup_id"]).exists()


def _wait_completed(client, deployments, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(deployment_filter=deployments)
        for run in runs:
            if run.state and run.state.is_final():
                assert run.state.is_completed(), f"copy run ended {run.state.type.value}: {run.state.message}"
                return run
        time.sleep(1)
    raise AssertionError(f"the copy deployment did not complete a run within {timeout} s")

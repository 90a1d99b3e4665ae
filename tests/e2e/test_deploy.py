"""Policy file → real Prefect server + process worker: event-chained runs, artifacts, metrics.

Acceptance: the nightly backup deployment runs, the copy and verification runs follow by trigger,
all visible through the API with artifacts, and the verification run received the policy's RTO/RPO;
a second deploy changes nothing; the metrics endpoint's last-success gauge moves after the backup.
(Alerts: test_alerts.py; reference checks and bad input: test_deploy_checks.py; the scheduler
firing a cron: test_schedule.py.)
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

from tests.e2e.prefect_helpers import (
    PASSPHRASE,
    ROOT,
    SEAWALL,
    api,
    create_pool,
    files_dataset,
    seawall,
    seawall_env,
    two_region_policy,
    wait_run,
)
from tests.fixtures.prefect import free_port, process_worker

POOL = "seawall-e2e"


def policy_text(a: str, b: str, src: str) -> str:
    return two_region_policy(POOL, a, b, files_dataset("www", src))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        return resp.read().decode()


def last_success(text: str, url: str) -> float | None:
    for line in text.splitlines():
        if (line.startswith("seawall_last_success_timestamp_seconds{") and 'dataset="www"' in line
                and 'stage="backup"' in line and f'vault="{url}"' in line):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_metrics(port: int, url: str) -> float | None:
    deadline = time.monotonic() + 60
    while True:
        try:
            return last_success(scrape(port), url)
        except OSError:
            assert time.monotonic() < deadline, "metrics endpoint did not come up"
            time.sleep(0.5)


def test_policy_deploys_chains_and_exports_metrics(prefect_server, tmp_path):
    from seawall.vault import init_vault

    env = seawall_env(prefect_server)
    a, b = f"file://{tmp_path / 'region a'}", f"file://{tmp_path / 'region-b'}"
    src = tmp_path / "www root ü"
    src.mkdir()
    (src / "index.html").write_text("<h1>hello</h1>\n" * 1000)
    init_vault(a, PASSPHRASE)
    policy = tmp_path / "seawall.yaml"
    policy.write_text(policy_text(a, b, str(src)))
    create_pool(prefect_server, POOL)

    first = seawall(env, "deploy", "--policy", str(policy), "--json")
    assert first.returncode == 0, first.stderr
    assert any("nightly-www" in c for c in json.loads(first.stdout)["changes"])
    second = seawall(env, "deploy", "--policy", str(policy), "--json")
    assert second.returncode == 0 and json.loads(second.stdout)["changes"] == [], second.stdout + second.stderr

    port = free_port()
    metrics = subprocess.Popen([SEAWALL, "metrics", "--vault", a, "--port", str(port)], env=env, cwd=ROOT)
    try:
        assert wait_metrics(port, a) is None
        with process_worker(POOL, env, tmp_path / "worker.log", ROOT), api(prefect_server) as client:
            nightly = client.read_deployment_by_name("backup-files/nightly-www")
            client.create_flow_run_from_deployment(nightly.id)
            runs = [wait_run(client, name, 240) for name in ("nightly-www", "copy-www", "verify-www")]
            for run in runs:
                assert client.read_artifacts(flow_run_filter=_run_filter(run.id)), f"no artifact for {run.name}"
                assert {"seawall", "dataset:www"} <= set(run.tags), run.tags
            assert runs[2].parameters["rto_seconds"] == 3600 and runs[2].parameters["rpo_seconds"] == 26 * 3600
            after = last_success(scrape(port), a)
            assert after is not None
    finally:
        metrics.terminate()
        metrics.wait(10)


def _run_filter(run_id):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    return FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))

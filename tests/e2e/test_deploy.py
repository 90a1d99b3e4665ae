"""Policy file → real Prefect server + process worker: schedules, event-chained runs, alerts, metrics.

Acceptance: the nightly backup deployment runs, the copy and verification runs follow by trigger,
all visible through the API with artifacts; a failed backup notifies a local webhook sink within
30 s; a dataset with a 1-minute RPO and no backup raises the staleness alert; a second deploy
changes nothing; the metrics endpoint's last-success gauge moves after the backup.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.fixtures.prefect import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "correct horse"
SEAWALL = [sys.executable, "-c", "from seawall.cli import app, deploy\n"
           "if 'deploy' not in {c.name for c in app.app.registered_commands}: deploy.register(app.app)\n"
           "app.run()"]


class Sink:
    """A webhook sink on 127.0.0.1 that records every JSON body it receives."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.bodies.append(json.loads(raw or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, text: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.bodies:
                if text in json.dumps(body):
                    return body
            time.sleep(0.5)
        raise AssertionError(f"no notification containing {text!r} within {timeout} s: {self.bodies}")


def policy_text(a: str, b: str, src: str, idle: str, hook: str) -> str:
    return f"""\
version: 1
work_pool: seawall-e2e
vaults:
  region-a: {{url: "{a}"}}
  region-b: {{url: "{b}", role: dr}}
datasets:
  www:
    files: {{path: {src}}}
    vault: region-a
    copy_to: region-b
    rpo: 26h
    rto: 1h
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
  idle:
    files: {{path: {idle}}}
    vault: region-a
    rpo: 1m
    rto: 1h
    schedule: {{cron: "* * * * *", timezone: UTC}}
    verify: false
alerts:
  webhooks: [{{url: "{hook}"}}]
"""


@pytest.fixture
def env(prefect_server):
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    return dict(base, PREFECT_API_URL=prefect_server["url"], PREFECT_HOME=prefect_server["home"],
                SEAWALL_PASSPHRASE=PASSPHRASE, PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="200")


def seawall(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SEAWALL, *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.fixture
def worker(env, tmp_path):
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", "seawall-e2e",
                             "--type", "process", "--prefetch-seconds", "5"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    yield tmp_path / "worker.log"
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        return resp.read().decode()


def last_success(text: str, url: str) -> float | None:
    for line in text.splitlines():
        if (line.startswith("seawall_last_success_timestamp_seconds{") and 'dataset="www"' in line
                and 'stage="backup"' in line and f'vault="{url}"' in line):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_run(client, deployment_name: str, timeout: float, state: str = "COMPLETED"):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        by_name = DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name]))
        runs = client.read_flow_runs(deployment_filter=by_name)
        done = [r for r in runs if r.state and r.state.type.value == state]
        if done:
            return done[0]
        bad = [r for r in runs if r.state and r.state.is_final() and r.state.type.value != state]
        if bad and state == "COMPLETED":
            raise AssertionError(f"{deployment_name} ended {bad[0].state.type.value}: {bad[0].state.message}")
        time.sleep(1)
    raise AssertionError(f"no {state} run of {deployment_name} within {timeout} s")


def test_policy_deploys_chains_alerts_and_exports_metrics(env, worker, prefect_server, tmp_path):
    from seawall.vault import init_vault

    a, b = f"file://{tmp_path / 'region-a'}", f"file://{tmp_path / 'region-b'}"
    src, idle = tmp_path / "www", tmp_path / "idle"
    for folder in (src, idle):
        folder.mkdir()
        (folder / "index.html").write_text("<h1>hello</h1>\n" * 1000)
    init_vault(a, PASSPHRASE)
    sink = Sink()
    policy = tmp_path / "seawall.yaml"
    policy.write_text(policy_text(a, b, str(src), str(idle), sink.url))

    first = seawall(env, "deploy", "--policy", str(policy), "--json")
    assert first.returncode == 0, first.stderr
    with temporary_settings({PREFECT_API_URL: prefect_server["url"]}):
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:  # idle stands for a dataset whose backups stopped
            client.pause_deployment(client.read_deployment_by_name("backup-files/nightly-idle").id)
    assert any("nightly-www" in c for c in json.loads(first.stdout)["changes"])
    second = seawall(env, "deploy", "--policy", str(policy), "--json")
    assert second.returncode == 0 and json.loads(second.stdout)["changes"] == [], second.stdout + second.stderr

    port = free_port()
    metrics = subprocess.Popen([*SEAWALL, "metrics", "--vault", a, "--port", str(port)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                before = last_success(scrape(port), a)
                break
            except OSError:
                assert time.monotonic() < deadline, "metrics endpoint did not come up"
                time.sleep(0.5)
        assert before is None
        with temporary_settings({PREFECT_API_URL: prefect_server["url"]}):
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                nightly = client.read_deployment_by_name("backup-files/nightly-www")
                client.create_flow_run_from_deployment(nightly.id)
                runs = [wait_run(client, name, 240) for name in ("nightly-www", "copy-www", "verify-www")]
                for run in runs:
                    assert client.read_artifacts(
                        flow_run_filter=_run_filter(run.id)), f"no artifact for {run.name}"
                after = last_success(scrape(port), a)
                assert after is not None and (before is None or after > before)

                bad = client.create_flow_run_from_deployment(nightly.id, parameters={"path": str(tmp_path / "gone")})
                wait_run(client, "nightly-www", 60, state="FAILED")
                failed_at = time.monotonic()  # the alert is timed from the failure, not the worker pick-up
                body = sink.wait_for(str(bad.name), 30)
                assert time.monotonic() - failed_at < 30 and "Failed" in json.dumps(body)
                sink.wait_for("idle is stale", 150)
    finally:
        metrics.terminate()
        metrics.wait(10)


def _run_filter(run_id):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    return FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))

"""Helpers for the tests that deploy a policy onto the real `prefect server` (tests/fixtures/prefect.py).

The server lives for the whole session: each test's policy uses its own dataset and work-pool
names, so one test's deployments and runs (`nightly-<dataset>`) never look like another's.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEAWALL = str(Path(sys.executable).with_name("seawall"))
PASSPHRASE = "correct horse"


class Sink:
    """A webhook receiver on 127.0.0.1 that records every JSON body it is sent."""

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
        """The first body whose JSON text contains `text` (AssertionError listing what came, on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in list(self.bodies):
                if text in json.dumps(body, ensure_ascii=False):
                    return body
            time.sleep(0.5)
        raise AssertionError(f"no notification containing {text!r} within {timeout} s: {self.bodies}")

    def close(self) -> None:
        self.server.shutdown()


def two_region_policy(pool: str, a: str, b: str, *datasets: str, alerts: str = "") -> str:
    """A policy on work pool `pool` with vaults region-a (at `a`) and region-b (`b`, the DR role).

    `datasets`: blocks from `files_dataset`; `alerts`: the indented body of an `alerts:` section.
    """
    head = (f"version: 1\nwork_pool: {pool}\nvaults:\n  region-a: {{url: \"{a}\"}}\n"
            f"  region-b: {{url: \"{b}\", role: dr}}\ndatasets:\n")
    return head + "".join(datasets) + (f"alerts:\n{alerts}" if alerts else "")


def files_dataset(name: str, path: str, *, rpo: str = "26h", cron: str = "0 2 * * *", extra: str = "") -> str:
    """A `datasets:` entry backing up the folder `path` to region-a, copied to region-b (`extra`: more lines)."""
    return (f"  {name}:\n    files: {{path: \"{path}\"}}\n    vault: region-a\n    copy_to: region-b\n{extra}"
            f"    rpo: {rpo}\n    rto: 1h\n    schedule: {{cron: \"{cron}\", timezone: UTC}}\n")


def seawall_env(server: dict) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    return dict(base, PREFECT_API_URL=server["url"], PREFECT_HOME=server["home"], SEAWALL_PASSPHRASE=PASSPHRASE,
                PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="200")


def seawall(env: dict, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The `seawall` console script as a whole process."""
    return subprocess.run([SEAWALL, *args], env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


@contextlib.contextmanager
def api(server: dict):
    """A sync client for the test server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server["url"]}), get_client(sync_client=True) as client:
        yield client


def create_pool(server: dict, name: str) -> None:
    """A process work pool (deploy requires the policy's pool to exist)."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with api(server) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def wait_run(client, deployment_name: str, timeout: float, state: str = "COMPLETED"):
    """The first run of the deployment in `state`; fails early when a run ends otherwise (for COMPLETED)."""
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

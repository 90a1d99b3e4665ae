"""The readiness-report flow under the Prefect test harness: the artifact is read back through the
Prefect API, and a FAILED control fails the run (exit code 6 for the CLI)."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
)

from deployments.build import build
from flows.readiness import ControlsFailed, readiness_report
from seawall.errors import ExitCode
from seawall.policy import load_policy
from seawall.sources.files import backup_tree
from seawall.vault import init_vault
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE

POLICY = """
version: 1
vaults:
  near: {{url: "file://{base}/near vault"}}
  far: {{url: "file://{base}/far vault", role: dr, region: other-site}}
datasets:
  www:
    files: {{path: "{base}/src"}}
    vault: near
    copy_to: far
    rpo: 26h
    rto: 1h
    tier: tier-2
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
readiness:
  report: {{schedule: {{cron: "0 6 * * *", timezone: Europe/Berlin}}}}
"""


@pytest.fixture
def policy_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAWALL_PASSPHRASE", PASSPHRASE)
    src = tmp_path / "src"
    src.mkdir()
    (src / "index 'ü'.html").write_text("<h1>hello</h1>\n" * 50)
    near = init_vault(f"file://{tmp_path}/near vault", PASSPHRASE, scrypt=FAST_SCRYPT)
    init_vault(f"file://{tmp_path}/far vault", PASSPHRASE, scrypt=FAST_SCRYPT)
    backup_tree(near, src, "www")
    path = tmp_path / "seawall.yaml"
    path.write_text(POLICY.format(base=tmp_path))
    return path


def test_report_artifact_is_readable_through_the_prefect_api(policy_file):
    report = readiness_report(str(policy_file), fail_on_failed=False)
    statuses = {c.control: c.status for c in report.datasets[0].controls}
    assert statuses["backup-within-rpo"] == "PASS" and statuses["offsite-copy"] == "FAIL"
    assert statuses["restore-tested-within-days"] == "UNKNOWN"

    with get_client(sync_client=True) as client:
        key = ArtifactFilter(key=ArtifactFilterKey(any_=["readiness-report"]))
        artifacts = client.read_artifacts(artifact_filter=key)
        assert artifacts, "no readiness-report artifact"
        newest = max(artifacts, key=lambda a: a.created)
        run = client.read_flow_run(newest.flow_run_id)
    assert run.name and run.flow_id
    assert newest.type == "markdown"
    assert "| backup-within-rpo | ✅ PASS |" in newest.data
    assert "| offsite-copy | ❌ FAIL | no copy of www in far" in newest.data
    assert "PASSPHRASE" not in newest.data and PASSPHRASE not in newest.data


def test_a_failed_control_fails_the_run(policy_file):
    with pytest.raises(ControlsFailed) as caught:
        readiness_report(str(policy_file))
    assert caught.value.exit_code == ExitCode.CONTROL_FAILED == 6
    assert caught.value.report.counts["FAIL"] >= 1


def test_policy_deploys_the_scheduled_report(policy_file):
    desired = build(load_policy(policy_file), env={}, policy_file=str(policy_file))
    spec = next(d for d in desired.deployments if d.name == "readiness-report")
    assert spec.cron == "0 6 * * *" and spec.timezone == "Europe/Berlin"
    assert spec.parameters == {"policy_file": str(policy_file), "strict": False}
    assert spec.entrypoint.endswith(":readiness_report")

"""Deploying for many workers: SSH datasets, the crash-detection automation, vault slot names and leases,
where flow runs find the code (process vs kubernetes pools)."""

from __future__ import annotations

import pytest

from deployments.apply import IMAGE_WORKDIR, PROJECT_ROOT, code_directory, pull_steps
from deployments.build import build
from seawall.policy import PolicyError, parse_policy
from tasks.slots import _seconds, lease_seconds, slot_name, wait_seconds

POLICY = """\
version: 1
vaults:
  region-a: {url: "file:///srv/vault a"}
datasets:
  web:
    files: {path: "ssh://backup@web1.example:2222/srv/www"}
    vault: region-a
    rpo: 26h
    rto: 1h
    schedule: {cron: "0 2 * * *", timezone: UTC}
    verify: false
"""


def test_an_ssh_dataset_runs_the_remote_flow_with_its_url():
    desired = build(parse_policy(POLICY), env={})
    nightly = next(d for d in desired.deployments if d.name == "nightly-web")
    assert nightly.entrypoint.endswith(":nightly_backup_remote_files")
    assert nightly.parameters == {"host": "ssh://backup@web1.example:2222/srv/www", "vault": "file:///srv/vault a",
                                  "dataset": "web"}
    assert desired.concurrency_limits == {"seawall-vault-region-a": 1}


def test_crash_detection_is_deployed_even_without_alert_targets():
    autos = {a.name: a for a in build(parse_policy(POLICY + "unresponsive_after: 5m\n"), env={}).automations}
    crash = autos["seawall-unresponsive-runs"]
    assert crash.trigger["posture"] == "Proactive" and crash.trigger["within"] == 300
    assert crash.trigger["after"] == ["prefect.flow-run.heartbeat"]
    assert crash.trigger["for_each"] == ["prefect.resource.id"]
    assert crash.trigger["match_related"]["prefect.resource.id"] == "prefect.tag.seawall"
    assert crash.actions == [{"type": "change-flow-run-state", "state": "CRASHED",
                              "message": "no heartbeat for 5m: its worker or machine stopped (seawall)"}]
    assert [a.name for a in build(parse_policy(POLICY), env={}).automations] == ["seawall-unresponsive-runs"]
    assert build(parse_policy(POLICY + "unresponsive_after: null\n"), env={}).automations == []


def test_an_unresponsive_window_within_one_heartbeat_is_refused_with_its_line():
    with pytest.raises(PolicyError) as err:
        parse_policy(POLICY + "unresponsive_after: 30s\n")
    assert "seawall.yaml:12: unresponsive_after" in str(err.value)
    assert "longer than 30s" in str(err.value)


def test_the_crash_action_is_a_prefect_action():
    from deployments.apply import _actions

    crash = build(parse_policy(POLICY), env={}).automations[0]
    (action,) = _actions(crash)
    assert action.type == "change-flow-run-state" and action.state.value == "CRASHED"


@pytest.mark.parametrize(("tags", "name"), [
    (["seawall", "vault:region-a", "stage:backup"], "seawall-vault-region-a"),
    (["seawall", "stage:backup"], None),
    (["vault:"], None),
    (None, None),
])
def test_the_slot_is_the_vault_its_deployment_tagged(tags, name):
    assert slot_name(tags) == name


def test_slot_leases_are_never_shorter_than_the_server_takes(monkeypatch):
    monkeypatch.delenv("SEAWALL_SLOT_LEASE_SECONDS", raising=False)
    assert lease_seconds() == 300.0
    monkeypatch.setenv("SEAWALL_SLOT_LEASE_SECONDS", "15")
    assert lease_seconds() == 60.0
    monkeypatch.setenv("SEAWALL_SLOT_LEASE_SECONDS", "90")
    assert lease_seconds() == 90.0
    monkeypatch.setenv("SEAWALL_SLOT_LEASE_SECONDS", "soon")
    assert lease_seconds() == 300.0


def test_the_slot_wait_is_bounded_by_an_hour_unless_set(monkeypatch):
    monkeypatch.delenv("SEAWALL_SLOT_WAIT_SECONDS", raising=False)
    assert wait_seconds() == 3600.0
    monkeypatch.setenv("SEAWALL_SLOT_WAIT_SECONDS", "20")
    assert wait_seconds() == 20.0
    monkeypatch.setenv("SEAWALL_SLOT_WAIT_SECONDS", "0")
    assert wait_seconds() == 1.0
    monkeypatch.setenv("SEAWALL_SLOT_WAIT_SECONDS", "forever")
    assert wait_seconds() == 3600.0
    assert _seconds("SEAWALL_SLOT_WAIT_SECONDS", 3600.0, 1.0)[1] == (
        "SEAWALL_SLOT_WAIT_SECONDS='forever' is not a number of seconds: using 3600; set it to e.g. 600")
    monkeypatch.setenv("SEAWALL_SLOT_WAIT_SECONDS", "20")
    assert _seconds("SEAWALL_SLOT_WAIT_SECONDS", 3600.0, 1.0) == (20.0, None)


def test_flow_runs_work_in_place_never_in_a_copy():
    assert code_directory("process") == str(PROJECT_ROOT)
    assert code_directory("kubernetes") == IMAGE_WORKDIR
    assert pull_steps("/opt/seawall") == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/seawall"}}]

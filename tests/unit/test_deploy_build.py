"""Policy → desired Prefect state: objectives reach drills and verification, tags, alerts, failure text."""

from __future__ import annotations

import asyncio
import types
import uuid
from pathlib import Path

import pytest

from deployments.alerts import FAILURE_BODY, FAILURE_SUBJECT, stages
from deployments.build import build
from deployments.failures import StageFailed, describe, describing_failures, failing_task
from deployments.references import block_refs, offline_problems
from seawall.errors import ConfigError
from seawall.policy import load_policy, parse_policy

EXAMPLE = Path(__file__).parents[2] / "examples" / "seawall.yaml"


def by_name(desired):
    return {d.name: d for d in desired.deployments}


def test_policy_objectives_reach_every_drill_and_verification():
    policy = load_policy(EXAMPLE)
    deps = by_name(build(policy, env={}))
    shop, www = policy.datasets["shop"], policy.datasets["www"]
    assert deps["verify-shop"].parameters.items() >= {"rto_seconds": 1800.0, "rpo_seconds": 26 * 3600.0}.items()
    assert deps["verify-www"].parameters["rto_seconds"] == www.rto.total_seconds()
    assert deps["restore-drill-shop"].parameters["rto_seconds"] == shop.rto.total_seconds()
    assert deps["restore-drill-www"].parameters["rto_seconds"] == 7200.0
    # the example's failover drill names dataset shop: its objectives judge the drill
    assert deps["failover-drill"].parameters["objectives"] == {"rto_seconds": 1800.0, "rpo_seconds": 26 * 3600.0}
    assert deps["failover-drill"].parameters["dataset"] == "shop"


def test_failover_drill_without_dataset_takes_the_strictest_postgres_objectives():
    text = "".join(line for line in EXAMPLE.read_text().splitlines(keepends=True)
                   if not line.startswith("    dataset: shop"))
    deps = by_name(build(parse_policy(text), env={}))
    assert deps["failover-drill"].parameters["objectives"] == {"rto_seconds": 1800.0, "rpo_seconds": 26 * 3600.0}
    assert "dataset" not in deps["failover-drill"].parameters


def test_deployments_carry_dataset_stage_and_vault_tags():
    deps = by_name(build(load_policy(EXAMPLE), env={}))
    assert deps["nightly-www"].tags == ["seawall", "dataset:www", "stage:backup", "vault:region-a"]
    assert deps["copy-www"].tags == ["seawall", "dataset:www", "stage:copy", "vault:region-b"]
    assert deps["verify-shop"].tags == ["seawall", "dataset:shop", "stage:verification", "vault:region-b"]


def test_staleness_alert_per_stage_against_the_rpo():
    policy = load_policy(EXAMPLE)
    autos = {a.name: a for a in build(policy, env={"SEAWALL_ALERT_WEBHOOK": "https://hooks.example/x"}).automations}
    for stage, event in (("backup", "seawall.backup.completed"), ("copy", "seawall.copy.completed"),
                         ("verification", "seawall.verification.completed")):
        auto = autos[f"seawall-stale-www-{stage}"]
        assert auto.trigger["expect"] == [event] and auto.trigger["posture"] == "Proactive"
        assert auto.trigger["within"] == 25 * 3600
        assert auto.trigger["match"] == {"prefect.resource.id": "seawall.dataset.www"}
    no_copy = parse_policy(EXAMPLE.read_text().replace("    copy_to: region-b\n    rpo: 25h", "    rpo: 25h"))
    assert stages(no_copy, "www") == {"backup": "region-a", "verification": "region-a"}


def test_plan_needs_no_webhook_variable_but_deploy_checks_name_it_with_its_line():
    policy = load_policy(EXAMPLE)
    desired = build(policy, env={})  # plan: builds without the variable
    assert desired.webhooks == {"seawall-alert-0": ""}
    [problem] = offline_problems(policy, env={})
    assert problem.field == "alerts.webhooks[0].url_env" and "SEAWALL_ALERT_WEBHOOK is not set" in problem.message
    assert problem.line == EXAMPLE.read_text().splitlines().index("    - url_env: SEAWALL_ALERT_WEBHOOK         "
                                                                  "# e.g. a Slack/Teams incoming webhook URL") + 1
    assert offline_problems(policy, env={"SEAWALL_ALERT_WEBHOOK": "https://hooks.example/x"}) == []
    [bad] = offline_problems(policy, env={"SEAWALL_ALERT_WEBHOOK": "hooks.example/x"})
    assert "not an http(s) URL" in bad.message


def test_every_block_the_policy_names_is_a_reference():
    refs = {(r.slug, r.name, r.loc) for r in block_refs(load_policy(EXAMPLE))}
    assert refs == {("seawall-vault", "dr-us-east-2", ("vaults", "region-b", "block")),
                    ("seawall-postgres-node", "db1", ("drills", "failover", "primary")),
                    ("seawall-postgres-node", "db2", ("drills", "failover", "standby")),
                    ("seawall-mariadb-source", "orders-db", ("datasets", "orders-db", "mariadb", "block"))}


def test_policy_dataset_names_and_failover_dataset_are_checked():
    text = EXAMPLE.read_text()
    with pytest.raises(ConfigError) as info:
        parse_policy(text.replace("  www:\n", "  My WWW:\n").replace("dataset: shop ", "dataset: nope "))
    message = str(info.value)
    assert "datasets.My WWW: invalid dataset name 'My WWW'" in message
    assert "drills.failover.dataset: unknown dataset 'nope'" in message


# ---- the failure text ------------------------------------------------------------------------------

def _module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def test_failing_task_is_the_outermost_frame_in_the_tasks_package():
    tasks_mod = _module("tasks.fake", "def helper(p):\n    raise OSError(f'no folder {p}')\n"
                                      "def preflight_files(p):\n    helper(p)\n")
    flows_mod = _module("flows.fake", "def flow_body(task, p):\n    task(p)\n")
    with pytest.raises(OSError) as info:
        flows_mod.flow_body(tasks_mod.preflight_files, "/srv/gone ä")
    assert failing_task(info.value) == "preflight_files"
    assert describe(info.value, "backup-files") == "task preflight_files: OSError: no folder /srv/gone ä"
    assert describe(ValueError("bad\nsecond line"), "backup-files") == "flow backup-files: ValueError: bad"


def test_failing_task_skips_plumbing_that_re_raised_it(monkeypatch):
    """A retry condition calling state.result() re-raises the task's exception above the task's frame."""
    import sys

    tasks_mod = _module("tasks.fake_tasks", "class Task:\n    pass\n"
                                            "def preflight_files(p):\n    raise OSError(f'no folder {p}')\n"
                                            "preflight = Task()\npreflight.fn = preflight_files\n")
    plumbing = _module("tasks.fake_policy", "def only_retryable(exc):\n    raise exc\n")
    monkeypatch.setitem(sys.modules, "tasks.fake_tasks", tasks_mod)
    monkeypatch.setitem(sys.modules, "tasks.fake_policy", plumbing)
    flows_mod = _module("flows.fake", "def flow_body(task, check, p):\n    try:\n        task.fn(p)\n"
                                      "    except OSError as exc:\n        saved = exc\n    check(saved)\n")
    with pytest.raises(OSError) as info:
        flows_mod.flow_body(tasks_mod.preflight, plumbing.only_retryable, "/srv/gone")
    assert failing_task(info.value) == "preflight_files"


def test_describing_failures_keeps_parameters_and_exit_code():
    from prefect import flow

    @flow(name="t-flow")
    def t_flow(path: str, dataset: str | None = None) -> str:
        raise ConfigError("source folder is gone", hint="check the path")

    wrapped = describing_failures(t_flow)
    assert wrapped.parameters == t_flow.parameters and wrapped.name == "t-flow"
    with pytest.raises(StageFailed) as info:
        wrapped.fn("/x")
    assert str(info.value) == "flow t-flow: ConfigError: source folder is gone — check the path"
    assert info.value.exit_code == 2 and isinstance(info.value.__cause__, ConfigError)


def test_failure_template_renders_every_fact():
    from prefect.server.events.jinja_filters import all_filters
    from prefect.server.schemas.core import FlowRun
    from prefect.server.schemas.states import Failed
    from prefect.server.utilities.user_templates import register_user_template_filters, render_user_template

    register_user_template_filters(all_filters)
    run = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name="sly-lemur",
                  tags=["seawall", "dataset:www", "stage:backup", "vault:region-a"],
                  state=Failed(message="Flow run encountered an exception: StageFailed: task preflight_files: "
                               "ConfigError: source folder /srv/www does not exist — check it\nmore"))
    event = types.SimpleNamespace(event="prefect.flow-run.Failed", resource=types.SimpleNamespace(name="sly-lemur"))
    context = {"flow_run": run, "deployment": types.SimpleNamespace(name="nightly-www"), "event": event}
    subject = asyncio.run(render_user_template(FAILURE_SUBJECT, context))
    body = asyncio.run(render_user_template(FAILURE_BODY, context))
    assert subject == "seawall: backup of www FAILED (deployment nightly-www)"
    assert ("Failed: task preflight_files: ConfigError: source folder /srv/www does not exist — check it\n"
            "Run: sly-lemur") in body
    for line in ("Deployment: nightly-www", "Dataset: www", "Vault: region-a", "Stage: backup"):
        assert line in body


def test_deployment_flows_still_validate_their_parameters():
    """Prefect resolves the flows' string annotations (VaultTarget...) in the wrapped function's globals."""
    from deployments import entrypoints

    params = {"path": "/srv/www", "vault": "file:///srv/vault", "dataset": "www"}
    assert entrypoints.nightly_backup_files.validate_parameters(params) == params
    checked = entrypoints.verify_in_dr.validate_parameters({"vault": "file:///v", "dataset": "www",
                                                            "rto_seconds": 60, "rpo_seconds": 120})
    assert checked["rto_seconds"] == 60

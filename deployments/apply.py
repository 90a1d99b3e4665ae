"""Apply a desired state (deployments/build.py) to a Prefect API, changing only what differs.

Each deployment and automation carries a fingerprint of its desired spec (the deployment's
`version`, an automation tag), so a second `seawall deploy` of the same policy finds nothing to
do; parameters and schedules are also compared, so an edit made in the UI is put back.

Example:
    ```python
    from deployments.apply import deploy
    from deployments.build import build
    changes = deploy(build(load_policy("seawall.yaml")))   # [] when already in place
    ```
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from deployments.build import TAG, AutomationSpec, DeploymentSpec, Desired

PROJECT_ROOT = Path(__file__).resolve().parents[1]
IMAGE_WORKDIR = "/opt/seawall"  # where deployments/kubernetes/Dockerfile puts the project
WEBHOOK_SLUG = "custom-webhook"
_URL_TEMPLATE = "{{url}}"


def fingerprint(obj: Any) -> str:
    """A short, stable hash of a spec (dataclass or JSON-able)."""
    data = asdict(obj) if hasattr(obj, "__dataclass_fields__") else obj
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def deploy(desired: Desired, client=None) -> list[str]:
    """Create or update what differs; returns one line per change ([] when nothing changed).

    The work pool and every block the policy names must exist already (deployments/references.py
    checks them first); seawall automations the policy no longer describes are deleted.
    """
    from prefect.client.orchestration import get_client

    from deployments.lifecycle import apply_lifecycles

    if client is None:
        with get_client(sync_client=True) as own:
            return deploy(desired, own)
    changes = apply_lifecycles(desired.lifecycles)  # first: a refused rule stops the deploy here
    changes += _limits(client, desired.concurrency_limits)
    changes += _webhooks(client, desired.webhooks)
    code = code_directory(client.read_work_pool(desired.work_pool).type)
    for spec in desired.deployments:
        changes += _deployment(client, spec, desired.work_pool, code)
    for auto in desired.automations:
        changes += _automation(client, auto)
    return changes + _retired_automations(client, {a.name for a in desired.automations})


def _limits(client, limits: dict[str, int]) -> list[str]:
    """The vault slots. Without slot decay, on purpose: on a limit with `slot_decay_per_second` > 0,
    Prefect 3.8's server answers a refused acquisition with Retry-After = (1 / decay) x the waiting
    slots (it treats the limit as a rate limit), so a run waiting behind a backup would sleep for
    hours. A dead holder's slot comes back when its lease expires (tasks/slots.py)."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    out = []
    for name, limit in limits.items():
        try:
            current = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
            out.append(f"created concurrency limit {name} = {limit}")
            continue
        if current.limit != limit or not current.active or current.slot_decay_per_second:
            client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=limit, active=True, slot_decay_per_second=0.0))
            out.append(f"updated concurrency limit {name} = {limit}")
    return out


def _webhooks(client, webhooks: dict[str, str]) -> list[str]:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    out = []
    for name, url in webhooks.items():
        try:
            current = CustomWebhookNotificationBlock.load(name)
            if current.secrets.get_secret_value().get("url") == url and current.url == _URL_TEMPLATE:
                continue
            verb = "updated"
        except ValueError:
            verb = "created"
        # The URL is a secret (Slack-style tokens sit in its path): it goes into the block's
        # SecretDict and the `url` field only names it. Saved in `url`, it showed in clear in the
        # server's "block document created" event payload.
        CustomWebhookNotificationBlock(name=name, url=_URL_TEMPLATE, secrets={"url": url}, method="POST",
                                       json_data={"subject": "{{subject}}", "body": "{{body}}"}
                                       ).save(name, overwrite=True)
        out.append(f"{verb} notification block {WEBHOOK_SLUG}/{name}")
    return out


def code_directory(pool_type: str) -> str:
    """Where a flow run finds this project: the deploying checkout for a process pool (its workers run
    on this machine, or one with the same layout), the image's folder for a Kubernetes pool."""
    return IMAGE_WORKDIR if pool_type == "kubernetes" else str(PROJECT_ROOT)


def pull_steps(code: str) -> list[dict[str, Any]]:
    """The deployment's pull step: run in `code` as it is. Without one, Prefect copies the deployment's
    `path` into a temporary folder for every run (all of it, .venv included: ~900 MB here)."""
    return [{"prefect.deployments.steps.set_working_directory": {"directory": code}}]


def _deployment(client, spec: DeploymentSpec, pool: str, code: str) -> list[str]:
    from prefect.exceptions import ObjectNotFound

    from deployments import entrypoints

    flow = getattr(entrypoints, spec.flow_attr)
    version = fingerprint(spec)
    full_name = f"{flow.name}/{spec.name}"
    try:
        current = client.read_deployment_by_name(full_name)
        if (current.version == version and current.work_pool_name == pool and current.parameters == spec.parameters
                and _crons(current) == ([(spec.cron, spec.timezone)] if spec.cron else [])
                and current.pull_steps == pull_steps(code)):
            return []
        verb = "updated"
    except ObjectNotFound:
        verb = "created"
    _runner_deployment(flow, spec, version, code).apply(work_pool_name=pool)
    when = f" ({spec.cron} {spec.timezone})" if spec.cron else ""
    trig = f", {len(spec.triggers)} trigger(s)" if spec.triggers else ""
    return [f"{verb} deployment {full_name}{when}{trig}"]


def _crons(deployment) -> list[tuple[str | None, str | None]]:
    return [(getattr(s.schedule, "cron", None), getattr(s.schedule, "timezone", None))
            for s in deployment.schedules or []]


def _runner_deployment(flow, spec: DeploymentSpec, version: str, code: str):
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.deployments.runner import RunnerDeployment
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.runner.storage import LocalStorage

    schedules = [CronSchedule(cron=spec.cron, timezone=spec.timezone)] if spec.cron else None
    deployment = RunnerDeployment.from_flow(
        flow, spec.name, schedules=schedules, parameters=spec.parameters, description=spec.description,
        tags=spec.tags, version=version, concurrency_limit=spec.concurrency_limit,
        triggers=[DeploymentEventTrigger(**t) for t in spec.triggers])
    deployment.entrypoint = spec.entrypoint
    deployment.storage = LocalStorage(code)  # its pull step: `pull_steps(code)`
    return deployment


def _automation(client, spec: AutomationSpec) -> list[str]:
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

    tag = f"fp:{fingerprint(spec)}"
    existing = client.read_automations_by_name(spec.name)
    if existing and tag in existing[0].tags:
        return []
    actions = _actions(spec) if spec.actions else [
        SendNotification(block_document_id=_block_id(client, ref), subject=spec.subject, body=spec.body)
        for ref in spec.notify]
    core = AutomationCore(name=spec.name, description=spec.description, tags=[TAG, tag], enabled=True,
                          trigger=EventTrigger(**spec.trigger), actions=actions)
    if existing:
        client.update_automation(existing[0].id, core)
        return [f"updated automation {spec.name}"]
    client.create_automation(core)
    return [f"created automation {spec.name}"]


def _actions(spec: AutomationSpec) -> list:
    from prefect.events.actions import ActionTypes
    from pydantic import TypeAdapter

    return [TypeAdapter(ActionTypes).validate_python(action) for action in spec.actions or []]


def _retired_automations(client, wanted: set[str]) -> list[str]:
    """Delete seawall's own automations (tag `seawall`) that the policy no longer describes."""
    out = []
    for auto in client.read_automations():
        if TAG in (auto.tags or []) and auto.name not in wanted:
            client.delete_automation(auto.id)
            out.append(f"deleted automation {auto.name} (no longer in the policy)")
    return out


def _block_id(client, ref: str):
    slug, name = ref.split("/", 1)
    return client.read_block_document_by_name(name, block_type_slug=slug).id


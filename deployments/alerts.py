"""The automations a policy deploys: an alert when a seawall run fails, staleness alerts per stage.

Failure alert (one automation, every seawall run): Prefect renders its subject and body on the
server with Jinja, with the failed `flow_run`, its `deployment` and the `event` in scope. Every
seawall deployment carries the tags `dataset:<name>`, `stage:<stage>` and `vault:<name>`, and a
deployment run's failure message says which task failed and the first error line
(deployments/failures.py), so the text reads, for example:

    seawall: backup of www FAILED (deployment nightly-www, vault region-a)
    Failed: task preflight_files: ConfigError: source folder /srv/www does not exist ...
    Run: sly-lemur http://127.0.0.1:4200/runs/flow-run/<id>      (when the server knows its UI URL)

Staleness (per dataset and stage: backup, copy, verification): the stage's
`seawall.<stage>.completed` event for `seawall.dataset.<name>` did not arrive within the dataset's
RPO.

Example:
    ```python
    from deployments.alerts import automations
    for spec in automations(policy, ["custom-webhook/seawall-alert-0"]):
        print(spec.name, spec.subject)
    ```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from deployments.events import EVENTS, SUSPICIOUS, dataset_resource_id
from seawall.policy import Policy

TAG = "seawall"
FAILED_EVENTS = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed")


@dataclass
class AutomationSpec:
    """An automation (trigger + notification); `notify` names the notification blocks to send to."""

    name: str
    description: str
    trigger: dict[str, Any]
    notify: list[str]
    subject: str
    body: str
    actions: list[dict[str, Any]] | None = None  # instead of notifications (e.g. change-flow-run-state)


# The run's dataset, stage and vault, from the tags its deployment gave it (`-` when absent: an
# ad hoc run from the CLI or Python carries only the `seawall` tag).
_FACTS = ("{% set s = namespace(dataset='-', stage='-', vault='-') %}"
          "{% for t in (flow_run.tags if flow_run else []) %}"
          "{% if t.startswith('dataset:') %}{% set s.dataset = t[8:] %}"
          "{% elif t.startswith('stage:') %}{% set s.stage = t[6:] %}"
          "{% elif t.startswith('vault:') %}{% set s.vault = t[6:] %}{% endif %}{% endfor %}"
          "{% set state = event.event.split('.')[-1] | upper %}"
          "{% set where = deployment.name if deployment else 'none (an ad hoc run)' %}"
          "{% set msg = (flow_run.state.message or '') if flow_run and flow_run.state else '' %}"
          "{% set why = (msg.split('StageFailed: ', 1)[-1].splitlines() or ['(no message)'])[0] %}"
          "{% set link = (flow_run | ui_url) if flow_run else None %}")
FAILURE_SUBJECT = _FACTS + "seawall: {{ s.stage }} of {{ s.dataset }} {{ state }} (deployment {{ where }})"
FAILURE_BODY = _FACTS + (
    "seawall: {{ s.stage }} of dataset {{ s.dataset }} {{ state }}.\n"
    "Deployment: {{ where }}\nDataset: {{ s.dataset }}\nVault: {{ s.vault }}\nStage: {{ s.stage }}\n"
    "Failed: {{ why }}\n"
    "Run: {{ event.resource.name }}{% if link %} {{ link }}{% endif %}\n")


def failure_automation(notify: list[str]) -> AutomationSpec:
    """Notify on every Failed or Crashed run tagged `seawall`."""
    return AutomationSpec(
        name="seawall-run-failed", description="A seawall flow run failed or crashed.",
        trigger={"type": "event", "expect": list(FAILED_EVENTS),
                 "match": {"prefect.resource.id": "prefect.flow-run.*"},
                 "match_related": {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"},
                 "posture": "Reactive", "threshold": 1, "within": 0},
        notify=notify, subject=FAILURE_SUBJECT, body=FAILURE_BODY)


HEARTBEAT = "prefect.flow-run.heartbeat"
RUN_ENDS = ("prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
            "prefect.flow-run.Crashed")


def unresponsive_automation(within_seconds: int) -> AutomationSpec:
    """Mark a seawall run Crashed when its heartbeats stop (its worker or machine died): Prefect's
    "detect zombie flows" recipe, limited to runs tagged `seawall`. The Crashed state then fires the
    failure alert, and the run's deployment slot frees for the next run."""
    return AutomationSpec(
        name="seawall-unresponsive-runs",
        description=f"Mark a seawall run Crashed when no heartbeat came for {_human(within_seconds)}.",
        trigger={"type": "event", "after": [HEARTBEAT], "expect": [HEARTBEAT, *RUN_ENDS],
                 "match": {"prefect.resource.id": "prefect.flow-run.*"},
                 "match_related": {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"},
                 "for_each": ["prefect.resource.id"], "posture": "Proactive", "threshold": 1,
                 "within": within_seconds},
        notify=[], subject="", body="",
        actions=[{"type": "change-flow-run-state", "state": "CRASHED",
                  "message": f"no heartbeat for {_human(within_seconds)}: its worker or machine stopped (seawall)"}])


def stages(policy: Policy, dataset: str) -> dict[str, str]:
    """The stages a dataset's pipeline has → the policy name of the vault each one writes to."""
    ds = policy.datasets[dataset]
    out = {"backup": ds.vault}
    if ds.copy_to:
        out["copy"] = ds.copy_to
    if ds.verify:
        out["verification"] = ds.copy_to or ds.vault
    return out


def staleness_automation(policy: Policy, dataset: str, stage: str, notify: list[str]) -> AutomationSpec:
    """No `seawall.<stage>.completed` for the dataset within its RPO."""
    ds = policy.datasets[dataset]
    rpo = _human(int(ds.rpo.total_seconds()))
    vault = _plain(stages(policy, dataset)[stage])
    what = {"backup": "backup", "copy": "copy to the DR vault", "verification": "verified restore"}[stage]
    return AutomationSpec(
        name=f"seawall-stale-{dataset}-{stage}",
        description=f"No completed {what} of {dataset} within its RPO ({rpo}).",
        trigger={"type": "event", "expect": [EVENTS[stage]],
                 "match": {"prefect.resource.id": dataset_resource_id(dataset)},
                 "posture": "Proactive", "threshold": 1, "within": int(ds.rpo.total_seconds())},
        notify=notify, subject=f"seawall: {dataset} {stage} is stale (no {what} within RPO {rpo})",
        body=(f"seawall: no completed {what} of dataset {dataset} within its RPO of {rpo}.\n"
              f"Dataset: {dataset}\nStage: {stage}\nVault: {vault}\n"
              f"Event expected: {EVENTS[stage]} for {dataset_resource_id(dataset)}\n"
              f"Look at the runs of the deployment {_deployment_of(stage)}-{dataset} in the Prefect UI."))


def suspicious_automation(notify: list[str]) -> AutomationSpec:
    """Notify when a backup is flagged SUSPICIOUS (possible ransomware; tasks/readiness.py)."""
    return AutomationSpec(
        name="seawall-backup-suspicious", description="A backup was flagged SUSPICIOUS (possible ransomware).",
        trigger={"type": "event", "expect": [SUSPICIOUS], "match": {"prefect.resource.id": "seawall.dataset.*"},
                 "posture": "Reactive", "threshold": 1, "within": 0},
        notify=notify, subject="seawall: SUSPICIOUS backup of {{ event.resource.name }}",
        body=("seawall flagged backup {{ event.payload.backup_id }} of {{ event.resource.name }}: "
              "{{ event.payload.reasons | join('; ') }}. It is kept by retention; "
              "`seawall last-clean {{ event.resource.name }}` names the backup before it."))


def automations(policy: Policy, notify: list[str]) -> list[AutomationSpec]:
    """Crash detection, the failure alert, the suspicious-backup alert and one staleness alert per
    dataset and stage (alerts only with somewhere to notify)."""
    crash = [unresponsive_automation(int(policy.unresponsive_after.total_seconds()))] \
        if policy.unresponsive_after is not None else []
    if not notify:
        return crash
    out = crash + ([failure_automation(notify)] if policy.alerts.on_failure else [])
    out.append(suspicious_automation(notify))
    if policy.alerts.on_staleness:
        out += [staleness_automation(policy, name, stage, notify)
                for name in policy.datasets for stage in stages(policy, name)]
    return out


def _deployment_of(stage: str) -> str:
    return {"backup": "nightly", "copy": "copy", "verification": "verify"}[stage]


def _plain(text: str) -> str:
    """Policy names inside a Jinja template: no template syntax."""
    return re.sub(r"[{}%#]", "_", text)


def _human(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

"""From a validated Policy to the Prefect objects that run it (pure: no API calls here).

Per dataset:
    nightly-<ds>   backup (cron + time zone)            → emits seawall.backup.completed
    copy-<ds>      cross-region copy, triggered by it    → emits seawall.copy.completed
    verify-<ds>    restore verification, triggered by it → emits seawall.verification.completed
    retention-<ds> apply retention, triggered by verification (or by the copy/backup if none)
Plus: weekly restore drill, a failover drill with UI parameters, one global concurrency limit per
vault (`seawall-vault-<name>`, limit 1, for `concurrency()` around write and prune phases) and
automations: notify on Failed/Crashed seawall runs, and on staleness (no backup event within RPO).

`deployments.apply.deploy()` creates or updates only what differs from this desired state.

Example:
    ```python
    from deployments.build import build
    from seawall.policy import load_policy
    desired = build(load_policy("seawall.yaml"))
    print([d.name for d in desired.deployments])
    ```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deployments.alerts import TAG, AutomationSpec, automations
from deployments.events import BACKUP, COPY, VERIFICATION, dataset_resource_id
from seawall.policy import DatasetSpec, Policy, VaultSpec
from seawall.redact import add_secret

ENTRY = "deployments/entrypoints.py"
__all__ = ["TAG", "AutomationSpec", "DeploymentSpec", "Desired", "build"]


@dataclass
class DeploymentSpec:
    """One deployment, in the terms `deploy()` compares against the server."""

    name: str
    entrypoint: str
    parameters: dict[str, Any]
    description: str
    cron: str | None = None
    timezone: str | None = None
    triggers: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=lambda: [TAG])
    concurrency_limit: int | None = 1

    @property
    def flow_attr(self) -> str:
        return self.entrypoint.rsplit(":", 1)[1]


@dataclass
class Desired:
    """Everything a policy deploys."""

    work_pool: str
    deployments: list[DeploymentSpec]
    concurrency_limits: dict[str, int]
    webhooks: dict[str, str]  # notification block name → URL (resolved at deploy time)
    automations: list[AutomationSpec]
    lifecycles: list[LifecycleSpec] = field(default_factory=list)


@dataclass
class LifecycleSpec:
    """A vault's S3 lifecycle steps for its chunks: (days, storage class), coldest last."""

    vault: str
    url: str | None
    block: str | None
    transitions: list[tuple[int, str]]


def lifecycles(policy: Policy) -> list[LifecycleSpec]:
    """Every vault with lifecycle steps (validated by the policy loader against retention)."""
    return [LifecycleSpec(name, v.url, v.block, [(t.after.days, t.storage_class) for t in v.lifecycle])
            for name, v in policy.vaults.items() if v.lifecycle]


def vault_param(spec: VaultSpec) -> Any:
    """A vault as a flow parameter: its URL, or a reference Prefect resolves to the saved block."""
    if spec.url is not None:
        return spec.url
    return {"$ref": {"block_document_slug": f"seawall-vault/{spec.block}"}}


def source_param(ds: DatasetSpec) -> Any:
    """The backup source parameter: a block reference, or `env:NAME` (the DSN is read on the worker)."""
    if ds.mariadb is not None:
        return _block_or_env("seawall-mariadb-source", ds.mariadb.block, ds.mariadb.dsn_env)
    if ds.redis is not None:
        return _block_or_env("seawall-redis-source", ds.redis.block, ds.redis.url_env)
    pg = ds.postgres
    if pg is None:
        return ds.files.path if ds.files else None
    return _block_or_env("seawall-postgres-source", pg.block, pg.dsn_env)


def _block_or_env(block_type: str, block: str | None, env: str | None) -> Any:
    if block:
        return {"$ref": {"block_document_slug": f"{block_type}/{block}"}}
    return f"env:{env}"


def event_trigger(event: str, dataset: str, name: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A reactive deployment trigger on a seawall event for one dataset (prefect.yaml form)."""
    return {"type": "event", "name": name, "enabled": True, "expect": [event],
            "match": {"prefect.resource.id": dataset_resource_id(dataset)}, "posture": "Reactive",
            "threshold": 1, "within": 0, "parameters": parameters or {}}


def run_tags(dataset: str, stage: str, vault: str) -> list[str]:
    """A deployment's tags (its runs carry them): the failure alert reads dataset, stage and vault from them."""
    return [TAG, f"dataset:{dataset}", f"stage:{stage}", f"vault:{vault}"]


def dataset_deployments(name: str, ds: DatasetSpec, policy: Policy) -> list[DeploymentSpec]:
    """nightly-, copy-, verify- and retention- deployments for one dataset."""
    vault = vault_param(policy.vaults[ds.vault])
    specs = [_backup(name, ds, vault)]
    if ds.mariadb is not None and ds.mariadb.binlog_schedule is not None:
        specs.append(DeploymentSpec(
            name=f"binlogs-{name}", entrypoint=f"{ENTRY}:archive_binlogs", concurrency_limit=1,
            description=f"Archive {name}'s binary logs (point-in-time restores).",
            parameters={"source": source_param(ds), "vault": vault, "dataset": name},
            cron=ds.mariadb.binlog_schedule.cron, timezone=ds.mariadb.binlog_schedule.timezone,
            tags=run_tags(name, "backup", ds.vault)))
    last_event = BACKUP
    verify_vault = vault
    if ds.copy_to:
        dest = vault_param(policy.vaults[ds.copy_to])
        specs.append(DeploymentSpec(
            name=f"copy-{name}", entrypoint=f"{ENTRY}:copy_to_dr", description=f"Copy {name} to {ds.copy_to}.",
            parameters={"source_vault": vault, "dest_vault": dest, "datasets": [name], "backups": "latest",
                        "init_dest": True},
            triggers=[event_trigger(BACKUP, name, f"copy-{name}-after-backup")],
            tags=run_tags(name, "copy", ds.copy_to)))
        last_event, verify_vault = COPY, dest
    if ds.verify:
        specs.append(DeploymentSpec(
            name=f"verify-{name}", entrypoint=f"{ENTRY}:verify_in_dr",
            description=f"Restore {name} from {ds.copy_to or ds.vault} into a scratch target and check it.",
            parameters={"vault": verify_vault, "dataset": name, "backup": "latest", **objectives(ds)},
            triggers=[event_trigger(last_event, name, f"verify-{name}-after-{last_event.split('.')[1]}")],
            tags=run_tags(name, "verification", ds.copy_to or ds.vault)))
        last_event = VERIFICATION
    if ds.retention is not None:
        rules = ds.retention if isinstance(ds.retention, dict) else ds.retention.model_dump(mode="json",
                                                                                               exclude_none=True)
        specs.append(DeploymentSpec(
            name=f"retention-{name}", entrypoint=f"{ENTRY}:retention",
            description=f"Apply {name}'s retention policy in {ds.vault}.",
            parameters={"vault": vault, "policy": rules, "dry_run": False, "datasets": [name]},
            triggers=[event_trigger(last_event, name, f"retention-{name}-after-{last_event.split('.')[1]}")],
            tags=run_tags(name, "retention", ds.vault)))
    return specs


def _backup(name: str, ds: DatasetSpec, vault: Any) -> DeploymentSpec:
    if ds.postgres is not None:
        entry = f"{ENTRY}:nightly_backup_postgres"
        params = {"source": source_param(ds), "vault": vault, "mode": ds.postgres.mode, "dataset": name,
                  "jobs": ds.postgres.jobs}
        if ds.postgres.mode == "physical":
            params["method"] = ds.postgres.method
    elif ds.mariadb is not None:
        entry = f"{ENTRY}:nightly_backup_mariadb"
        params = {"source": source_param(ds), "vault": vault, "mode": ds.mariadb.mode, "dataset": name}
    elif ds.redis is not None:
        entry = f"{ENTRY}:nightly_backup_redis"
        params = {"source": source_param(ds), "vault": vault, "dataset": name}
    elif ds.files.path.startswith("ssh://"):  # keys and known_hosts: the worker's ~/.ssh (as the CLI)
        entry = f"{ENTRY}:nightly_backup_remote_files"
        params = {"host": ds.files.path, "vault": vault, "dataset": name}
    else:
        entry = f"{ENTRY}:nightly_backup_files"
        params = {"path": ds.files.path, "vault": vault, "dataset": name}
    return DeploymentSpec(name=f"nightly-{name}", entrypoint=entry, parameters=params,
                          description=f"Back up {name} (RPO {ds.rpo}, RTO {ds.rto}).",
                          cron=ds.schedule.cron, timezone=ds.schedule.timezone, tags=run_tags(name, "backup", ds.vault))


def objectives(ds: DatasetSpec) -> dict[str, float]:
    """The dataset's RTO and RPO as flow parameters (seconds): what drills and verifications are judged by."""
    return {"rto_seconds": ds.rto.total_seconds(), "rpo_seconds": ds.rpo.total_seconds()}


def failover_objectives(policy: Policy) -> dict[str, float]:
    """The failover drill's objectives: its dataset's, else the strictest of the PostgreSQL datasets'."""
    failover = policy.drills.failover
    if failover is not None and failover.dataset:
        return objectives(policy.datasets[failover.dataset])
    pool = [ds for ds in policy.datasets.values() if ds.postgres] or list(policy.datasets.values())
    return {"rto_seconds": min(ds.rto for ds in pool).total_seconds(),
            "rpo_seconds": min(ds.rpo for ds in pool).total_seconds()}


def drill_deployments(policy: Policy) -> list[DeploymentSpec]:
    """The weekly restore drill and the on-demand failover drill (when their flows exist)."""
    from deployments import entrypoints

    out = []
    drill = policy.drills.restore
    if drill is not None and entrypoints.restore_drill is not None:
        for name in drill.datasets or list(policy.datasets):
            ds = policy.datasets[name]
            out.append(DeploymentSpec(
                name=f"restore-drill-{name}", entrypoint=f"{ENTRY}:restore_drill",
                description=f"Weekly restore drill of {name} in the DR region.",
                parameters={"vault": vault_param(policy.vaults[ds.copy_to or ds.vault]), "dataset": name,
                            "rto_seconds": ds.rto.total_seconds()},
                cron=drill.schedule.cron, timezone=drill.schedule.timezone,
                tags=run_tags(name, "drill", ds.copy_to or ds.vault)))
    failover = policy.drills.failover
    if failover is not None and entrypoints.failover_drill is not None:
        ref = "seawall-postgres-node/{}"
        out.append(DeploymentSpec(
            name="failover-drill", entrypoint=f"{ENTRY}:failover_drill", concurrency_limit=1,
            description="Failover drill: fence, promote, switch, check, measure, fail back. Run it from the UI.",
            parameters={"primary": {"$ref": {"block_document_slug": ref.format(failover.primary)}},
                        "standby": {"$ref": {"block_document_slug": ref.format(failover.standby)}},
                        "objectives": failover_objectives(policy), "fail_back": True} | _drill_dataset(policy),
            tags=[TAG, "stage:drill"] + ([f"dataset:{failover.dataset}"] if failover.dataset else [])))
    return out


def _drill_dataset(policy: Policy) -> dict[str, Any]:
    """With a dataset named, the drill's preflight checks its newest verified backup in the dataset's vault."""
    failover = policy.drills.failover
    if failover is None or not failover.dataset:
        return {}
    ds = policy.datasets[failover.dataset]
    return {"vault": vault_param(policy.vaults[ds.vault]), "dataset": failover.dataset}


def webhook_blocks(policy: Policy, env: dict[str, str]) -> dict[str, str]:
    """Notification block name → URL for each webhook in the policy (URLs from env vars)."""
    out = {}
    for i, hook in enumerate(policy.alerts.webhooks):
        url = hook.url or env.get(str(hook.url_env), "")
        if hook.url_env:  # a URL kept in the environment is a secret (Slack-style tokens in the path)
            add_secret(url)
        out[f"seawall-alert-{i}"] = url
    return out


def report_deployments(policy: Policy, policy_file: str | None) -> list[DeploymentSpec]:
    """The scheduled readiness report (`readiness.report` in the policy), reading the policy file on the worker."""
    spec = policy.readiness.report
    if spec is None or policy_file is None:
        return []
    return [DeploymentSpec(
        name="readiness-report", entrypoint=f"{ENTRY}:readiness_report",
        description="DR readiness report: controls, ages, storage and cost; published as an artifact.",
        parameters={"policy_file": policy_file, "strict": spec.strict},
        cron=spec.schedule.cron, timezone=spec.schedule.timezone)]


def build(policy: Policy, env: dict[str, str] | None = None, policy_file: str | None = None) -> Desired:
    """The desired state for `policy` (`env` resolves webhook URL variables; default os.environ).

    `policy_file` is the path the readiness-report deployment reads on the worker (none: not deployed).
    """
    import os

    env = dict(os.environ) if env is None else env
    webhooks = webhook_blocks(policy, env)
    notify = [f"custom-webhook/{n}" for n in webhooks] + list(policy.alerts.blocks)
    specs = [s for name, ds in policy.datasets.items() for s in dataset_deployments(name, ds, policy)]
    specs += drill_deployments(policy) + report_deployments(policy, policy_file)
    return Desired(work_pool=policy.work_pool, deployments=specs,
                   concurrency_limits={f"seawall-vault-{v}": 1 for v in policy.vaults},
                   webhooks=webhooks, automations=automations(policy, notify), lifecycles=lifecycles(policy))



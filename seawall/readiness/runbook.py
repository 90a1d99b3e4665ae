"""A recovery runbook for one dataset, rendered from the policy and the latest evidence.

Written for a person at 3 a.m.: who to call, how to decide which vault and which backup, the exact
commands with this dataset's vaults and backup ids, how long each step took when it was last
measured, how to fail over, and what to do after. Pure: `render(...)` only formats its inputs.
"""

from __future__ import annotations

import shlex
from datetime import datetime

from seawall.ledger import VerificationReport
from seawall.manifest import Manifest
from seawall.policy import DatasetSpec, Policy
from seawall.readiness.anomaly import last_clean, suspicious_ids
from seawall.readiness.evidence import VaultEvidence
from seawall.units import human_seconds


def _q(text: str) -> str:
    return shlex.quote(text)


def _latest_verified(dataset: str, vaults: list[VaultEvidence]) -> VerificationReport | None:
    verified = sorted((r for v in vaults for r in v.reports if r.dataset == dataset and r.status == "VERIFIED"),
                      key=lambda r: r.finished_at)
    return verified[-1] if verified else None


def _contacts(policy: Policy) -> list[str]:
    r = policy.readiness
    lines = ["## 1. Call for help first", ""]
    if not r.contacts:
        lines.append("No contacts in the policy file: add them under `readiness.contacts`.")
    lines += [f"- **{c.name}**" + (f", {c.role}" if c.role else "") + (f": {c.reach}" if c.reach else "")
              for c in r.contacts]
    if r.escalation:
        lines += ["", "Escalation:", *(f"{i}. {step}" for i, step in enumerate(r.escalation, 1))]
    return lines


def _restore_command(m: Manifest, url: str, spec: DatasetSpec, dataset: str) -> list[str]:
    base = f"seawall restore {m.backup_id} --vault {_q(url)}"
    if m.kind == "files":
        target = f"/srv/restore/{dataset}-{m.backup_id[:8]}"
        return [f"{base} --to {_q(target)}",
                f"(restores into a new folder; move it into place, or point the service at {target})"]
    if m.kind == "postgres-logical":
        jobs = spec.postgres.jobs if spec.postgres else 2
        return [f'{base} --to-dsn "host=NEW-HOST dbname=DATABASE user=postgres" -j {jobs}',
                "(a new or empty database; rows and checksums are checked against the backup)"]
    return [f"{base} --to-datadir /var/lib/postgresql/restore-{dataset} --port 5433 "
            "[--target-time 'YYYY-MM-DDTHH:MM:SSZ']",
            "(a new data directory; without --target-time it replays all archived WAL)"]


def _durations(report: VerificationReport | None) -> list[str]:
    if report is None:
        return ["No measured restore yet: durations unknown (run `seawall verify-restore`)."]
    phases = ", ".join(f"{name} {human_seconds(s)}" for name, s in report.phases.items())
    return [f"Measured on {report.finished_at:%Y-%m-%d %H:%M} UTC (verification {report.verification_id}): "
            f"restore {human_seconds(report.rto_restore_s)}, restored and verified "
            f"{human_seconds(report.rto_verified_s)}" + (f"; phases: {phases}" if phases else "") + "."]


def render(policy: Policy, dataset: str, evidence: dict[str, VaultEvidence], now: datetime,
           policy_file: str = "seawall.yaml") -> str:
    """The runbook for `dataset` (a dataset of `policy`) as Markdown."""
    spec = policy.datasets[dataset]
    primary, dr = evidence[spec.vault], evidence.get(spec.copy_to) if spec.copy_to else None
    vaults = [v for v in (primary, dr) if v is not None]
    verified = _latest_verified(dataset, vaults)
    lines = [f"# Recovery runbook: {dataset}" + (f" ({spec.tier})" if spec.tier else ""), "",
             f"Generated {now:%Y-%m-%d %H:%M} UTC from `{policy_file}` and the evidence in "
             f"{', '.join(v.name for v in vaults)}. Objectives: RPO {human_seconds(spec.rpo.total_seconds())}, "
             f"RTO {human_seconds(spec.rto.total_seconds())}.", ""]
    lines += _contacts(policy)
    lines += ["", "## 2. Assess", "",
              f"1. Readiness now: `seawall report --policy {_q(policy_file)} --dataset {dataset}`.",
              "2. Suspect ransomware or corruption? Restore the last clean backup, not the latest: "
              f"`seawall last-clean {dataset} --vault {_q(primary.url)}`."]
    lines += _suspicion(dataset, vaults)
    lines += _vault_choice(policy, spec, primary, dr)
    lines += _backup_choice(dataset, vaults, verified)
    source = _source_vault(dataset, vaults, verified)
    lines += ["", "## 5. Restore", ""]
    if source is None:
        lines.append(f"No DONE backup of {dataset} in any vault: nothing to restore. Escalate now.")
    else:
        vault, manifest = source
        command, note = _restore_command(manifest, vault.url, spec, dataset)
        lines += [f"From {vault.name} (passphrase in `${policy.vaults[vault.name].passphrase_env}`):", "",
                  "```sh", command, "```", note, "", *_durations(verified)]
    lines += _failover(policy, spec, dataset, primary)
    lines += ["", "## 7. After recovery", "",
              f"1. Back up the recovered {dataset} at once (`seawall backup ...` or run the `nightly-{dataset}` "
              "deployment).",
              f"2. `seawall report --policy {_q(policy_file)} --dataset {dataset}` until every control passes again.",
              "3. Write down what happened and how long each step took: it is the next drill's baseline."]
    return "\n".join(lines) + "\n"


def _suspicion(dataset: str, vaults: list[VaultEvidence]) -> list[str]:
    out = []
    for v in vaults:
        mine = [m for m in v.backups if m.dataset == dataset]
        flagged = suspicious_ids(mine, {k: r for k, r in v.anomalies.items() if any(m.backup_id == k for m in mine)})
        if flagged:
            clean, suspects = last_clean(mine, flagged)
            out.append(f"   **{v.name} holds SUSPICIOUS backups**: {', '.join(m.backup_id for m in suspects)} "
                       f"({flagged[suspects[-1].backup_id]}). Last clean: "
                       f"{clean.backup_id if clean else 'none'}.")
    return out


def _vault_choice(policy: Policy, spec: DatasetSpec, primary: VaultEvidence, dr: VaultEvidence | None) -> list[str]:
    lines = ["", "## 3. Choose the vault", "",
             f"- Primary region up: **{primary.name}** `{primary.url}` (region {primary.region or '?'}), "
             f"passphrase in `${policy.vaults[primary.name].passphrase_env}`."]
    if dr is None:
        lines.append("- No DR vault configured (`copy_to`): if the primary region is lost, there is no copy.")
    else:
        lines.append(f"- Primary region lost: **{dr.name}** `{dr.url}` (region {dr.region or '?'}), passphrase in "
                     f"`${policy.vaults[dr.name].passphrase_env}`; it restores on its own (key and WAL included).")
    for v in (primary, dr):
        if v is not None and v.error:
            lines.append(f"- Note: {v.name} could not be read when this runbook was made: {v.error}")
    return lines


def _backup_choice(dataset: str, vaults: list[VaultEvidence], verified: VerificationReport | None) -> list[str]:
    lines = ["", "## 4. Choose the backup", ""]
    if verified is not None:
        lines.append(f"- Latest **verified** backup: `{verified.backup_id}` (restored and checked "
                     f"{verified.finished_at:%Y-%m-%d %H:%M} UTC from {verified.vault}). Prefer it.")
    else:
        lines.append("- No verified backup yet: the restore below is the first test of this backup.")
    for v in vaults:
        done = v.done(dataset)
        if done:
            lines.append(f"- Newest backup in {v.name}: `{done[-1].backup_id}` ({done[-1].kind}).")
    lines.append("- List them all: `seawall list --vault URL --dataset " + dataset + "`.")
    return lines


def _source_vault(dataset: str, vaults: list[VaultEvidence],
                  verified: VerificationReport | None) -> tuple[VaultEvidence, Manifest] | None:
    """The vault and backup the restore command uses: the verified one where held, else the newest."""
    for v in vaults:
        for m in v.done(dataset):
            if verified is not None and m.backup_id == verified.backup_id and not v.error:
                return v, m
    for v in vaults:
        if v.done(dataset):
            return v, v.done(dataset)[-1]
    return None


def _failover(policy: Policy, spec: DatasetSpec, dataset: str, primary: VaultEvidence) -> list[str]:
    lines = ["", "## 6. Fail over and switch traffic", ""]
    failover = policy.drills.failover
    if spec.postgres is not None and failover is not None:
        lines += [f"A standby exists: promote it instead of restoring when it is healthy (node {failover.standby}, "
                  f"primary {failover.primary}).",
                  f"1. Fence {failover.primary} (stop it; make sure it cannot come back as a primary).",
                  f"2. Promote {failover.standby}: `pg_ctl promote -D DATADIR` on it (the failover drill "
                  "rehearses exactly these steps).",
                  "3. Switch traffic: " + (f"`{failover.switch_command}`" if failover.switch_command else
                                           "move the service address/DNS to the promoted node."),
                  "4. Check: run the smoke queries and `seawall verify-restore` against a fresh backup."]
    else:
        lines.append("No standby in the policy: recovery is the restore above; then point clients at the "
                     "restored copy (DNS, mount, connection string).")
    return lines

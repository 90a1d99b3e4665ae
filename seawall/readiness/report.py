"""The readiness report: per dataset, objectives beside measurements, ages, storage, cost and controls.

`build_report(policy, evidence, now)` is pure; `to_markdown` (the Prefect artifact, the terminal)
and `to_html` render it; `ReadinessReport.model_dump(mode="json")` is the `--json` form.
"""

from __future__ import annotations

import html
from datetime import datetime

from pydantic import BaseModel, Field

from seawall.manifest import BackupStatus
from seawall.policy import Policy
from seawall.readiness.anomaly import suspicious_ids
from seawall.readiness.controls import Context, ControlResult, evaluate
from seawall.readiness.cost import CostLine, estimate
from seawall.readiness.evidence import VaultEvidence
from seawall.units import human_bytes, human_seconds

_MARK = {"PASS": "✅ PASS", "FAIL": "❌ FAIL", "UNKNOWN": "❔ UNKNOWN"}


class VaultSummary(BaseModel):
    name: str
    url: str
    role: str
    region: str | None
    media: str
    error: str | None = None
    objects: int = 0
    storage: dict[str, int] = Field(default_factory=dict)
    storage_source: str = "age"


class DatasetReport(BaseModel):
    dataset: str
    tier: str | None = None
    source: str
    rpo_s: float
    rto_s: float
    measured_rpo_s: float | None = None
    measured_rto_s: float | None = None
    last_backup_storage_class: str | None = None
    retrieval_s: float | None = Field(None, description="Retrieval the newest backup needs first (archive tiers).")
    implied_rto_s: float | None = Field(None, description="Measured RTO plus that retrieval.")
    last_backup_id: str | None = None
    last_backup_age_s: float | None = None
    last_copy_age_s: float | None = None
    last_verified_restore_age_s: float | None = None
    success_rate: float | None = Field(None, description="DONE / (DONE + FAILED) over the success window.")
    runs_in_window: int = 0
    last_drill: dict | None = None
    storage: dict[str, dict[str, int]] = Field(default_factory=dict, description="vault → tier → bytes.")
    cost: list[CostLine] = Field(default_factory=list)
    cost_total: float = 0.0
    currency: str = "USD"
    suspicious: dict[str, str] = Field(default_factory=dict)
    controls: list[ControlResult] = Field(default_factory=list)


class ReadinessReport(BaseModel):
    generated_at: datetime
    vaults: list[VaultSummary]
    datasets: list[DatasetReport]
    counts: dict[str, int] = Field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.counts.get("FAIL", 0) > 0

    @property
    def unknown(self) -> bool:
        return self.counts.get("UNKNOWN", 0) > 0


def _age(now: datetime, when: datetime | None) -> float | None:
    return None if when is None else round((now - when).total_seconds(), 1)


def _dataset(name: str, policy: Policy, evidence: dict[str, VaultEvidence], now: datetime) -> DatasetReport:
    spec, settings = policy.datasets[name], policy.readiness
    primary, dr = evidence[spec.vault], evidence[spec.copy_to] if spec.copy_to else None
    ctx = Context(name, spec, settings, primary, dr, now)
    row = DatasetReport(dataset=name, tier=spec.tier, source="postgres" if spec.postgres else "files",
                        rpo_s=spec.rpo.total_seconds(), rto_s=spec.rto.total_seconds(), controls=evaluate(ctx),
                        currency=settings.prices.currency)
    _ages(row, ctx)
    _measurements(row, ctx)
    _money_and_suspects(row, ctx)
    return row


def _ages(row: DatasetReport, ctx: Context) -> None:
    """Newest backup, newest copy (the age of its data), and the success rate over the window."""
    done = ctx.primary.done(ctx.dataset)
    if done:
        row.last_backup_id = done[-1].backup_id
        row.last_backup_age_s = _age(ctx.now, done[-1].finished_at or done[-1].started_at)
    if ctx.dr is not None and ctx.dr.done(ctx.dataset):
        row.last_copy_age_s = _age(ctx.now, ctx.dr.done(ctx.dataset)[-1].finished_at)
    since = ctx.now - ctx.settings.success_window
    runs = [m for m in ctx.primary.backups if m.dataset == ctx.dataset and m.started_at >= since
            and m.status in (BackupStatus.DONE, BackupStatus.FAILED)]
    row.runs_in_window = len(runs)
    row.success_rate = sum(m.status == BackupStatus.DONE for m in runs) / len(runs) if runs else None


def _measurements(row: DatasetReport, ctx: Context) -> None:
    """Newest verified restore, measured RTO and RPO, and the newest drill."""
    reports = sorted((r for v in ctx.vaults for r in v.reports if r.dataset == ctx.dataset),
                     key=lambda r: r.finished_at)
    verified = [r for r in reports if r.status == "VERIFIED"]
    row.last_verified_restore_age_s = _age(ctx.now, verified[-1].finished_at) if verified else None
    row.measured_rto_s = next((r.rto_verified_s for r in reversed(reports) if r.rto_verified_s is not None), None)
    row.measured_rpo_s = next((r.rpo_s for r in reversed(reports) if r.rpo_s is not None), None)
    _restore_tier(row, ctx)
    drills = sorted((d for v in ctx.vaults for d in v.drills if d.kind == "failover" or d.primary == ctx.dataset),
                    key=lambda d: d.finished_at)
    if drills:
        d = drills[-1]
        row.last_drill = {"drill_id": d.drill_id, "kind": d.kind, "status": d.status,
                          "finished_at": d.finished_at.isoformat(), "age_s": _age(ctx.now, d.finished_at)}


def _restore_tier(row: DatasetReport, ctx: Context) -> None:
    """The newest backup's storage tier and the RTO it implies (measured RTO + the tier's retrieval)."""
    tier = ctx.primary.restore_tiers.get(ctx.dataset)
    if not tier:
        return
    row.last_backup_storage_class = tier["storage_class"]
    row.retrieval_s = (tier["retrieval_s"] if tier["archived"] else 0.0)
    if row.measured_rto_s is not None and row.retrieval_s is not None:
        row.implied_rto_s = row.measured_rto_s + row.retrieval_s


def _rto_cell(r: DatasetReport) -> str:
    cell = f"{_s(r.rto_s)} / {_s(r.measured_rto_s)}"
    if r.retrieval_s:
        cell += f" ({r.last_backup_storage_class}: {_s(r.implied_rto_s)} with a {_s(r.retrieval_s)} retrieval)"
    return cell


def _money_and_suspects(row: DatasetReport, ctx: Context) -> None:
    """Storage and cost per readable vault, and the SUSPICIOUS backups found in each."""
    for v in ctx.vaults:
        if v.error:
            continue
        line = estimate(ctx.dataset, v, ctx.settings.prices_for(v.name), ctx.settings, ctx.now)
        row.cost.append(line)
        row.storage[v.name] = line.stored_by_tier
        mine = [m for m in v.backups if m.dataset == ctx.dataset]
        ids = {m.backup_id for m in mine}
        row.suspicious.update(suspicious_ids(mine, {k: r for k, r in v.anomalies.items() if k in ids}))
    row.cost_total = round(sum(c.total for c in row.cost), 4)


def build_report(policy: Policy, evidence: dict[str, VaultEvidence], now: datetime,
                 datasets: list[str] | None = None) -> ReadinessReport:
    """The report for `datasets` (default: every dataset of the policy)."""
    names = datasets or sorted(policy.datasets)
    rows = [_dataset(n, policy, evidence, now) for n in names]
    counts = {s: sum(c.status == s for r in rows for c in r.controls) for s in ("PASS", "FAIL", "UNKNOWN")}
    vaults = [VaultSummary(name=v.name, url=v.url, role=v.role, region=v.region, media=v.media, error=v.error,
                           objects=v.objects, storage=v.storage, storage_source=v.storage_source)
              for v in evidence.values()]
    return ReadinessReport(generated_at=now, vaults=vaults, datasets=rows, counts=counts)


def _s(seconds: float | None) -> str:
    return human_seconds(seconds)


def _ago(seconds: float | None) -> str:
    return "-" if seconds is None else f"{human_seconds(seconds)} ago"


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def to_markdown(report: ReadinessReport) -> str:
    c = report.counts
    lines = [f"# DR readiness report, {report.generated_at:%Y-%m-%d %H:%M} UTC", "",
             f"Controls: {c.get('PASS', 0)} PASS, {c.get('FAIL', 0)} FAIL, {c.get('UNKNOWN', 0)} UNKNOWN.", "",
             "| dataset | tier | RPO target / measured | RTO target / measured | last backup | last copy "
             "| last verified restore | success 30d | last drill | est. cost / month |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.datasets:
        rate = "-" if r.success_rate is None else f"{100 * r.success_rate:.0f}% of {r.runs_in_window}"
        drill = f"{r.last_drill['kind']} {r.last_drill['status']}, {_ago(r.last_drill['age_s'])}" \
            if r.last_drill else "-"
        lines.append(f"| {r.dataset} | {r.tier or '-'} | {_s(r.rpo_s)} / {_s(r.measured_rpo_s)} | {_rto_cell(r)} | "
                     f"{_ago(r.last_backup_age_s)} | {_ago(r.last_copy_age_s)} | "
                     f"{_ago(r.last_verified_restore_age_s)} | {rate} | {drill} | "
                     f"{_money(r.cost_total, r.currency)} |")
    for r in report.datasets:
        lines += ["", f"## {r.dataset}", "", "| control | status | evidence |", "|---|---|---|"]
        for ctl in r.controls:
            facts = "; ".join([ctl.summary, *ctl.evidence]).replace("|", "\\|")
            lines.append(f"| {ctl.control} | {_MARK[ctl.status]} | {facts} |")
        lines += ["", "| vault | hot | cool | archive | storage | requests | restores | total |",
                  "|---|---|---|---|---|---|---|---|"]
        for cl in r.cost:
            t = cl.stored_by_tier
            lines.append(f"| {cl.vault} | {human_bytes(t.get('hot', 0))} | {human_bytes(t.get('cool', 0))} | "
                         f"{human_bytes(t.get('archive', 0))} | {_money(cl.storage, cl.currency)} | "
                         f"{_money(cl.requests, cl.currency)} | {_money(cl.egress + cl.retrieval, cl.currency)} | "
                         f"{_money(cl.total, cl.currency)} |")
        if r.cost:
            lines.append(f"\nPrices: {r.cost[0].basis[-1]}.")
        for backup_id, reason in sorted(r.suspicious.items()):
            lines.append(f"\n**SUSPICIOUS** backup {backup_id}: {reason}")
    broken = [v for v in report.vaults if v.error]
    lines += ["", *(f"Vault {v.name} could not be read: {v.error}" for v in broken)]
    return "\n".join(lines).rstrip() + "\n"


def to_html(report: ReadinessReport) -> str:
    """A standalone HTML page of the same content (tables, no scripts)."""
    e = html.escape
    rows = []
    for r in report.datasets:
        rows.append(f"<h2>{e(r.dataset)}</h2><table><tr><th>control</th><th>status</th><th>evidence</th></tr>")
        for ctl in r.controls:
            facts = e("; ".join([ctl.summary, *ctl.evidence]))
            rows.append(f'<tr class="{ctl.status.lower()}"><td>{e(ctl.control)}</td><td>{ctl.status}</td>'
                        f"<td>{facts}</td></tr>")
        rows.append("</table>")
        rows.append(f"<p>Estimated cost: {e(_money(r.cost_total, r.currency))} a month; last backup "
                    f"{e(_s(r.last_backup_age_s))} ago; RTO {e(_rto_cell(r))} (target / measured); "
                    f"RPO {e(_s(r.rpo_s))} target, {e(_s(r.measured_rpo_s))} measured.</p>")
    c = report.counts
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>seawall readiness</title><style>"
            "td,th{border:1px solid #ccc;padding:4px}.pass td{background:#e8f5e9}.fail td{background:#ffebee}"
            ".unknown td{background:#fff8e1}table{border-collapse:collapse}</style></head><body>"
            f"<h1>DR readiness report, {report.generated_at:%Y-%m-%d %H:%M} UTC</h1>"
            f"<p>{c.get('PASS', 0)} PASS, {c.get('FAIL', 0)} FAIL, {c.get('UNKNOWN', 0)} UNKNOWN</p>"
            + "".join(rows) + "</body></html>\n")

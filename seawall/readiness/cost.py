"""Monthly cost estimate per dataset and vault, from measured usage and a price table.

    storage    bytes the dataset's backups added to the vault (deduplicated: a chunk is charged to the
               backup that stored it first), split over tiers like the vault's own bytes, x GiB-month price
    requests   PUTs: new chunks + 2 manifest writes per backup of the last `window`; GETs: one per chunk
               of each restore
    restores   restores a month (the policy's `restores_per_month`, else the restore verifications and
               drills of the last `window` in this vault) x the newest backup's size: egress, plus
               retrieval fees for cool/archive tiers

Sizes are the plain bytes of a restore (an upper bound: chunks travel compressed). GiB = 2^30 bytes,
as AWS bills. Pure: every input is a record.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from seawall.readiness.evidence import VaultEvidence
from seawall.readiness.settings import TIERS, PriceTable, ReadinessSpec

GIB = float(1 << 30)
MONTH = timedelta(days=30)


class CostLine(BaseModel):
    dataset: str
    vault: str
    currency: str
    prices_as_of: str
    stored_bytes: int
    stored_by_tier: dict[str, int] = Field(default_factory=dict)
    storage: float = 0.0
    puts: float = 0.0
    gets: float = 0.0
    requests: float = 0.0
    restores: float = 0.0
    restore_bytes: float = 0.0
    egress: float = 0.0
    retrieval: float = 0.0
    total: float = 0.0
    basis: list[str] = Field(default_factory=list)


def _shares(vault: VaultEvidence) -> dict[str, float]:
    total = sum(vault.storage.values())
    if not total:
        return {"hot": 1.0, "cool": 0.0, "archive": 0.0}
    return {tier: vault.storage.get(tier, 0) / total for tier in TIERS}


def _restores(dataset: str, vault: VaultEvidence, settings: ReadinessSpec, since: datetime, scale: float) -> float:
    if settings.restores_per_month is not None:
        return settings.restores_per_month
    seen = sum(1 for r in vault.reports if r.dataset == dataset and r.finished_at >= since)
    seen += sum(1 for d in vault.drills if d.kind == "restore" and d.primary == dataset and d.finished_at >= since)
    return seen * scale


def estimate(dataset: str, vault: VaultEvidence, prices: PriceTable, settings: ReadinessSpec, now: datetime,
             window: timedelta = MONTH) -> CostLine:
    """The estimated monthly cost of `dataset` in `vault` (0 when the vault holds none of it)."""
    mine = [m for m in vault.backups if m.dataset == dataset]
    scale = MONTH / window
    since = now - window
    stored = sum(m.stats.stored_bytes_new for m in mine)
    shares = _shares(vault)
    by_tier = {tier: round(stored * share) for tier, share in shares.items()}
    storage = sum(by_tier[t] / GIB * prices.storage_gb_month.of(t) for t in TIERS)
    puts = sum(m.stats.chunks_new + 2 for m in mine if m.started_at >= since) * scale
    done = vault.done(dataset)
    newest = done[-1] if done else None
    restores = _restores(dataset, vault, settings, since, scale) if newest else 0.0
    restore_bytes = restores * (newest.stats.bytes_total if newest else 0)
    gets = restores * (newest.stats.chunks_total if newest else 0)
    requests = puts / 1000 * prices.put_per_1000 + gets / 1000 * prices.get_per_1000
    egress = restore_bytes / GIB * prices.egress_gb
    retrieval = sum(restore_bytes * shares[t] / GIB * prices.retrieval_gb.of(t) for t in TIERS)
    line = CostLine(dataset=dataset, vault=vault.name, currency=prices.currency, prices_as_of=prices.as_of,
                    stored_bytes=stored, stored_by_tier=by_tier, storage=storage, puts=puts, gets=gets,
                    requests=requests, restores=restores, restore_bytes=restore_bytes, egress=egress,
                    retrieval=retrieval, total=storage + requests + egress + retrieval)
    line.basis = [f"{len(mine)} backups stored, tiers by {vault.storage_source}",
                  f"{restores:g} restore(s) a month of {restore_bytes / max(restores, 1) / GIB:.3f} GiB",
                  f"{prices.source}, as of {prices.as_of}"]
    return line

"""Evidence: what each vault holds, read into plain records the pure modules judge.

A `VaultEvidence` carries a vault's manifests, verification reports, drill reports, stored anomaly
verdicts, a check of every key wrapper (any kind: `seawall.wrappers.check_wrappers`), the Object
Lock state of each dataset's newest backup and the bytes stored per tier. A vault that cannot be
opened becomes evidence too (`error`): every control that needs it then says UNKNOWN with that
reason, never PASS.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, Field

from seawall.drill.state import DrillReport
from seawall.errors import IntegrityError, ObjectNotFound, SeawallError
from seawall.ledger import VerificationReport, list_reports
from seawall.manifest import BackupStatus, Manifest
from seawall.readiness.anomaly_records import ANOMALY_PREFIX as ANOMALY_PREFIX  # re-exported
from seawall.readiness.anomaly_records import anomaly_key as anomaly_key  # re-exported
from seawall.readiness.anomaly_records import read_anomalies
from seawall.readiness.anomaly_records import store_anomaly as store_anomaly  # re-exported
from seawall.readiness.settings import TIERS, StorageTiers
from seawall.vault import Vault

Status = Literal["PASS", "FAIL", "UNKNOWN"]
DRILL_PREFIX = "drills/"
# S3 storage classes by tier (https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-class-intro.html).
_CLASS_TIER = {"STANDARD": "hot", "REDUCED_REDUNDANCY": "hot", "INTELLIGENT_TIERING": "hot", "EXPRESS_ONEZONE": "hot",
               "STANDARD_IA": "cool", "ONEZONE_IA": "cool", "GLACIER_IR": "cool",
               "GLACIER": "archive", "DEEP_ARCHIVE": "archive"}


class WrapperCheck(BaseModel):
    id: str
    kind: str
    status: Status
    detail: str


class LockFact(BaseModel):
    """The Object Lock of one backup's manifest (supported False: the store cannot lock)."""

    backup_id: str
    supported: bool
    mode: str | None = None
    retain_until: datetime | None = None
    error: str | None = None


class VaultEvidence(BaseModel):
    """Everything one vault says, or why it could not be read."""

    name: str
    url: str
    role: str = "primary"
    region: str | None = None
    media: str = "disk"
    error: str | None = None
    backups: list[Manifest] = Field(default_factory=list)
    reports: list[VerificationReport] = Field(default_factory=list)
    drills: list[DrillReport] = Field(default_factory=list)
    anomalies: dict[str, str] = Field(default_factory=dict, description="backup id → stored SUSPICIOUS reason.")
    wrappers: list[WrapperCheck] = Field(default_factory=list)
    locks: dict[str, LockFact] = Field(default_factory=dict, description="dataset → its newest DONE backup's lock.")
    restore_tiers: dict[str, dict] = Field(default_factory=dict, description="dataset → its newest DONE backup's "
                                           "storage tier and retrieval time (seawall.retrieval.BackupTier).")
    storage: dict[str, int] = Field(default_factory=dict, description="tier → stored bytes.")
    storage_source: str = "age"
    objects: int = 0

    def done(self, dataset: str) -> list[Manifest]:
        return [m for m in self.backups if m.dataset == dataset and m.status == BackupStatus.DONE]


def vault_facts(url: str | None, region: str | None, media: str | None) -> tuple[str | None, str]:
    """(region, media) of a vault: explicit values first, else what its URL says."""
    scheme = urlsplit(url).scheme if url else ""
    if region is None and scheme == "s3":
        region = parse_qs(urlsplit(url).query).get("region", [None])[0]
    if region is None and scheme == "file":
        region = "local"
    return region, media or ("object-storage" if scheme == "s3" else "disk")


def unavailable(name: str, url: str, role: str, region: str | None, media: str, error: str) -> VaultEvidence:
    return VaultEvidence(name=name, url=url, role=role, region=region, media=media, error=error)


def gather(vault: Vault, *, name: str, role: str, region: str | None, media: str, passphrases: list[str],
           tiers: StorageTiers, now: datetime | None = None) -> VaultEvidence:
    """Read one opened vault into evidence (reads only)."""
    now = now or datetime.now(UTC)
    ev = VaultEvidence(name=name, url=vault.url, role=role, region=region, media=media)
    ev.backups = vault.list_backups()
    ev.reports = list_reports(vault)
    ev.drills = read_drills(vault)
    ev.anomalies = read_anomalies(vault)
    ev.wrappers = wrapper_checks(vault, passphrases)
    for dataset in sorted({m.dataset for m in ev.backups}):
        done = ev.done(dataset)
        if done:
            ev.locks[dataset] = lock_fact(vault, done[-1])
    ev.restore_tiers = restore_tiers(vault, ev)
    ev.storage, ev.storage_source, ev.objects = storage_by_tier(vault, tiers, now)
    return ev


def restore_tiers(vault: Vault, ev: VaultEvidence) -> dict[str, dict]:
    """Each dataset's newest DONE backup's storage tier (one listing); {} when the store cannot say."""
    from seawall.errors import SeawallError
    from seawall.retrieval import backup_tier, bulk_classes

    try:
        classes = bulk_classes(vault.store)
        return {ds: backup_tier(vault, ev.done(ds)[-1], classes).to_dict()
                for ds in sorted({m.dataset for m in ev.backups}) if ev.done(ds)}
    except SeawallError:
        return {}


def read_drills(vault: Vault) -> list[DrillReport]:
    """Every readable drill report in the vault (failover and restore drills), oldest first."""
    from seawall.crypto import ObjType

    out = []
    for info in vault.store.list(DRILL_PREFIX):
        if not info.key.endswith("/report"):
            continue
        try:
            out.append(DrillReport.model_validate_json(vault.get_record(info.key, ObjType.RECORD)))
        except (IntegrityError, ObjectNotFound, ValueError):
            continue
    return sorted(out, key=lambda r: r.started_at)


# ---- key wrappers ------------------------------------------------------------------------------

def wrapper_checks(vault: Vault, passphrases: list[str]) -> list[WrapperCheck]:
    """Every wrapper, whatever its kind, probed by `seawall.wrappers.check_wrappers`: usable → PASS,
    unusable (damaged, another master key, KMS key disabled or pending deletion) → FAIL, not testable
    with what the report holds (another operator's passphrase) → UNKNOWN."""
    from seawall.wrappers import check_wrappers

    out = []
    for check in check_wrappers(vault, passphrases[0] if passphrases else None):
        status: Status = {True: "PASS", False: "FAIL", None: "UNKNOWN"}[check.usable]
        where = f" (key {check.key_id} in {check.region})" if check.key_id else ""
        out.append(WrapperCheck(id=check.id, kind=check.kind, status=status, detail=check.detail + where))
    return out


# ---- locks and storage -------------------------------------------------------------------------

def lock_fact(vault: Vault, manifest: Manifest) -> LockFact:
    try:
        if not vault.store.has_object_lock():
            return LockFact(backup_id=manifest.backup_id, supported=False)
        mode, until = vault.store.retention(manifest.key)
    except SeawallError as exc:
        return LockFact(backup_id=manifest.backup_id, supported=True, error=exc.message)
    return LockFact(backup_id=manifest.backup_id, supported=True, mode=mode, retain_until=until)


def storage_by_tier(vault: Vault, tiers: StorageTiers, now: datetime) -> tuple[dict[str, int], str, int]:
    """Bytes per tier: the store's storage class when it reports one, else the object's age."""
    out = dict.fromkeys(TIERS, 0)
    sources, count = set(), 0
    for info in vault.store.list(""):
        count += 1
        if info.storage_class:
            out[_CLASS_TIER.get(info.storage_class.upper(), "hot")] += info.size
            sources.add("storage class")
            continue
        age = timedelta(seconds=max(0.0, now.timestamp() - info.mtime)) if info.mtime else timedelta(0)
        out[tiers.tier_for_age(age)] += info.size
        sources.add("age")
    return out, " + ".join(sorted(sources)) or "age", count

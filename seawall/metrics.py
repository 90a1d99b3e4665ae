"""Prometheus metrics for seawall, computed on each scrape from the vaults themselves.

Sources are the evidence kept in each vault: backup manifests (stage `backup`; in a DR vault they
are the copies, so its `backup` stage is the copy stage) and the verification ledger (stage
`verification`). Nothing is cached, so a scrape always reflects the vault.

    seawall_last_success_timestamp_seconds{vault,dataset,stage}   newest DONE backup / VERIFIED restore
    seawall_last_success_age_seconds{vault,dataset,stage}
    seawall_backup_size_bytes / seawall_backup_stored_new_bytes / seawall_backup_duration_seconds
    seawall_backups{vault,dataset,status}                         count per manifest status
    seawall_last_rto_seconds / seawall_last_rto_verified_seconds / seawall_last_rpo_seconds
    seawall_verification_ok{vault,dataset}                         1 VERIFIED, 0 FAILED (newest report)
    seawall_scrape_error{vault}                                    1 when the vault could not be read
    seawall_rpo_objective_seconds{dataset} / seawall_rto_objective_seconds{dataset}   from the policy

Each vault is scraped with its own credentials (`VaultSource`: a URL with its passphrase, or a
saved block), so a DR vault with its own passphrase is read, not reported as an error.

Example:
    ```python
    from seawall.metrics import render, url_source
    print(render([url_source("file:///srv/vault", "passphrase")]).decode())
    ```
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, start_http_server, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from seawall.errors import SeawallError

_LABELS = ["vault", "dataset"]


def _display(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(url)
    host = (p.hostname or "") + (f":{p.port}" if p.port else "")
    return urlunsplit((p.scheme, host, p.path, "", ""))  # no credentials, no query secrets


@dataclass(frozen=True)
class VaultSource:
    """One vault to scrape: the name its metrics carry and how to open it (with its own credentials)."""

    name: str
    open: Callable[[], object]


def url_source(url: str, passphrase: str | None) -> VaultSource:
    """A vault by URL, unlocked with `passphrase` (None: a KMS key wrapper)."""

    def open_() -> object:
        from seawall.stores import open_store
        from seawall.vault import Vault

        return Vault.open(open_store(url), passphrase)

    return VaultSource(_display(url), open_)


def as_sources(vaults: list, passphrase: str | None = None) -> list[VaultSource]:
    """VaultSources from VaultSources or URLs (URLs share `passphrase`)."""
    return [v if isinstance(v, VaultSource) else url_source(v, passphrase) for v in vaults]


Objectives = dict[str, tuple[float, float]]  # dataset → (RPO seconds, RTO seconds)


class VaultCollector(Collector):
    """Reads each vault's manifests and verification ledger on every `collect()`."""

    def __init__(self, vaults: list, passphrase: str | None = None, now=None, objectives: Objectives | None = None):
        self.sources, self.now, self.objectives = as_sources(vaults, passphrase), now, objectives or {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = (self.now or (lambda: datetime.now(UTC)))()
        fams = _families()
        for source in self.sources:
            try:
                self._one(source, now, fams)
                fams["scrape_error"].add_metric([source.name], 0)
            except (SeawallError, OSError):  # a vault that fails to open is a metric, not a crash
                fams["scrape_error"].add_metric([source.name], 1)
        for dataset, (rpo, rto) in sorted(self.objectives.items()):
            fams["rpo_objective"].add_metric([dataset], rpo)
            fams["rto_objective"].add_metric([dataset], rto)
        yield from fams.values()

    def _one(self, source: VaultSource, now: datetime, fams: dict[str, GaugeMetricFamily]) -> None:
        from seawall.ledger import list_reports
        from seawall.manifest import BackupStatus

        vault = source.open()
        name = source.name
        manifests = vault.list_backups()
        for (ds, status), n in sorted(Counter((m.dataset, str(m.status)) for m in manifests).items()):
            fams["backups"].add_metric([name, ds, status], n)
        latest = {}
        for m in manifests:
            if m.status == BackupStatus.DONE:
                latest[m.dataset] = m  # list_backups is oldest first
        for ds, m in latest.items():
            done_at = m.finished_at or m.started_at
            _success(fams, name, ds, "backup", done_at, now)
            fams["size"].add_metric([name, ds], m.stats.bytes_total)
            fams["stored_new"].add_metric([name, ds], m.stats.stored_bytes_new)
            if m.duration_s is not None:
                fams["duration"].add_metric([name, ds], m.duration_s)
        reports = {}
        for r in list_reports(vault):
            reports.setdefault(r.dataset, []).append(r)
        for ds, mine in reports.items():
            last = mine[-1]
            fams["verification_ok"].add_metric([name, ds], 1 if last.status == "VERIFIED" else 0)
            for key, attr in (("rto", "rto_restore_s"), ("rto_verified", "rto_verified_s"), ("rpo", "rpo_s")):
                if getattr(last, attr) is not None:
                    fams[key].add_metric([name, ds], getattr(last, attr))
            verified = [r for r in mine if r.status == "VERIFIED"]
            if verified:
                _success(fams, name, ds, "verification", verified[-1].finished_at, now)


def _success(fams, vault: str, dataset: str, stage: str, when: datetime, now: datetime) -> None:
    fams["last_success"].add_metric([vault, dataset, stage], when.timestamp())
    fams["age"].add_metric([vault, dataset, stage], max(0.0, (now - when).total_seconds()))


def _families() -> dict[str, GaugeMetricFamily]:
    g = GaugeMetricFamily
    staged = [*_LABELS, "stage"]
    return {
        "last_success": g("seawall_last_success_timestamp_seconds",
                          "Unix time of the newest success per dataset and stage.", labels=staged),
        "age": g("seawall_last_success_age_seconds", "Seconds since the newest success.", labels=staged),
        "size": g("seawall_backup_size_bytes", "Bytes read by the newest DONE backup.", labels=_LABELS),
        "stored_new": g("seawall_backup_stored_new_bytes", "Bytes the newest DONE backup added to the vault.",
                        labels=_LABELS),
        "duration": g("seawall_backup_duration_seconds", "Duration of the newest DONE backup.", labels=_LABELS),
        "backups": g("seawall_backups", "Backups per manifest status.", labels=[*_LABELS, "status"]),
        "rto": g("seawall_last_rto_seconds", "Restore time measured by the newest verification.", labels=_LABELS),
        "rto_verified": g("seawall_last_rto_verified_seconds", "Restore + checks time of the newest verification.",
                          labels=_LABELS),
        "rpo": g("seawall_last_rpo_seconds", "Achieved RPO measured by the newest verification.", labels=_LABELS),
        "verification_ok": g("seawall_verification_ok", "1 if the newest verification is VERIFIED, else 0.",
                             labels=_LABELS),
        "scrape_error": g("seawall_scrape_error", "1 if the vault could not be read.", labels=["vault"]),
        "rpo_objective": g("seawall_rpo_objective_seconds", "The dataset's recovery point objective (policy).",
                           labels=["dataset"]),
        "rto_objective": g("seawall_rto_objective_seconds", "The dataset's recovery time objective (policy).",
                           labels=["dataset"]),
    }


def registry_for(vaults: list, passphrase: str | None = None, objectives: Objectives | None = None
                 ) -> CollectorRegistry:
    """A registry holding only seawall's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(VaultCollector(vaults, passphrase, objectives=objectives))
    return registry


def render(vaults: list, passphrase: str | None = None, objectives: Objectives | None = None) -> bytes:
    """The exposition text for the vaults (VaultSources, or URLs sharing `passphrase`), now."""
    return generate_latest(registry_for(vaults, passphrase, objectives))


def write_textfile(path: str | os.PathLike, vaults: list, passphrase: str | None = None,
                   objectives: Objectives | None = None) -> Path:
    """Write node_exporter's textfile-collector format atomically (tmp file + rename)."""
    write_to_textfile(str(path), registry_for(vaults, passphrase, objectives))
    return Path(path)


def serve(vaults: list, passphrase: str | None, port: int, addr: str = "127.0.0.1",
          objectives: Objectives | None = None) -> None:
    """Serve /metrics until interrupted (each scrape reads the vaults)."""
    start_http_server(port, addr=addr, registry=registry_for(vaults, passphrase, objectives))
    while True:
        time.sleep(3600)


def exported_names() -> set[str]:
    """Every metric family name seawall exports (what dashboards may query)."""
    return {fam.name for fam in _families().values()}

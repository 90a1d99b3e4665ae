"""Prometheus metrics computed from a vault's manifests and verification ledger."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from seawall import metrics
from seawall.checks import CheckResult
from seawall.ledger import VerificationReport, store_report
from seawall.manifest import BackupStats, BackupStatus
from seawall.vault import Vault, init_vault
from tests.unit.builders import BASE_TIME, FAST_SCRYPT, PASSPHRASE, make_manifest


def samples(text: bytes) -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def done(n: int, size: int):
    return make_manifest(n=n, dataset="shop", status=BackupStatus.DONE, finished_at=BASE_TIME + timedelta(minutes=n),
                         stats=BackupStats(files=1, bytes_total=size, stored_bytes_new=size // 2))


def last_success(text: bytes, url: str, stage: str = "backup") -> float | None:
    return samples(text).get(("seawall_last_success_timestamp_seconds", ("dataset", "shop"), ("stage", stage),
                              ("vault", url)))


def test_last_success_moves_after_a_backup_and_verification_is_exported(tmp_path):
    url = f"file://{tmp_path / 'vault'}"
    vault: Vault = init_vault(url, PASSPHRASE, scrypt=FAST_SCRYPT)
    assert last_success(metrics.render([url], PASSPHRASE), url) is None
    vault.write_manifest(done(1, 1000))
    first = last_success(metrics.render([url], PASSPHRASE), url)
    assert first == (BASE_TIME + timedelta(minutes=1)).timestamp()
    vault.write_manifest(done(2, 3000))
    vault.write_manifest(make_manifest(n=3, dataset="shop", status=BackupStatus.FAILED, error="boom"))
    text = metrics.render([url], PASSPHRASE)
    assert last_success(text, url) > first
    s = samples(text)
    lbl = (("dataset", "shop"), ("vault", url))
    assert s[("seawall_backup_size_bytes", *lbl)] == 3000
    assert s[("seawall_backup_stored_new_bytes", *lbl)] == 1500
    assert s[("seawall_backups", ("dataset", "shop"), ("status", "FAILED"), ("vault", url))] == 1
    assert s[("seawall_scrape_error", ("vault", url))] == 0

    report = VerificationReport(vault=url, dataset="shop", backup_id=done(2, 1).backup_id, kind="files",
                                started_at=BASE_TIME, finished_at=BASE_TIME + timedelta(hours=1),
                                rto_restore_s=12.5, rto_verified_s=20.0, rpo_s=3.0,
                                checks=[CheckResult(name="tree", status="pass")])
    store_report(vault, report)
    s = samples(metrics.render([url], PASSPHRASE))
    assert s[("seawall_verification_ok", *lbl)] == 1
    assert s[("seawall_last_rto_seconds", *lbl)] == 12.5 and s[("seawall_last_rpo_seconds", *lbl)] == 3.0
    assert ("seawall_last_success_age_seconds", ("dataset", "shop"), ("stage", "verification"), ("vault", url)) in s


def test_unreadable_vault_is_a_metric_and_textfile_is_written(tmp_path):
    url = f"file://{tmp_path / 'nothing-here'}"
    out = metrics.write_textfile(tmp_path / "seawall.prom", [url], PASSPHRASE)
    assert samples(out.read_bytes())[("seawall_scrape_error", ("vault", url))] == 1


def _vault_with_history(url: str, passphrase: str) -> None:
    vault: Vault = init_vault(url, passphrase, scrypt=FAST_SCRYPT)
    vault.write_manifest(done(1, 1000))
    store_report(vault, VerificationReport(vault=url, dataset="shop", backup_id=done(1, 1).backup_id, kind="files",
                                           started_at=BASE_TIME, finished_at=BASE_TIME + timedelta(hours=1),
                                           rto_restore_s=12.5, rto_verified_s=20.0, rpo_s=3.0,
                                           checks=[CheckResult(name="tree", status="pass")]))


def test_each_vault_is_read_with_its_own_passphrase_and_objectives_are_exported(tmp_path):
    primary, dr = f"file://{tmp_path / 'primary'}", f"file://{tmp_path / 'dr vault'}"
    _vault_with_history(primary, PASSPHRASE)
    _vault_with_history(dr, "the DR vault's own passphrase")
    shared_only = samples(metrics.render([primary, dr], PASSPHRASE))
    assert shared_only[("seawall_scrape_error", ("vault", dr))] == 1  # the old behaviour: one passphrase
    text = metrics.render([metrics.url_source(primary, PASSPHRASE),
                           metrics.url_source(dr, "the DR vault's own passphrase")],
                          objectives={"shop": (26 * 3600.0, 1800.0)})
    s = samples(text)
    assert s[("seawall_scrape_error", ("vault", primary))] == 0 and s[("seawall_scrape_error", ("vault", dr))] == 0
    assert last_success(text, dr) is not None
    assert s[("seawall_rpo_objective_seconds", ("dataset", "shop"))] == 26 * 3600.0
    assert s[("seawall_rto_objective_seconds", ("dataset", "shop"))] == 1800.0


def test_every_metric_the_grafana_dashboard_queries_is_exported_with_samples(tmp_path):
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parents[2] / "deployments" / "grafana" / "seawall.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    queried = {name for e in exprs for name in re.findall(r"\bseawall_[a-z_]+", e)}
    assert len(queried) >= 12 and queried <= metrics.exported_names(), queried - metrics.exported_names()

    url = f"file://{tmp_path / 'vault'}"
    _vault_with_history(url, PASSPHRASE)
    exported = {name for name, *_ in samples(metrics.render([url], PASSPHRASE, objectives={"shop": (60.0, 60.0)}))}
    assert queried <= exported, f"queried but without samples: {queried - exported}"

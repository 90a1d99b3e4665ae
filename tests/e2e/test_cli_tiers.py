"""Storage tiers end to end: a vault whose chunks are written in DEEP_ARCHIVE on moto, restored
through RestoreObject requests, and the RTO the tier implies in `restore` and `status`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seawall.errors import ExitCode
from seawall.sources.compare import compare_trees
from seawall.stores.s3 import from_url
from tests.e2e.prefect_helpers import create_pool

FAST_POLL = {"SEAWALL_RETRIEVAL_POLL_SECONDS": "0.2"}
DEEP_ARCHIVE_STANDARD_S = 12 * 3600


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "www data"
    (root / "päge").mkdir(parents=True)
    (root / "päge" / "index \"home\".html").write_text("<h1>héllo</h1>\n" * 5000)
    (root / "blob.bin").write_bytes(os.urandom(200_000))
    return root


def _heads(url: str, prefix: str) -> list[dict]:
    with from_url(url) as store:
        return [store.client.head_object(Bucket=store.bucket, Key=f"{store.prefix}/{i.key}")
                for i in store.list(prefix)]


def test_restore_from_deep_archive_requests_waits_restores_and_shows_the_rto(cli, tree, tmp_path, s3_vault_url,
                                                                            s3_env):
    url = s3_vault_url + "&storage_class=DEEP_ARCHIVE"
    env = {**s3_env, **FAST_POLL}
    assert cli("init", url, env=env).code == 0
    backup = cli("backup", "files", str(tree), "--vault", url, "--dataset", "cold-www", "--json", env=env)
    assert backup.code == 0, backup.err
    backup_id = backup.json()["backup_id"]
    chunks = _heads(url, "data/")
    assert chunks and {h["StorageClass"] for h in chunks} == {"DEEP_ARCHIVE"}
    assert all("Restore" not in h for h in chunks)  # nothing asked for yet
    assert {h.get("StorageClass", "STANDARD") for h in _heads(url, "manifests/")} == {"STANDARD"}

    out = tmp_path / "restored"
    restored = cli("restore", backup_id, "--vault", url, "--to", str(out), "--json", env=env)
    assert restored.code == 0, restored.err
    assert compare_trees(tree, out) == []
    tier = restored.json()["tier"]
    # Before the retrieval the file list (a tree chunk) is archived too: a lower bound, said so.
    assert tier["storage_class"] == "DEEP_ARCHIVE" and tier["archived"] == 1 and tier["complete"] is False
    assert tier["retrieval_s"] == DEEP_ARCHIVE_STANDARD_S and tier["implied_rto_s"] is None  # nothing measured yet
    assert all('ongoing-request="false"' in h["Restore"] for h in _heads(url, "data/"))  # RestoreObject issued

    measured = cli("verify-restore", "--vault", url, "--dataset", backup.json()["dataset"], "--json", env=env)
    assert measured.code == 0, measured.err
    restore_s = measured.json()["rto_restore_s"]
    status = cli("status", "--vault", url, "--json", env=env).json()["datasets"][0]
    assert status["last_backup_tier"] == "DEEP_ARCHIVE" and status["last_backup_archived_objects"] == len(chunks)
    assert status["retrieval_s"] == DEEP_ARCHIVE_STANDARD_S
    assert status["implied_rto_s"] == pytest.approx(restore_s + DEEP_ARCHIVE_STANDARD_S)

    policy = tmp_path / "seawall.yaml"
    policy.write_text(f"""\
version: 1
vaults:
  cold: {{url: "{url}"}}
datasets:
  cold-www:
    files: {{path: "{tree}"}}
    vault: cold
    rpo: 26h
    rto: 1h
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
""")
    report = cli("report", "--policy", str(policy), "--json", env=env)
    assert report.code in (ExitCode.OK, ExitCode.CONTROL_FAILED), report.err
    row = report.json()["datasets"][0]
    assert row["last_backup_storage_class"] == "DEEP_ARCHIVE" and row["retrieval_s"] == DEEP_ARCHIVE_STANDARD_S
    assert row["implied_rto_s"] == pytest.approx(row["measured_rto_s"] + DEEP_ARCHIVE_STANDARD_S)
    markdown = cli("report", "--policy", str(policy), "--markdown", env=env).out
    assert "(DEEP_ARCHIVE: 12.0h with a 12.0h retrieval)" in markdown

    again = cli("restore", backup_id, "--vault", url, "--to", str(tmp_path / "again"), env=env)
    assert again.code == 0, again.err
    assert f"{len(chunks)} of {len(chunks)} objects need a retrieval" in again.out  # the tree is readable now
    assert "chunks in DEEP_ARCHIVE" in again.out and "implied RTO 12.0h" in again.out
    table = cli("status", "--vault", url, env=env)
    assert "DEEP_ARCHIVE" in table.out and "12.0h" in table.out


def test_glacier_ir_restores_without_a_retrieval(cli, tree, tmp_path, s3_vault_url, s3_env):
    url = s3_vault_url + "&storage_class=GLACIER_IR"
    assert cli("init", url, env=s3_env).code == 0
    backup_id = cli("backup", "files", str(tree), "--vault", url, "--json", env=s3_env).json()["backup_id"]
    restored = cli("restore", backup_id, "--vault", url, "--to", str(tmp_path / "r"), "--json", env=s3_env)
    assert restored.code == 0, restored.err
    assert restored.json()["tier"]["storage_class"] == "GLACIER_IR" and restored.json()["tier"]["archived"] == 0
    assert all("Restore" not in h for h in _heads(url, "data/"))


def test_storage_class_the_endpoint_rejects(cli, s3_vault_url, s3_env):
    result = cli("init", s3_vault_url + "&storage_class=COLD_STORAGE", env=s3_env)
    assert result.code == ExitCode.USAGE
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "InvalidStorageClass" in lines[0] and "Traceback" not in result.err
    assert cli("list", "--vault", s3_vault_url, env=s3_env).code == ExitCode.USAGE  # no vault was made


def test_copies_land_in_the_destination_class(cli, tree, s3_vault_url, s3_env):
    src = s3_vault_url
    dest = s3_vault_url.replace("s3://seawall-test-", "s3://seawall-dr-", 1) + "&storage_class=GLACIER"
    assert cli("init", src, env=s3_env).code == 0
    assert cli("backup", "files", str(tree), "--vault", src, env=s3_env).code == 0
    copied = cli("copy", "--from", src, "--to", dest, "--init-dest", "--json", env=s3_env)
    assert copied.code == 0, copied.err
    chunks = _heads(dest, "data/")
    assert chunks and {h["StorageClass"] for h in chunks} == {"GLACIER"}
    assert {h.get("StorageClass", "STANDARD") for h in _heads(dest, "manifests/")} == {"STANDARD"}
    assert all(h.get("StorageClass", "STANDARD") == "STANDARD" for h in _heads(src, "data/"))


def _policy(url: str, src: Path, lifecycle: str, retention: str = "{keep_daily: 30, keep_monthly: 12}") -> str:
    return f"""\
version: 1
work_pool: seawall-tiers-e2e
vaults:
  tiered:
    url: "{url}"
    lifecycle:
{lifecycle}
datasets:
  tiered-www:
    files: {{path: "{src}"}}
    vault: tiered
    rpo: 26h
    rto: 1h
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
    retention: {retention}
"""


def _rules(url: str) -> list[dict]:
    with from_url(url) as store:
        try:
            return store.client.get_bucket_lifecycle_configuration(Bucket=store.bucket)["Rules"]
        except store.client.exceptions.ClientError:
            return []


def test_deploy_creates_the_lifecycle_rules_once_and_refuses_unsafe_ones(cli, prefect_server, tree, tmp_path,
                                                                         s3_vault_url, s3_env):
    create_pool(prefect_server, "seawall-tiers-e2e")  # deploy refuses a policy whose pool does not exist
    url = s3_vault_url + "&storage_class=STANDARD_IA"
    assert cli("init", url, env=s3_env).code == 0
    good = tmp_path / "seawall.yaml"
    good.write_text(_policy(url, tree, "      - {after: 30d, storage_class: GLACIER_IR}\n"
                                       "      - {after: 400d, storage_class: DEEP_ARCHIVE}"))
    plan = cli("plan", "--policy", str(good), env=s3_env)
    assert "lifecycle rule for vault tiered's chunks: GLACIER_IR after 30d, DEEP_ARCHIVE after 400d" in plan.out
    first = cli("deploy", "--policy", str(good), env=s3_env)
    assert first.code == 0, first.err
    assert "lifecycle rule seawall-tier-vault on s3://" in first.out
    rules = {r["ID"]: r for r in _rules(url)}  # packs, and the loose chunks of format v1 vaults
    assert rules["seawall-tier-vault-packs"]["Filter"] == {"Prefix": "vault/data/"} and len(rules) == 2
    assert rules["seawall-tier-vault"]["Filter"] == {"Prefix": "vault/chunks/"}
    for rule in rules.values():
        assert [(t["Days"], t["StorageClass"]) for t in rule["Transitions"]] == [(30, "GLACIER_IR"),
                                                                                (400, "DEEP_ARCHIVE")]
    again = cli("deploy", "--policy", str(good), env=s3_env)
    assert again.code == 0 and "lifecycle rule" not in again.out

    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text(_policy(url, tree, "      - {after: 30d, storage_class: DEEP_ARCHIVE}",
                              retention="{keep_daily: 45}"))
    refused = cli("deploy", "--policy", str(unsafe), env=s3_env)
    assert refused.code == ExitCode.USAGE and "Traceback" not in refused.err
    assert f"{unsafe}:7: vaults.tiered.lifecycle[0]: moves data to DEEP_ARCHIVE after 30d" in refused.err
    assert {r["ID"]: r for r in _rules(url)} == rules  # nothing changed

    rejected = tmp_path / "rejected.yaml"
    rejected.write_text(_policy(s3_vault_url + "&storage_class=COLD_STORAGE", tree,
                                "      - {after: 30d, storage_class: STANDARD_IA}"))
    result = cli("deploy", "--policy", str(rejected), env=s3_env)
    assert result.code == ExitCode.USAGE
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "InvalidStorageClass" in lines[0]
    assert {r["ID"]: r for r in _rules(url)} == rules

"""Evidence read from real vaults: key wrappers (passphrase and KMS on moto), Object Lock on moto S3,
storage classes, and the controls that judge them — a vault that passes and one that fails."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

from seawall.crypto import Keyring, wrap_with_passphrase
from seawall.readiness import controls as c
from seawall.readiness.evidence import gather
from seawall.readiness.settings import StorageTiers
from seawall.sources.files import backup_tree
from seawall.stores.s3 import from_url
from seawall.vault import Vault, init_vault
from seawall.wrappers import add_kms
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE
from tests.unit.readiness_builders import policy

P = policy()


def _tree(tmp_path):
    src = tmp_path / "src dir ü"
    src.mkdir()
    (src / "a file 'quoted'.txt").write_text("hello\n" * 100)
    return src


def _evidence(vault: Vault, name: str = "main", region: str = "eu-west-1", media: str = "object-storage"):
    return gather(vault, name=name, role="primary", region=region, media=media, passphrases=[PASSPHRASE],
                  tiers=StorageTiers(), now=datetime.now(UTC))


def _ctx(main, dr=None):
    return c.Context("www", P.datasets["www"], P.readiness, main, dr, datetime.now(UTC))


def test_key_wrappers_passing_and_failing(tmp_path):
    vault = init_vault(f"file://{tmp_path}/v", PASSPHRASE, scrypt=FAST_SCRYPT)
    assert c.encrypted_with_valid_key(_ctx(_evidence(vault))).status == "PASS"

    vault.add_passphrase("someone else's passphrase", scrypt=FAST_SCRYPT)
    unknown = c.encrypted_with_valid_key(_ctx(_evidence(vault)))
    assert unknown.status == "UNKNOWN" and any("another passphrase" in e for e in unknown.evidence)

    # a wrapper our passphrase opens, but to another master key: restores would fail
    rogue = wrap_with_passphrase(Keyring.generate(), PASSPHRASE, vault.config.vault_id, "0badc0de", FAST_SCRYPT)
    vault.store.put("keys/0badc0de", json.dumps(rogue).encode())
    failing = c.encrypted_with_valid_key(_ctx(_evidence(vault)))
    assert failing.status == "FAIL" and any("another master key" in e for e in failing.evidence)


def test_damaged_wrapper_fails(tmp_path):
    vault = init_vault(f"file://{tmp_path}/v", PASSPHRASE, scrypt=FAST_SCRYPT)
    second = vault.add_passphrase(PASSPHRASE, scrypt=FAST_SCRYPT)
    record = json.loads(vault.store.get(f"keys/{second}"))
    record["kdf"]["n"] = "not a number"
    vault.store.put(f"keys/{second}", json.dumps(record).encode())
    result = c.encrypted_with_valid_key(_ctx(_evidence(Vault.open(vault.store, PASSPHRASE))))
    assert result.status == "FAIL" and any("malformed" in e for e in result.evidence)


def test_object_lock_and_storage_class_on_s3(s3_vault_url, tmp_path):
    locked_url = s3_vault_url
    store = from_url(locked_url, create=True, object_lock_mode="governance", object_lock_days=2)
    vault = Vault.init(store, PASSPHRASE, scrypt=FAST_SCRYPT)
    backup_tree(vault, _tree(tmp_path), "www")
    ev = _evidence(vault)
    assert ev.locks["www"].mode == "GOVERNANCE"
    assert ev.storage_source == "storage class" and ev.storage["hot"] > 0
    result = c.immutable_copy(_ctx(ev))
    assert result.status == "PASS", result


def test_no_object_lock_fails(s3_vault_url, tmp_path):
    vault = Vault.init(from_url(s3_vault_url, create=True), PASSPHRASE, scrypt=FAST_SCRYPT)
    backup_tree(vault, _tree(tmp_path), "www")
    result = c.immutable_copy(_ctx(_evidence(vault)))
    assert result.status == "FAIL" and "no Object Lock here" in result.evidence[0]


def test_local_vault_cannot_be_immutable(tmp_path):
    vault = init_vault(f"file://{tmp_path}/v", PASSPHRASE, scrypt=FAST_SCRYPT)
    backup_tree(vault, _tree(tmp_path), "www")
    result = c.immutable_copy(_ctx(_evidence(vault, region="local", media="disk")))
    assert result.status == "FAIL" and "no Object Lock here" in result.evidence[0]


@pytest.fixture
def kms(moto_server, s3_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto_server)
    return boto3.client("kms", region_name="eu-west-1", endpoint_url=moto_server)


@pytest.mark.parametrize("change, expected, word", [
    (None, "PASS", "Enabled"),
    ("disable", "FAIL", "Disabled"),
    ("delete", "FAIL", "PendingDeletion"),
])
def test_kms_wrapper_key_state(kms, tmp_path, change, expected, word):
    arn = kms.create_key(Description="seawall test")["KeyMetadata"]["Arn"]
    vault = init_vault(f"file://{tmp_path}/v", PASSPHRASE, scrypt=FAST_SCRYPT)
    add_kms(vault, arn, "eu-west-1")
    if change == "disable":
        kms.disable_key(KeyId=arn.rsplit("/", 1)[1])  # moto: a key id, not the ARN
    elif change == "delete":
        kms.schedule_key_deletion(KeyId=arn.rsplit("/", 1)[1], PendingWindowInDays=7)
    result = c.encrypted_with_valid_key(_ctx(_evidence(Vault.open(vault.store, PASSPHRASE))))
    assert result.status == expected, result
    kms_line = next(e for e in result.evidence if "kms wrapper" in e)
    assert word in kms_line or expected == "PASS", kms_line

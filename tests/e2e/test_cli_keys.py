"""`seawall key` end to end: KMS key wrappers on moto's KMS (same loopback server as S3).

The `seawall` script runs as a whole process; KMS calls reach moto through botocore's own
`AWS_ENDPOINT_URL_KMS`. Keys are made with boto3 the way an operator makes them in AWS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from seawall.errors import ExitCode
from seawall.sources.compare import compare_trees
from seawall.stores.s3 import from_url
from tests.fixtures.s3 import REGION_A, REGION_B

NO_PASS = {"SEAWALL_PASSPHRASE": None}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree with spaces"
    (root / "répertoire").mkdir(parents=True)
    (root / "répertoire" / "it's \"quoted\".txt").write_text("ünïcode payload\n" * 2000)
    (root / "data.bin").write_bytes(os.urandom(300_000))
    return root


@pytest.fixture
def env(s3_env, moto_server) -> dict:
    return {**s3_env, "AWS_ENDPOINT_URL_KMS": moto_server}


@pytest.fixture
def kms(env, monkeypatch):
    """A KMS client per region on moto; `kms(region).create_key()` as an operator would."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", env["AWS_ENDPOINT_URL_KMS"])
    return lambda region=REGION_A: boto3.client("kms", region_name=region)


def _new_key(client, policy: dict | None = None) -> str:
    args = {"Policy": json.dumps(policy)} if policy else {}
    return client.create_key(Description="seawall test", **args)["KeyMetadata"]["Arn"]


def _key_objects(url: str) -> dict[str, bytes]:
    with from_url(url) as store:
        return {i.key: store.get(i.key) for i in store.list("keys/")}


def _one_line(result) -> str:
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def test_kms_wrapper_round_trip(cli, tree, tmp_path, s3_vault_url, env, kms):
    url = s3_vault_url
    assert cli("init", url, env=env).code == 0
    first = cli("backup", "files", str(tree), "--vault", url, "--json", env=env)
    assert first.code == 0, first.err
    arn = _new_key(kms())

    added = cli("key", "add", "--vault", url, "--kms-key", arn, "--json", env=env)
    assert added.code == 0, added.err
    kms_id = added.json()["added"]["id"]
    assert added.json()["added"] | {"created": None} == {"id": kms_id, "kind": "kms", "key_id": arn,
                                                          "region": REGION_A, "created": None}
    record = json.loads(_key_objects(url)[f"keys/{kms_id}"])  # the key id is recorded in the vault
    assert record["key_id"] == arn and record["region"] == REGION_A and record["kind"] == "kms"

    listed = cli("key", "list", "--vault", url, "--json", env=env).json()
    by_kind = {w["kind"]: w for w in listed["wrappers"]}
    assert by_kind["kms"]["usable"] is True and by_kind["kms"]["key_id"] == arn
    assert by_kind["passphrase"]["usable"] is True
    pass_id = by_kind["passphrase"]["id"]

    removed = cli("key", "remove", pass_id, "--vault", url, "--yes", env=env)
    assert removed.code == 0, removed.err
    assert list(_key_objects(url)) == [f"keys/{kms_id}"]

    # No passphrase at all from here on: the KMS wrapper unlocks, for plain commands and for flows.
    second = cli("backup", "files", str(tree), "--vault", url, "--json", env=env | NO_PASS)
    assert second.code == 0, second.err
    out = tmp_path / "restored"
    restored = cli("restore", first.json()["backup_id"], "--vault", url, "--to", str(out), env=env | NO_PASS)
    assert restored.code == 0, restored.err
    assert compare_trees(tree, out) == []

    rotated = cli("key", "rotate", kms_id, "--vault", url, "--json", env=env | NO_PASS)
    assert rotated.code == 0, rotated.err
    new_id = rotated.json()["added"]["id"]
    assert new_id != kms_id and list(_key_objects(url)) == [f"keys/{new_id}"]
    assert rotated.json()["added"]["key_id"] == arn
    assert cli("list", "--vault", url, "--json", env=env | NO_PASS).code == 0

    last = cli("key", "remove", new_id, "--vault", url, "--yes", env=env | NO_PASS)
    assert last.code == ExitCode.USAGE and "refusing to remove" in _one_line(last)
    assert list(_key_objects(url)) == [f"keys/{new_id}"]

    kms().disable_key(KeyId=arn.rsplit("/", 1)[1])
    locked = cli("list", "--vault", url, env=env | NO_PASS)
    assert locked.code == ExitCode.USAGE
    line = _one_line(locked)
    assert "cannot unlock vault" in line and arn in line and "Disabled" in line and "enable the key" in line


def test_rotate_onto_another_key_and_passphrase_wrappers(cli, s3_vault_url, env, kms, tmp_path):
    url = s3_vault_url
    assert cli("init", url, env=env).code == 0
    old_arn, new_arn = _new_key(kms()), _new_key(kms())
    kms_id = cli("key", "add", "--vault", url, "--kms-key", old_arn, "--json", env=env).json()["added"]["id"]
    moved = cli("key", "rotate", kms_id, "--vault", url, "--kms-key", new_arn, "--json", env=env | NO_PASS)
    assert moved.code == 0, moved.err and moved.json()["added"]["key_id"] == new_arn
    # A passphrase wrapper rotates to a new passphrase; the old one stops working, the data does not move.
    pass_id = next(w["id"] for w in cli("key", "list", "--vault", url, "--json", env=env).json()["wrappers"]
                   if w["kind"] == "passphrase")
    new_pass = tmp_path / "new pass"
    new_pass.write_text("a new 'passphrase' ✓\n")
    rotated = cli("key", "rotate", pass_id, "--vault", url, "--new-passphrase-file", str(new_pass), env=env)
    assert rotated.code == 0, rotated.err
    kms().disable_key(KeyId=new_arn.rsplit("/", 1)[1])  # only passphrases can unlock now
    assert cli("list", "--vault", url, env=env).code == ExitCode.USAGE  # the old passphrase
    assert cli("list", "--vault", url, "--passphrase-file", str(new_pass), env=env).code == 0
    for secret in ("correct horse", "a new 'passphrase'"):
        assert all(secret.encode() not in blob for blob in _key_objects(url).values())


@pytest.mark.parametrize("case", ["disabled", "denied", "other-region-id", "other-region-arn", "unknown"])
def test_bad_kms_key_one_line_nothing_written(cli, s3_vault_url, env, kms, case):
    url = s3_vault_url
    assert cli("init", url, env=env).code == 0
    deny_all = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]}
    if case == "disabled":
        key = _new_key(kms())
        kms().disable_key(KeyId=key.rsplit("/", 1)[1])
    elif case == "denied":
        key = _new_key(kms(), deny_all)
    elif case == "unknown":
        key = f"arn:aws:kms:{REGION_A}:123456789012:key/00000000-1111-2222-3333-444444444444"
    else:
        arn = _new_key(kms(REGION_B))
        key = arn.rsplit("/", 1)[1] if case == "other-region-id" else arn
    before = _key_objects(url)
    result = cli("key", "add", "--vault", url, "--kms-key", key, env=env)
    assert result.code == ExitCode.USAGE
    line = _one_line(result)
    expected = {"disabled": "is Disabled", "denied": "AccessDeniedException", "unknown": "NotFoundException",
                "other-region-id": "NotFoundException", "other-region-arn": f"is in {REGION_B}"}[case]
    assert expected in line and "correct horse" not in line
    assert _key_objects(url) == before


def test_remove_asks_for_confirmation(cli, s3_vault_url, env):
    url = s3_vault_url
    assert cli("init", url, env=env).code == 0
    wrapper = cli("key", "list", "--vault", url, "--json", env=env).json()["wrappers"][0]["id"]
    result = cli("key", "remove", wrapper, "--vault", url, env=env)
    assert result.code == ExitCode.USAGE and "--yes" in _one_line(result)
    unknown = cli("key", "remove", "feedface", "--vault", url, "--yes", env=env)
    assert unknown.code == ExitCode.USAGE and "no key wrapper 'feedface'" in _one_line(unknown)
    assert len(_key_objects(url)) == 1

"""S3 storage classes on a moto server: bulk objects in the vault's class, metadata in the default
one, lifecycle rules, archive retrievals; and the one-tier defaults every other store inherits."""

from __future__ import annotations

import pytest

from seawall.errors import ConfigError, ObjectArchived
from seawall.stores.memory import MemoryStore
from seawall.stores.s3 import from_url
from seawall.stores.s3_tiers import Transition

CHUNK = "chunks/ab/" + "ab" * 32


def _class(store, key: str) -> str:
    head = store.client.head_object(Bucket=store.bucket, Key=f"{store.prefix}/{key}")
    return head.get("StorageClass", "STANDARD")


def test_bulk_objects_take_the_class_metadata_does_not(s3_vault_url: str) -> None:
    with from_url(s3_vault_url + "&storage_class=glacier_ir", create=True) as store:
        assert store.storage_class == "GLACIER_IR"
        store.put(CHUNK, b"chunk bytes")
        store.put_etag("chunks/cd/" + "cd" * 32, b"copied chunk")
        store.put("config", b"{}")
        store.put("manifests/ds/20260101T000000Z-abcdef", b"m")
        assert _class(store, CHUNK) == "GLACIER_IR"
        assert _class(store, "chunks/cd/" + "cd" * 32) == "GLACIER_IR"
        assert _class(store, "config") == "STANDARD"
        assert _class(store, "manifests/ds/20260101T000000Z-abcdef") == "STANDARD"
        assert store.storage_classes("chunks/") == {CHUNK: "GLACIER_IR", "chunks/cd/" + "cd" * 32: "GLACIER_IR"}
        assert [i.key for i in store.list("probe/")] == []  # the create-time probe cleaned up


def test_a_class_the_endpoint_rejects_stops_init_with_nothing_written(s3_vault_url: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_url(s3_vault_url + "&storage_class=COLD_STORAGE", create=True)
    message = str(info.value)
    assert "InvalidStorageClass" in message and "storage_class" in message and "\n" not in message
    with from_url(s3_vault_url) as store:  # the bucket exists (made before the probe); it is empty
        assert list(store.list("")) == []
    with pytest.raises(ConfigError, match="invalid storage class"):
        from_url(s3_vault_url + "&storage_class=glacier%20ir")


def test_archived_objects_need_a_retrieval(s3_vault_url: str) -> None:
    with from_url(s3_vault_url + "&storage_class=DEEP_ARCHIVE", create=True) as store:
        store.put(CHUNK, b"cold")
        assert store.needs_retrieval("DEEP_ARCHIVE") and not store.needs_retrieval("GLACIER_IR")
        assert store.retrieval_seconds("DEEP_ARCHIVE") == 12 * 3600
        assert store.retrieval_seconds("GLACIER_IR") == 0 and store.retrieval_seconds("NEW_CLASS") is None
        with pytest.raises(ObjectArchived, match="archive storage class"):
            store.get(CHUNK)
        assert store.retrieval_state(CHUNK) == "archived"
        store.request_retrieval(CHUNK, days=1, tier="Bulk")
        store.request_retrieval(CHUNK, days=1, tier="Bulk")  # a retried request is fine
        assert store.retrieval_state(CHUNK) == "ready"
        assert store.get(CHUNK) == b"cold"


def test_lifecycle_rule_is_ours_idempotent_and_keeps_other_rules(s3_vault_url: str) -> None:
    with from_url(s3_vault_url, create=True) as store:
        foreign = {"ID": "logs-expiry", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
                   "Expiration": {"Days": 7}}
        store.client.put_bucket_lifecycle_configuration(Bucket=store.bucket,
                                                        LifecycleConfiguration={"Rules": [foreign]})
        steps = [Transition(30, "STANDARD_IA"), Transition(400, "DEEP_ARCHIVE")]
        assert store.set_lifecycle(steps) == [  # packs, and the loose chunks of format v1 vaults
            f"lifecycle rule seawall-tier-vault{which} on s3://{store.bucket}: STANDARD_IA after 30d, DEEP_ARCHIVE "
            "after 400d" for which in ("-packs", "")]
        assert store.set_lifecycle(steps) == []
        rules = {r["ID"]: r for r in store.client.get_bucket_lifecycle_configuration(Bucket=store.bucket)["Rules"]}
        assert rules["logs-expiry"]["Expiration"] == {"Days": 7}
        assert rules["seawall-tier-vault"]["Filter"] == {"Prefix": "vault/chunks/"}
        assert rules["seawall-tier-vault-packs"]["Filter"] == {"Prefix": "vault/data/"}
        for ours in (rules["seawall-tier-vault"], rules["seawall-tier-vault-packs"]):
            assert [(t["Days"], t["StorageClass"]) for t in ours["Transitions"]] == [(30, "STANDARD_IA"),
                                                                                    (400, "DEEP_ARCHIVE")]
        assert store.set_lifecycle([]) == [f"lifecycle rule seawall-tier-vault{which} on s3://{store.bucket}: removed"
                                           for which in ("-packs", "")]
        rules = store.client.get_bucket_lifecycle_configuration(Bucket=store.bucket)["Rules"]
        assert [r["ID"] for r in rules] == ["logs-expiry"]


def test_one_tier_stores_have_working_defaults() -> None:
    store = MemoryStore("tiers-defaults")
    store.put(CHUNK, b"x")
    assert store.storage_class is None and store.region is None
    assert store.storage_classes("chunks/") == {}
    assert store.retrieval_state(CHUNK) == "ready" and not store.needs_retrieval("DEEP_ARCHIVE")
    store.request_retrieval(CHUNK, days=1, tier="Standard")
    store.check_storage_class()
    with pytest.raises(ConfigError, match="no storage tiers"):
        store.set_lifecycle([Transition(30, "STANDARD_IA")])

"""S3 storage classes: the table seawall plans with, lifecycle rules, and archive retrievals.

Only bulk data takes a vault's storage class: keys under `BULK_PREFIXES` (`data/`, `chunks/`). The config,
key wrappers, manifests, WAL and ledgers stay in the bucket's default class, so a vault opens,
lists, checks and replays WAL without waiting for a retrieval.

The table (checked 2026-12 against the AWS pages cited) gives each class its minimum billed storage
duration, whether a GET needs a `RestoreObject` first, the earliest lifecycle transition AWS accepts,
and the worst-case time to first byte per retrieval tier, which `seawall status` and `restore`
add to the measured restore time to show the RTO a tier implies.

- https://aws.amazon.com/s3/storage-classes/ (minimum storage durations)
- https://docs.aws.amazon.com/AmazonS3/latest/userguide/restoring-objects-retrieval-options.html
  (GLACIER: Expedited 1-5 min, Standard 3-5 h, Bulk 5-12 h; DEEP_ARCHIVE: Standard within 12 h,
  Bulk within 48 h; GLACIER_IR, the IA classes and STANDARD: milliseconds)
- https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-transition-general-considerations.html
  (objects must be 30 days old before a transition to STANDARD_IA or ONEZONE_IA)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from seawall.errors import ConfigError

BULK_PREFIXES = ("data/", "chunks/")  # packs, and the loose chunks of format v1 vaults
RULE_PREFIX = "seawall-tier-"
RETRIEVAL_TIERS = ("Expedited", "Standard", "Bulk")
_NAME = re.compile(r"^[A-Z][A-Z0-9_]{1,40}$")
H = 3600.0


@dataclass(frozen=True)
class StorageClass:
    name: str
    rank: int  # colder is higher
    min_days: int = 0
    archive: bool = False  # GET needs RestoreObject first
    min_transition_days: int = 0
    retrieval_s: dict[str, float] = field(default_factory=dict)  # retrieval tier → worst case seconds

    def retrieval_seconds(self, tier: str = "Standard") -> float:
        return self.retrieval_s.get(tier, 0.0) if self.archive else 0.0


CLASSES: dict[str, StorageClass] = {c.name: c for c in (
    StorageClass("STANDARD", 0),
    StorageClass("INTELLIGENT_TIERING", 1),  # its opt-in archive tiers are not modelled
    StorageClass("STANDARD_IA", 2, min_days=30, min_transition_days=30),
    StorageClass("ONEZONE_IA", 2, min_days=30, min_transition_days=30),
    StorageClass("GLACIER_IR", 3, min_days=90),
    StorageClass("GLACIER", 4, min_days=90, archive=True,
                 retrieval_s={"Expedited": 5 * 60, "Standard": 5 * H, "Bulk": 12 * H}),
    StorageClass("DEEP_ARCHIVE", 5, min_days=180, archive=True,
                 retrieval_s={"Standard": 12 * H, "Bulk": 48 * H}),
)}
TRANSITION_CLASSES = tuple(n for n in CLASSES if n != "STANDARD")


def normalise_class(name: str | None) -> str | None:
    """Upper-case a storage class name; the endpoint decides whether it offers it."""
    if name is None or name == "":
        return None
    value = name.strip().upper()
    if not _NAME.fullmatch(value):
        raise ConfigError(f"invalid storage class {name!r}",
                          hint=f"use an S3 storage class name, e.g. {', '.join(CLASSES)}")
    return value


def describe(name: str | None) -> StorageClass | None:
    """The table row for a class (None for the default class or one the table does not know)."""
    return CLASSES.get(name or "STANDARD")


def is_bulk(key: str) -> bool:
    return key.startswith(BULK_PREFIXES)


def needs_retrieval(storage_class: str | None) -> bool:
    row = describe(storage_class)
    return bool(row and row.archive)


def restore_state(head: dict[str, Any]) -> str:
    """`ready`, `archived` (no retrieval asked) or `restoring`, from a HeadObject answer."""
    if not needs_retrieval(head.get("StorageClass")):
        return "ready"
    restore = head.get("Restore")
    if not restore:
        return "archived"
    return "restoring" if 'ongoing-request="true"' in restore else "ready"


@dataclass(frozen=True)
class Transition:
    """Move bulk objects to `storage_class` once they are `days` old."""

    days: int
    storage_class: str


def lifecycle_rule(prefix: str, transitions: list[Transition], bulk: str = "chunks/") -> dict[str, Any]:
    """A bucket lifecycle rule seawall owns for a vault at `prefix`: one per bulk prefix, its packs
    (`data/`, ID suffix `-packs`) and the loose chunks of format v1 (`chunks/`)."""
    root = f"{prefix}/" if prefix else ""
    return {
        "ID": RULE_PREFIX + (prefix.replace("/", "-") or "root") + ("-packs" if bulk == "data/" else ""),
        "Filter": {"Prefix": root + bulk},
        "Status": "Enabled",
        "Transitions": [{"Days": t.days, "StorageClass": t.storage_class} for t in transitions],
    }


def merged_rules(current: list[dict[str, Any]], ours: dict[str, Any] | None, rule_id: str) -> list[dict[str, Any]]:
    """The bucket's rules with ours replaced (or dropped when `ours` is None); others kept as they are."""
    kept = [r for r in current if r.get("ID") != rule_id]
    return kept + ([ours] if ours else [])


class S3TiersMixin:
    """Storage-class operations of `S3Store` (kept here so s3.py stays about reading and writing).

    Overrides the `ObjectStore` defaults (one tier, nothing to retrieve, no lifecycle).
    """

    storage_class: str | None
    bucket: str
    prefix: str
    client: Any
    display_url: str

    def storage_classes(self, prefix: str) -> dict[str, str]:
        """Storage class of every object under `prefix`, from one listing (ListObjectsV2 has it)."""
        from seawall.stores.boto_errors import translate_boto_errors

        root = f"{self.prefix}/" if self.prefix else ""
        out: dict[str, str] = {}
        with translate_boto_errors(f"listing s3://{self.bucket}/{root}{prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=root + prefix):
                for obj in page.get("Contents", ()):
                    out[obj["Key"][len(root):]] = obj.get("StorageClass") or "STANDARD"
        return out

    def needs_retrieval(self, storage_class: str | None) -> bool:
        return needs_retrieval(storage_class)

    def retrieval_seconds(self, storage_class: str | None, tier: str = "Standard") -> float | None:
        row = describe(storage_class)
        return row.retrieval_seconds(tier) if row else None

    def retrieval_state(self, key: str) -> str:
        from seawall.stores.boto_errors import translate_boto_errors

        with translate_boto_errors(self._what("checking", key)):  # type: ignore[attr-defined]
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))  # type: ignore[attr-defined]
        return restore_state(head)

    def request_retrieval(self, key: str, *, days: int, tier: str) -> None:
        """RestoreObject; one already in progress counts as asked (a retried task must succeed)."""
        from botocore.exceptions import ClientError

        from seawall.stores.boto_errors import error_code, translate_boto_errors

        request = {"Days": days, "GlacierJobParameters": {"Tier": tier}}
        with translate_boto_errors(self._what("requesting the retrieval of", key)):  # type: ignore[attr-defined]
            try:
                self.client.restore_object(Bucket=self.bucket, Key=self._key(key),  # type: ignore[attr-defined]
                                           RestoreRequest=request)
            except ClientError as exc:
                if error_code(exc) != "RestoreAlreadyInProgress":
                    raise

    def check_storage_class(self) -> None:
        """Write and delete a tiny object in the configured class: a class the endpoint does not
        offer is refused here, before anything of the vault is written."""
        import secrets

        if not self.storage_class:
            return
        from seawall.stores.boto_errors import translate_boto_errors

        key = f"probe/storage-class-{secrets.token_hex(4)}"
        with translate_boto_errors(f"writing a {self.storage_class} object to {self.display_url}"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=b"",  # type: ignore[attr-defined]
                                   StorageClass=self.storage_class)
        self.delete(key)  # type: ignore[attr-defined]

    def set_lifecycle(self, transitions: list[Transition]) -> list[str]:
        """Make the bucket's seawall rules for this vault's packs and loose chunks say `transitions`
        ([] removes them); other rules in the bucket are kept. Returns one line per change."""
        changes: list[str] = []
        for bulk in BULK_PREFIXES:
            changes += self._set_rule(transitions, bulk)
        return changes

    def _set_rule(self, transitions: list[Transition], bulk: str) -> list[str]:
        from botocore.exceptions import ClientError

        from seawall.stores.boto_errors import error_code, translate_boto_errors

        ours = lifecycle_rule(self.prefix, transitions, bulk) if transitions else None
        rule_id = lifecycle_rule(self.prefix, [], bulk).get("ID")
        with translate_boto_errors(f"reading the lifecycle rules of s3://{self.bucket}"):
            try:
                current = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
            except ClientError as exc:
                if error_code(exc) != "NoSuchLifecycleConfiguration":
                    raise
                current = []
        existing = next((r for r in current if r.get("ID") == rule_id), None)
        if _same_rule(existing, ours):
            return []
        rules = merged_rules(current, ours, rule_id)
        with translate_boto_errors(f"writing the lifecycle rules of s3://{self.bucket}"):
            if rules:
                self.client.put_bucket_lifecycle_configuration(Bucket=self.bucket,
                                                               LifecycleConfiguration={"Rules": rules})
            else:
                self.client.delete_bucket_lifecycle(Bucket=self.bucket)
        steps = ", ".join(f"{t.storage_class} after {t.days}d" for t in transitions) or "removed"
        return [f"lifecycle rule {rule_id} on s3://{self.bucket}: {steps}"]


def _same_rule(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    keys = ("ID", "Filter", "Status")
    trans = [(t.get("Days"), t.get("StorageClass")) for t in a.get("Transitions", [])]
    want = [(t["Days"], t["StorageClass"]) for t in b["Transitions"]]
    return all(a.get(k) == b.get(k) for k in keys) and trans == want

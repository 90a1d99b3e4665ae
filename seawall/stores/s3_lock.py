"""S3 Object Lock calls of `S3Store`: the bucket's lock configuration and per-object retention
(`S3LockMixin` gives the store the `ObjectStore` lock methods on top of the functions below).

Retention is read with HEAD: moto does not implement GetObjectRetention, and HEAD returns the same
two fields. Callers only ever extend retention, never shorten it (S3 refuses that in COMPLIANCE
mode; moto does not enforce it, so we never try).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from seawall.errors import ConfigError, SeawallError
from seawall.keys import validate_key
from seawall.stores.boto_errors import error_code, translate_boto_errors

if TYPE_CHECKING:
    from seawall.stores.s3 import S3Store


def require_lock_enabled(s3: S3Store) -> None:
    """ConfigError unless the bucket has Object Lock enabled."""
    with translate_boto_errors(f"reading the Object Lock configuration of {s3.display_url}"):
        try:
            config = s3.client.get_object_lock_configuration(Bucket=s3.bucket)
        except ClientError as exc:
            if error_code(exc) != "ObjectLockConfigurationNotFoundError":
                raise
            config = {}
    if config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
        raise ConfigError(f"bucket {s3.bucket} has no Object Lock",
                          hint="Object Lock is set when a bucket is created: let --init-dest create a new "
                               "bucket, or create it with ObjectLockEnabledForBucket")


def retention(s3: S3Store, key: str) -> tuple[str | None, datetime | None]:
    """(mode, retain-until) of the current version of `key`; ObjectNotFound if absent."""
    with translate_boto_errors(s3._what("checking the lock of", key)):
        head = s3.client.head_object(Bucket=s3.bucket, Key=s3._key(key))
    return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")


def set_retention(s3: S3Store, key: str, mode: str, until: datetime) -> None:
    """Set the retention of the current version of `key`."""
    with translate_boto_errors(s3._what("locking", key)):
        s3.client.put_object_retention(Bucket=s3.bucket, Key=s3._key(key),
                                       Retention={"Mode": mode, "RetainUntilDate": until})


class S3LockMixin:
    """The `ObjectStore` Object Lock methods of S3Store (which provides the client and settings)."""

    object_lock_mode: str | None
    object_lock_days: int | None

    def has_object_lock(self) -> bool:
        try:
            self.require_object_lock()
        except ConfigError:
            return False
        except SeawallError:  # the configuration is unreadable: assume locks, probe each object
            return True
        return True

    def require_object_lock(self) -> None:
        require_lock_enabled(self)  # type: ignore[arg-type]

    def lock_writes(self, mode: str, days: int) -> None:
        self.require_object_lock()
        self.object_lock_mode, self.object_lock_days = mode, days

    def retention(self, key: str) -> tuple[str | None, datetime | None]:
        return retention(self, validate_key(key))  # type: ignore[arg-type]

    def set_retention(self, key: str, mode: str, until: datetime) -> None:
        set_retention(self, validate_key(key), mode, until)  # type: ignore[arg-type]

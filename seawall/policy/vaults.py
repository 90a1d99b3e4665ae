"""`vaults:` — where backups go: a URL or a saved block, its role, site and S3 lifecycle steps."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from seawall.policy.fields import Duration, EnvName, OneOf, Strict


class TransitionSpec(Strict):
    """A lifecycle step: the vault's chunks move to `storage_class` once they are `after` old."""

    after: Duration = Field(description="Age of an object when it moves, in whole days, e.g. 30d.")
    storage_class: str = Field(description="S3 storage class it moves to, e.g. STANDARD_IA or DEEP_ARCHIVE.")

    @field_validator("storage_class")
    @classmethod
    def _class(cls, value: str) -> str:
        from seawall.stores.s3_tiers import TRANSITION_CLASSES

        if value.upper() not in TRANSITION_CLASSES:
            raise ValueError(f"{value!r} is not a storage class S3 lifecycle rules move objects to "
                             f"(allowed: {', '.join(TRANSITION_CLASSES)})")
        return value.upper()


class VaultSpec(OneOf):
    """A vault: a URL (passphrase from an env var) or a `seawall-vault` block name."""

    one_of = ("url", "block")

    url: str | None = Field(None, description="file:///path, s3://bucket/prefix?region=..., sftp://user@host/path.")
    block: str | None = Field(None, description="Name of a saved VaultTarget block (holds URL and secrets).")
    passphrase_env: EnvName = "SEAWALL_PASSPHRASE"
    role: Literal["primary", "dr"] = "primary"
    region: str | None = Field(None, description="Region or site of the vault (default: from an s3:// URL's "
                               "region; `local` for file://). The offsite-copy control compares it.")
    media: str | None = Field(None, description="Storage medium for 3-2-1 (default: object-storage for s3://, "
                              "disk for file:// and sftp://), e.g. tape, nas.")
    lifecycle: list[TransitionSpec] = Field(default_factory=list, description="S3 lifecycle steps for the "
                                            "vault's chunks, applied to the bucket by `seawall deploy`.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("file", "s3", "sftp"):
            raise ValueError(f"unsupported vault URL scheme {parts.scheme!r} (allowed: file, s3, sftp)")
        if parts.password:
            raise ValueError("the URL holds a password: secrets do not belong in the policy file "
                             "(allowed: a block name, or credentials from the environment)")
        _check_storage_class(value)
        return value


def _check_storage_class(url: str) -> None:
    # Only the name's shape is checked: S3-compatible endpoints offer classes AWS does not.
    from seawall.stores import parse_query
    from seawall.stores.s3_tiers import CLASSES

    storage_class = parse_query(url).get("storage_class")
    if storage_class and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{1,40}", storage_class):
        raise ValueError(f"storage_class={storage_class!r} is not a storage class name "
                         f"(allowed: {', '.join(CLASSES)}, or one your endpoint offers)")

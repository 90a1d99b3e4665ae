"""AWS KMS key wrappers: the vault's master key encrypted under a KMS key (boto3, sync).

A KMS wrapper record (`keys/<wrapper-id>`, plain JSON beside the passphrase wrappers) holds the
key's ARN, its region and the ciphertext KMS returned for `Encrypt(master key)`. The encryption
context binds the ciphertext to this vault and this wrapper::

    {"seawall:vault-id": <vault id>, "seawall:wrapper-id": <wrapper id>}

so a wrapper copied into another vault, or renamed, does not decrypt (KMS refuses it). `Decrypt`
names the recorded key, so a ciphertext swapped for one under another key is refused too.

Unlocking calls `DescribeKey` first, then `Decrypt`: a disabled key, a key pending deletion or a
key policy that denies us is reported as such in one line (KMS itself answers a disabled key with
`DisabledException`; S3-compatible test servers such as moto do not check the key state on
Decrypt, so seawall checks it). The principal therefore needs `kms:Encrypt` (add, rotate),
`kms:Decrypt` and `kms:DescribeKey`.

Clients come from the standard AWS chain (environment, profile, instance role) in the key's own
region; `AWS_ENDPOINT_URL_KMS` points them at another endpoint (botocore's own setting, used by the
tests for moto). boto3 is imported only when a KMS wrapper is used, so passphrase-only paths
(`wal-push`) never pay for it.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from seawall.errors import AuthError, ConfigError, IntegrityError

_ARN = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):(key|alias)/(.+)$")
_TIMEOUTS = {"connect_timeout": 10.0, "read_timeout": 30.0}


@dataclass(frozen=True)
class KeyState:
    """What `DescribeKey` says about a KMS key."""

    arn: str
    region: str
    state: str  # Enabled, Disabled, PendingDeletion, PendingImport, Unavailable, ...
    usage: str

    @property
    def usable(self) -> bool:
        return self.state == "Enabled" and self.usage == "ENCRYPT_DECRYPT"

    def problem(self) -> str | None:
        """Why this key cannot wrap or unwrap the master key, or None."""
        if self.state != "Enabled":
            return f"KMS key {self.arn} is {self.state}"
        if self.usage != "ENCRYPT_DECRYPT":
            return f"KMS key {self.arn} is a {self.usage} key, not ENCRYPT_DECRYPT"
        return None


def region_of(key_id: str, default: str | None) -> str:
    """The region a key id names (an ARN's own region), else `default`, else AWS_DEFAULT_REGION."""
    match = _ARN.match(key_id)
    region = match.group(1) if match else (default or os.environ.get("AWS_DEFAULT_REGION")
                                            or os.environ.get("AWS_REGION"))
    if not region:
        raise ConfigError(f"no region for KMS key {key_id!r}",
                          hint="give the key's full ARN, --kms-region, or set AWS_DEFAULT_REGION")
    return region


def _client(region: str) -> Any:
    import boto3.session
    from botocore.config import Config

    from seawall.stores.boto_errors import translate_boto_errors

    with translate_boto_errors(f"connecting to KMS in {region}"):
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, **_TIMEOUTS)
        return boto3.session.Session().client("kms", region_name=region, config=config)


def _context(vault_id: str, wrapper_id: str) -> dict[str, str]:
    return {"seawall:vault-id": vault_id, "seawall:wrapper-id": wrapper_id}


def describe(key_id: str, region: str | None = None) -> KeyState:
    """DescribeKey in the key's region; ConfigError/AuthError in one line when that fails."""
    from seawall.stores.boto_errors import translate_boto_errors

    region = region_of(key_id, region)
    with translate_boto_errors(f"describing KMS key {key_id} in {region}"):
        meta = _client(region).describe_key(KeyId=key_id)["KeyMetadata"]
    return KeyState(arn=meta["Arn"], region=region, state=str(meta.get("KeyState", "Unknown")),
                    usage=str(meta.get("KeyUsage", "ENCRYPT_DECRYPT")))


def require_usable(state: KeyState, doing: str) -> None:
    problem = state.problem()
    if problem:
        raise AuthError(f"{doing}: {problem}",
                        hint="enable the key in KMS (or cancel its deletion), or use another key wrapper")


def wrap(master: bytes, key_id: str, vault_id: str, wrapper_id: str, region: str | None = None) -> dict[str, Any]:
    """A JSON-able KMS wrapper record for `master` (checks the key first: nothing is half-made)."""
    from seawall.stores.boto_errors import translate_boto_errors

    state = describe(key_id, region)
    require_usable(state, f"wrapping the vault key with {key_id}")
    with translate_boto_errors(f"encrypting with KMS key {state.arn}"):
        answer = _client(state.region).encrypt(KeyId=state.arn, Plaintext=master,
                                               EncryptionContext=_context(vault_id, wrapper_id))
    return {
        "kind": "kms",
        "id": wrapper_id,
        "key_id": answer.get("KeyId") or state.arn,
        "region": state.region,
        "ciphertext": base64.b64encode(answer["CiphertextBlob"]).decode(),
        "created": datetime.now(UTC).isoformat(),
    }


def unwrap(record: dict[str, Any], vault_id: str) -> bytes:
    """The master key a KMS wrapper holds; AuthError/ConfigError/IntegrityError in one line."""
    from seawall.stores.boto_errors import translate_boto_errors

    try:
        key_id, region = str(record["key_id"]), str(record["region"])
        blob = base64.b64decode(record["ciphertext"], validate=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise IntegrityError(f"key wrapper {record.get('id', '?')} is malformed: {exc}") from None
    require_usable(describe(key_id, region), f"unlocking with key wrapper {record['id']}")
    with translate_boto_errors(f"decrypting key wrapper {record['id']} with KMS key {key_id}"):
        answer = _client(region).decrypt(CiphertextBlob=blob, KeyId=key_id,
                                         EncryptionContext=_context(vault_id, str(record["id"])))
    return answer["Plaintext"]

"""Key wrappers: unlocking a vault with any of them, and checking, adding, removing, rotating them.

A vault's random master key is stored only wrapped, under `keys/<wrapper-id>`: by a passphrase
(scrypt) or by an AWS KMS key (`seawall.kms`). Any one wrapper unlocks the vault; data is never
re-encrypted when wrappers change.

- `unlock` tries the passphrase wrappers first (no network: `wal-push` stays fast), then the KMS
  wrappers; when none opens, one line says why for each kind (wrong passphrase; KMS key disabled,
  denied, not found).
- `check_wrappers` lists every wrapper with its kind, key id and region, and whether it can unlock
  the vault now (a KMS key: `DescribeKey` state, then a real `Decrypt` compared with the open
  master key). The readiness report's `encrypted-with-valid-key` control builds on it.
- `rotate` re-wraps the same master key (a new passphrase, or KMS `Encrypt` again, optionally under
  another key), writing the new wrapper before it deletes the old one.
- `remove` never removes the last wrapper proven usable.

Example:
    ```python
    from seawall.vault import open_vault
    from seawall.wrappers import add_kms, check_wrappers
    vault = open_vault("s3://backups/www?region=eu-west-1", passphrase)
    add_kms(vault, "arn:aws:kms:eu-west-1:111122223333:key/...")
    for c in check_wrappers(vault, passphrase):
        print(c.id, c.kind, c.key_id, c.usable, c.detail)
    ```
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from seawall.crypto import (
    Keyring,
    same_master,
    unwrap_with_kms,
    unwrap_with_passphrase,
    wrap_with_kms,
    wrap_with_passphrase,
)
from seawall.errors import AuthError, ConfigError, IntegrityError, RetryableError, SeawallError

if TYPE_CHECKING:
    from seawall.vault import Vault

_PASS_HINT = "set SEAWALL_PASSPHRASE or pass --passphrase-file FILE"


@dataclass(frozen=True)
class WrapperCheck:
    """One key wrapper and whether it can unlock the vault now.

    `usable` is True (proven: it opened the master key just now), False (it cannot: the reason is
    in `detail`) or None (not testable here: a passphrase wrapper whose passphrase we do not have).
    """

    id: str
    kind: str
    key_id: str | None
    region: str | None
    created: str | None
    usable: bool | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- unlocking ---------------------------------------------------------------------------------
def unlock(records: list[dict[str, Any]], passphrase: str | None, vault_id: str, where: str) -> tuple[Keyring, str]:
    """The keyring and the id of the wrapper that opened it; a one-line error when none does."""
    phrase = [r for r in records if r["kind"] == "passphrase"]
    kms = [r for r in records if r["kind"] == "kms"]
    malformed = 0
    for record in phrase if passphrase else []:
        try:
            keyring = unwrap_with_passphrase(record, passphrase, vault_id)
        except IntegrityError:  # one damaged wrapper must not lock out the others
            malformed += 1
            continue
        if keyring is not None:
            return keyring, record["id"]
    failures: list[SeawallError] = []
    for record in kms:
        try:
            return unwrap_with_kms(record, vault_id), record["id"]
        except RetryableError:
            raise  # KMS unreachable or throttled: retrying may unlock, so say that, not "refused"
        except SeawallError as exc:
            failures.append(exc)
    raise _unlock_error(where, records, phrase, passphrase, malformed, failures)


def _unlock_error(where: str, records: list, phrase: list, passphrase: str | None, malformed: int,
                  failures: list[SeawallError]) -> SeawallError:
    if not failures:
        if not passphrase:
            return AuthError("no passphrase given", hint=_PASS_HINT)
        damaged = f", {malformed} damaged" if malformed else ""
        return AuthError(f"wrong passphrase for vault {where} ({len(records)} key wrapper(s) tried{damaged})",
                         hint="check SEAWALL_PASSPHRASE or --passphrase-file")
    parts = [exc.message for exc in failures]
    if phrase:
        parts.insert(0, f"wrong passphrase ({len(phrase)} passphrase wrapper(s))" if passphrase
                     else f"no passphrase given for its {len(phrase)} passphrase wrapper(s)")
    first = failures[0]
    return type(first)(f"cannot unlock vault {where}: " + "; ".join(parts),
                       hint=first.hint or "unlock with another key wrapper")


# ---- checking ----------------------------------------------------------------------------------
def check_wrappers(vault: Vault, passphrase: str | None = None) -> list[WrapperCheck]:
    """Every key wrapper of `vault` with its kind, KMS key id and region, and whether it unlocks now."""
    return [_check(vault, record, passphrase) for record in vault.key_records()]


def _check(vault: Vault, record: dict[str, Any], passphrase: str | None) -> WrapperCheck:
    usable, detail = (_check_kms if record["kind"] == "kms" else _check_passphrase)(vault, record, passphrase)
    return WrapperCheck(id=record["id"], kind=record["kind"], key_id=record.get("key_id"),
                        region=record.get("region"), created=record.get("created"), usable=usable, detail=detail)


def _check_passphrase(vault: Vault, record: dict[str, Any], passphrase: str | None) -> tuple[bool | None, str]:
    if record["id"] == vault.unlocked_by:
        return True, "opened the vault just now"
    if not passphrase:
        return None, "not tested: no passphrase given"
    try:
        keyring = unwrap_with_passphrase(record, passphrase, vault.config.vault_id)
    except IntegrityError as exc:
        return False, exc.message
    if keyring is None:
        return None, "not tested: opens with another passphrase"
    if not same_master(keyring, vault.keyring):
        return False, "opens to another master key (a wrapper from another vault): data stays unreadable"
    return True, "opens with the given passphrase"


def _check_kms(vault: Vault, record: dict[str, Any], passphrase: str | None) -> tuple[bool | None, str]:
    try:
        keyring = unwrap_with_kms(record, vault.config.vault_id)
    except SeawallError as exc:
        return False, exc.message
    if not same_master(keyring, vault.keyring):
        return False, "decrypts to another master key (a wrapper from another vault)"
    return True, "key Enabled; Decrypt returned the vault's master key"


# ---- adding, rotating, removing -----------------------------------------------------------------
def _put(vault: Vault, record: dict[str, Any]) -> str:
    vault.store.put(f"keys/{record['id']}", json.dumps(record, indent=2).encode())
    return record["id"]


def add_kms(vault: Vault, key_id: str, region: str | None = None) -> dict[str, Any]:
    """Wrap the master key with a KMS key; returns the new wrapper's public fields.

    The key must live in the vault's own region when the vault has one (an S3 vault): a DR vault
    whose key sits in the failed region could not be unlocked when it is needed.
    """
    from seawall import kms

    key_region = kms.region_of(key_id, region or vault.store.region)
    if vault.store.region and key_region != vault.store.region:
        raise ConfigError(f"KMS key {key_id} is in {key_region}, the vault {vault.url} in {vault.store.region}",
                          hint=f"use a key (or a multi-Region replica key) in {vault.store.region}: "
                          "an outage of another region must not lock the vault")
    record = wrap_with_kms(vault.keyring, key_id, vault.config.vault_id, secrets.token_hex(8), key_region)
    _put(vault, record)
    return public(record)


def add_passphrase(vault: Vault, passphrase: str) -> dict[str, Any]:
    """Wrap the master key with another passphrase; returns the new wrapper's public fields."""
    record = wrap_with_passphrase(vault.keyring, passphrase, vault.config.vault_id, secrets.token_hex(8))
    _put(vault, record)
    return public(record)


def rotate(vault: Vault, wrapper_id: str, *, new_passphrase: str | None = None,
           kms_key: str | None = None) -> dict[str, Any]:
    """Re-wrap the same master key in a new wrapper, then delete `wrapper_id` (new one first)."""
    old = find(vault, wrapper_id)
    if old["kind"] == "kms":
        if new_passphrase:
            raise ConfigError(f"key wrapper {wrapper_id} is a KMS wrapper", hint="rotate it with --kms-key (or none)")
        new = add_kms(vault, kms_key or old["key_id"], None if kms_key else old.get("region"))
    else:
        if kms_key or not new_passphrase:
            raise ConfigError(f"key wrapper {wrapper_id} is a passphrase wrapper",
                              hint="give the new passphrase (--new-passphrase-file or SEAWALL_NEW_PASSPHRASE)")
        new = add_passphrase(vault, new_passphrase)
    vault.store.delete(f"keys/{wrapper_id}")
    return new


def remove(vault: Vault, wrapper_id: str, passphrase: str | None = None) -> list[WrapperCheck]:
    """Delete a wrapper unless no other wrapper is proven usable; returns the remaining checks."""
    find(vault, wrapper_id)
    others = [c for c in check_wrappers(vault, passphrase) if c.id != wrapper_id]
    if not any(c.usable for c in others):
        said = "; ".join(f"{c.id} ({c.kind}): {c.detail}" for c in others) or "it is the only one"
        raise ConfigError(f"refusing to remove key wrapper {wrapper_id}: no other wrapper is proven to unlock "
                          f"{vault.url} ({said})",
                          hint="add a wrapper first (`seawall key add`), or run with the passphrase of another")
    vault.store.delete(f"keys/{wrapper_id}")
    return others


def find(vault: Vault, wrapper_id: str) -> dict[str, Any]:
    for record in vault.key_records():
        if record["id"] == wrapper_id:
            return record
    known = ", ".join(r["id"] for r in vault.key_records())
    raise ConfigError(f"no key wrapper {wrapper_id!r} in {vault.url}", hint=f"known wrappers: {known}")


def public(record: dict[str, Any], keys: Iterable[str] = ("id", "kind", "key_id", "region", "created")) -> dict:
    """A wrapper's fields that are safe to print (never the wrapped key, salt or ciphertext)."""
    return {k: record[k] for k in keys if k in record}

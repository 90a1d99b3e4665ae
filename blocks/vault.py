"""The `VaultTarget` block: where a vault lives and how to unlock it.

Holds the vault URL, the passphrase and optional S3 credentials as secrets, and builds the object
store and the unlocked `Vault`. `.get_secret_value()` is called only inside those factories.
"""

from __future__ import annotations

import os
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from seawall.crypto import require_passphrase
from seawall.stores import ObjectStore, open_store, redact_url
from seawall.vault import Vault

PASSPHRASE_ENV = "SEAWALL_PASSPHRASE"


class VaultTarget(Block):
    """A seawall vault: a local folder, an S3 bucket/prefix in one region, or an SFTP path.

    Example:
        Load a stored vault and open it:
        ```python
        from blocks.vault import VaultTarget

        target = VaultTarget.load("BLOCK_NAME")
        vault = target.open_vault()
        ```
    """

    _block_type_name = "Seawall Vault"
    _block_type_slug = "seawall-vault"
    _description = "A seawall backup vault (file://, s3:// or sftp:// URL) and the secrets to unlock it."

    url: str = Field(
        description="Vault URL, e.g. file:///srv/vault or s3://bucket/prefix?region=eu-west-1.",
    )
    passphrase: SecretStr | None = Field(
        default=None,
        description="Passphrase that unwraps the vault key; when empty, SEAWALL_PASSPHRASE is used.",
    )
    aws_access_key_id: str | None = Field(
        default=None, description="AWS access key id for s3:// vaults; empty means the standard AWS chain."
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None, description="AWS secret access key for s3:// vaults."
    )
    aws_session_token: SecretStr | None = Field(default=None, description="AWS session token, if any.")

    def display(self) -> str:
        """The URL with credentials removed (safe to log)."""
        return redact_url(self.url)

    def _store_options(self) -> dict[str, Any]:
        if not self.url.startswith("s3://") or not self.aws_access_key_id:
            return {}
        return {
            "access_key_id": self.aws_access_key_id,
            "secret_access_key": self.aws_secret_access_key,
            "session_token": self.aws_session_token,
        }

    def get_store(self, *, create: bool = False) -> ObjectStore:
        """A new object store client for this vault."""
        return open_store(self.url, create=create, **self._store_options())

    def get_passphrase(self) -> str:
        if self.passphrase is not None:
            return self.passphrase.get_secret_value()
        return require_passphrase(os.environ.get(PASSPHRASE_ENV))

    def open_vault(self) -> Vault:
        """Open and unlock the vault: with the passphrase, or through a KMS key wrapper without one
        (raises AuthError when no wrapper opens)."""
        passphrase = self.passphrase.get_secret_value() if self.passphrase else os.environ.get(PASSPHRASE_ENV)
        return Vault.open(self.get_store(), passphrase or None)

    def init_vault(self, **options: Any) -> Vault:
        """Create the vault at this URL (refuses an existing one)."""
        passphrase = self.get_passphrase()
        return Vault.init(self.get_store(create=True), passphrase, **options)


def as_vault_target(vault: VaultTarget | str) -> VaultTarget:
    """Accept a block or a bare URL (the passphrase then comes from SEAWALL_PASSPHRASE)."""
    return vault if isinstance(vault, VaultTarget) else VaultTarget(url=vault)

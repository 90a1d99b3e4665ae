"""`VaultConfig`: where a vault lives and how to unlock it (the fields of the `VaultTarget` block).

A password in the URL (`scheme://user:password@host/...`) moves into the secret `url_password`
field on construction, and any other secret the URL holds (a password in an S3 `endpoint=` URL, a
`secret_key=` value) moves the whole URL into the secret `full_url` with `url` redacted, so the URL
itself can be shown, logged and stored as a flow parameter.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, model_validator

from seawall.crypto import require_passphrase
from seawall.redact import add_secret, add_url_secret
from seawall.stores import ObjectStore, open_store, redact_url
from seawall.vault import Vault

PASSPHRASE_ENV = "SEAWALL_PASSPHRASE"


class VaultConfig(BaseModel):
    """A seawall vault: a local folder, an S3 bucket/prefix in one region, or an SFTP path.

    Example:
        ```python
        from seawall.configs.vault import VaultConfig

        vault = VaultConfig(url="file:///srv/vault").open_vault()  # passphrase from SEAWALL_PASSPHRASE
        ```
    """

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
    url_password: SecretStr | None = Field(
        default=None, description="Password of the URL's user (taken out of the URL so it is never shown).")
    full_url: SecretStr | None = Field(
        default=None, description="The URL with the secrets of its query (an endpoint's password); set "
                                  "from `url`, which then shows them masked.")

    @model_validator(mode="after")
    def _password_out_of_url(self) -> VaultConfig:
        try:
            parts = urlsplit(self.url)
        except ValueError:
            return self  # reported when the store is opened
        userinfo, at, host = parts.netloc.rpartition("@")
        if at and ":" in userinfo:
            user, _, secret = userinfo.partition(":")
            if self.url_password is None:
                self.url_password = SecretStr(unquote(secret))
            self.url = parts._replace(netloc=f"{user}@{host}").geturl()
        if self.full_url is None and redact_url(self.url) != self.url:  # secrets in the query too
            add_url_secret(self.url)
            self.full_url = SecretStr(self.url)
            self.url = redact_url(self.url)
        add_secret(self.url_password)
        return self

    def display(self) -> str:
        """The URL with credentials removed (safe to log)."""
        return redact_url(self.url)

    def store_url(self) -> str:
        """The URL the store opens, with the password put back (never log it)."""
        if self.full_url is not None:
            return self._with_password(self.full_url.get_secret_value())
        return self._with_password(self.url)

    def _with_password(self, url: str) -> str:
        if self.url_password is None:
            return url
        parts = urlsplit(url)
        user, _, host = parts.netloc.rpartition("@")
        secret = quote(self.url_password.get_secret_value(), safe="")
        return parts._replace(netloc=f"{user}:{secret}@{host}").geturl()

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
        return open_store(self.store_url(), create=create, **self._store_options())

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


def as_vault_target(vault: VaultConfig | str) -> VaultConfig:
    """Accept a block, a `VaultConfig` or a bare URL (the passphrase then comes from SEAWALL_PASSPHRASE)."""
    return vault if isinstance(vault, VaultConfig) else VaultConfig(url=vault)

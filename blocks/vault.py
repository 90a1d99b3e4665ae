"""The `VaultTarget` block: where a vault lives and how to unlock it.

Its fields and factories (`open_vault()`, `get_store()`, `display()`) are `seawall.configs.vault.
VaultConfig`'s, so tasks take either; the block adds what Prefect needs to store it and show it
in the UI. `.get_secret_value()` is called only inside the factories.
"""

from __future__ import annotations

from prefect.blocks.core import Block

from seawall.configs.vault import PASSPHRASE_ENV, VaultConfig, as_vault_target

__all__ = ["PASSPHRASE_ENV", "VaultTarget", "as_vault_target"]


class VaultTarget(VaultConfig, Block):
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

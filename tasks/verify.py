"""Task for vault verification (`seawall verify`)."""

from __future__ import annotations

from seawall.configs.vault import VaultConfig
from seawall.progress import reporter
from seawall.verify import VerifyReport, verify_vault
from tasks.policy import RETRYABLE
from tasks.runtime import task


@task(name="verify-vault", **RETRYABLE)
def verify_vault_task(vault: VaultConfig, backup_id: str | None = None, read_data: bool = False) -> VerifyReport:
    """Check manifests and chunks; with `read_data`, decrypt and hash every chunk.

    Example:
        ```python
        report = verify_vault_task(VaultTarget.load("BLOCK_NAME"), read_data=True)
        ```
    """
    return verify_vault(vault.open_vault(), backup_id=backup_id, read_data=read_data,
                        progress=reporter("verify"))

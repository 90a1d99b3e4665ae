"""The vault verification flow: re-read manifests and chunks, publish verdicts, fail on problems."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seawall.configs.vault import as_vault_target
from seawall.verify import VerifyReport, raise_for_problems
from tasks.report import publish_verify_report
from tasks.runtime import flow
from tasks.verify import verify_vault_task

if TYPE_CHECKING:  # block types, resolved by tasks.runtime when the Prefect flow is built
    from blocks.vault import VaultTarget


@flow(name="verify-vault", stage="verify", log_prints=True)
def verify_vault_flow(vault: VaultTarget | str, backup_id: str | None = None, read_data: bool = False) -> VerifyReport:
    """Verify every backup (or one); the run fails if any backup does not verify.

    Example:
        ```python
        from flows.verify import verify_vault_flow
        verify_vault_flow("file:///backups/vault", read_data=True)
        ```
    """
    report = verify_vault_task(as_vault_target(vault), backup_id, read_data)
    publish_verify_report(report)
    return raise_for_problems(report)

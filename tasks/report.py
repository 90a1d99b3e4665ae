"""Tasks that publish run evidence as Prefect artifacts (tables and markdown in the UI)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from seawall.manifest import Manifest
from seawall.units import human_bytes
from tasks.runtime import create_markdown_artifact, create_table_artifact, task

if TYPE_CHECKING:  # seawall.verify (~10 ms of imports) is not on a backup's path
    from seawall.verify import VerifyReport


def artifact_key(*parts: str) -> str:
    """Artifact keys allow only lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]


@task(name="publish-backup-report")
def publish_backup_report(manifest: Manifest) -> None:
    """Publish a backup's sizes, dedup and duration.

    Example:
        ```python
        publish_backup_report(manifest)
        ```
    """
    s = manifest.stats
    rows = [
        {"metric": "status", "value": str(manifest.status)},
        {"metric": "files", "value": s.files},
        {"metric": "files unchanged", "value": s.files_unchanged},
        {"metric": "source bytes", "value": human_bytes(s.bytes_total)},
        {"metric": "bytes read", "value": human_bytes(s.bytes_read)},
        {"metric": "new chunk bytes (plain)", "value": human_bytes(s.bytes_new)},
        {"metric": "stored bytes added", "value": human_bytes(s.stored_bytes_new)},
        {"metric": "chunks new / total", "value": f"{s.chunks_new} / {s.chunks_total}"},
        {"metric": "duration s", "value": round(manifest.duration_s or 0, 3)},
        {"metric": "skipped", "value": len(s.skipped)},
    ]
    create_table_artifact(key=artifact_key("backup", manifest.dataset), table=rows,
                          description=f"Backup {manifest.backup_id} of {manifest.dataset}")


@task(name="publish-verify-report")
def publish_verify_report(report: VerifyReport) -> None:
    """Publish the per-backup verdicts of a vault verification.

    Example:
        ```python
        publish_verify_report(report)
        ```
    """
    rows = [{"dataset": b.dataset, "backup": b.backup_id, "status": b.status,
             "verdict": "ok" if b.ok else "FAILED", "problems": "; ".join(b.problems)[:500]}
            for b in report.backups]
    create_table_artifact(key="verify-vault", table=rows or [{"verdict": "no backups"}],
                          description=f"Verification of {report.vault} (read_data={report.read_data})")
    failed = [b for b in report.backups if not b.ok]
    lines = [f"# Vault verification: {'OK' if report.ok else 'FAILED'}", "",
             f"{len(report.backups)} backups, {len(failed)} failed, {report.chunks_read} chunks read."]
    lines += [f"- **{b.dataset}/{b.backup_id}**: {p}" for b in failed for p in b.problems[:5]]
    create_markdown_artifact(key="verify-vault-summary", markdown="\n".join(lines))

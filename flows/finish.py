"""The end every backup flow shares: the report artifact, the anomaly check (and its alert), the event.

One place, so a new backup flow cannot forget the `seawall.backup.completed` event that starts the
copy deployment, nor the ransomware check.
"""

from __future__ import annotations

from typing import Any

from deployments.events import emit_completed
from seawall.manifest import Manifest
from tasks.readiness import alert_suspicious_backup, check_backup_anomaly
from tasks.report import publish_backup_report


def finish_backup(manifest: Manifest, target: Any) -> Manifest:
    """The end every backup flow shares: report, anomaly check, completion event."""
    publish_backup_report(manifest)
    verdict = check_backup_anomaly(target, manifest)
    if verdict.suspicious:
        alert_suspicious_backup(manifest, verdict, target.display())
    emit_completed("backup", manifest, target.display())
    return manifest

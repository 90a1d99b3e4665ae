"""The flows as deployments run them: the library flows plus the hooks that emit seawall events.

Deployments point at these objects (`deployments/entrypoints.py:<name>`), so a nightly backup run
emits `seawall.backup.completed` (which triggers the copy deployment), a copy run emits
`seawall.copy.completed` (which triggers verification), without changing how the flows behave when
imported from Python or run by the CLI.

Example:
    ```python
    from deployments.entrypoints import nightly_backup_postgres
    nightly_backup_postgres.serve(name="nightly-shop", cron="0 2 * * *")
    ```
"""

from __future__ import annotations

from deployments.events import completion_hook
from flows.backup import backup_files, backup_postgres
from flows.cross_region_copy import cross_region_copy
from flows.readiness import readiness_report  # noqa: F401 - the readiness-report deployment's entrypoint
from flows.restore_verification import verify_restore
from flows.retention import apply_retention


def _emitting(flow, stage: str):
    """The flow with an on_completion hook that emits the stage's event (unless it already has one)."""
    hooks = list(flow.on_completion_hooks or [])
    if any(getattr(h, "__name__", "") == f"emit_{stage}_completed" for h in hooks):
        return flow
    return flow.with_options(on_completion=[*hooks, completion_hook(stage)])


nightly_backup_postgres = _emitting(backup_postgres, "backup")
nightly_backup_files = _emitting(backup_files, "backup")
copy_to_dr = _emitting(cross_region_copy, "copy")
verify_in_dr = _emitting(verify_restore, "verification")
retention = apply_retention

try:  # written concurrently by other engineers: deploy them when present
    from flows.restore_drill import restore_drill
except ImportError:  # pragma: no cover
    restore_drill = None
try:
    from flows.failover_drill import failover_drill
except ImportError:  # pragma: no cover
    failover_drill = None

"""The flows as deployments run them: Prefect flow objects built from seawall's flows.

Deployments point at these objects (`deployments/entrypoints.py:<name>`); Prefect's loader wants
real `prefect.Flow` objects, so each is the `.prefect` form of a `tasks.runtime` flow (importing
this module imports Prefect). The flows emit their own `seawall.*.completed` events and tag their
runs, so a deployment run, a CLI run with an API configured and a Python run behave the same: a
nightly backup run emits `seawall.backup.completed` (which triggers the copy deployment), a copy
run emits `seawall.copy.completed` (which triggers verification).

Example:
    ```python
    from deployments.entrypoints import nightly_backup_postgres
    nightly_backup_postgres.serve(name="nightly-shop", cron="0 2 * * *")
    ```
"""

from __future__ import annotations

from deployments.failures import describing_failures
from flows.backup import archive_mariadb_binlogs, backup_files, backup_mariadb, backup_postgres, backup_redis
from flows.cross_region_copy import cross_region_copy
from flows.readiness import readiness_report as _readiness_report
from flows.remote import backup_remote_files
from flows.restore_verification import verify_restore
from flows.retention import apply_retention

# Each is described: a failure names the failing task and the first error line (deployments/failures.py).
nightly_backup_postgres = describing_failures(backup_postgres.prefect)
nightly_backup_files = describing_failures(backup_files.prefect)
nightly_backup_mariadb = describing_failures(backup_mariadb.prefect)
nightly_backup_redis = describing_failures(backup_redis.prefect)
nightly_backup_remote_files = describing_failures(backup_remote_files.prefect)
archive_binlogs = describing_failures(archive_mariadb_binlogs.prefect)
copy_to_dr = describing_failures(cross_region_copy.prefect)
verify_in_dr = describing_failures(verify_restore.prefect)
retention = describing_failures(apply_retention.prefect)
readiness_report = _readiness_report.prefect
__all__ = ["archive_binlogs", "copy_to_dr", "nightly_backup_files", "nightly_backup_mariadb", "nightly_backup_postgres",
           "nightly_backup_redis", "nightly_backup_remote_files", "readiness_report", "retention", "verify_in_dr"]

try:  # written concurrently by other engineers: deploy them when present
    from flows.restore_drill import restore_drill as _restore_drill

    restore_drill = describing_failures(_restore_drill.prefect)
except ImportError:  # pragma: no cover
    restore_drill = None
try:
    from flows.failover_drill import failover_drill as _failover_drill

    failover_drill = describing_failures(_failover_drill.prefect)
except ImportError:  # pragma: no cover
    failover_drill = None

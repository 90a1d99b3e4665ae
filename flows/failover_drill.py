"""The failover drill: promote the standby, switch traffic, check, measure, fail back, report.

preflight → heartbeat → fence primary → promote standby → switch traffic → checks → measure RTO/RPO →
fail back (pg_rewind / re-clone, roles switched back) → final health → report.

A failed promotion or failed checks take the abort path: the original primary is restored and the
report says so. The drill state is saved after every step under the drill id (in the vault when
one is given, else in a local state folder): a rerun with the same id continues where the last run
stopped and never promotes twice. A missed RTO/RPO objective fails the run with a report whose
steps all passed and whose status is OBJECTIVE_MISSED.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from seawall.configs.drill import DrillObjectivesConfig
from seawall.configs.vault import as_vault_target
from seawall.drill.state import (
    DirStateStore,
    DrillFailed,
    DrillReport,
    DrillState,
    ObjectiveMissed,
    StateStore,
    VaultStateStore,
    load_report,
    load_state,
    new_drill_id,
)
from seawall.drill.steps import Drill, Objectives
from seawall.errors import ConfigError, SeawallError
from tasks.drill import (
    abort_task,
    checks_task,
    fail_back_task,
    fence_task,
    final_health_task,
    heartbeat_task,
    measure_task,
    preflight_task,
    promote_task,
    report_task,
    switch_task,
)
from tasks.runtime import flow, label_run

if TYPE_CHECKING:  # block types, resolved by tasks.runtime when the Prefect flow is built
    from blocks.drill import DrillObjectives, PostgresNode, TrafficSwitchBlock
    from blocks.vault import VaultTarget


@flow(name="failover-drill", stage="drill", log_prints=True)
def failover_drill(primary: PostgresNode, standby: PostgresNode, switch: TrafficSwitchBlock | None = None,
                   objectives: DrillObjectives | None = None, fail_back: bool = True, drill_id: str | None = None,
                   vault: VaultTarget | str | None = None, dataset: str | None = None,
                   checks: list[str] | None = None, fence_mode: str = "fast") -> DrillReport:
    """Run (or resume) a failover drill and return its scorecard.

    Args:
        primary: the current primary (fenced during the drill, primary again after fail-back).
        standby: its streaming standby (promoted during the drill).
        switch: where client traffic goes (Route53 record or a command); None: no switch.
        objectives: RTO/RPO objectives (default 300 s / 60 s).
        fail_back: restore the original topology afterwards.
        drill_id: resume this drill (default: a new id).
        vault: where the drill state and report are kept (also: preflight's verified-backup check).
        dataset: the dataset whose newest verified backup preflight looks for.
        checks: checks on the new primary: `smoke` and/or `amcheck` (default both).
        fence_mode: how the primary is stopped: `fast` or `immediate`.

    Returns:
        The PASSED report. Otherwise raises DrillFailed / ObjectiveMissed (with `.report`).

    Example:
        ```python
        from blocks.drill import PostgresNode
        from flows.failover_drill import failover_drill
        failover_drill(PostgresNode.load("db-1"), PostgresNode.load("db-2"))
        ```
    """
    label_run(dataset)
    drill = open_drill(primary, standby, switch, objectives, drill_id, vault, dataset, checks, fence_mode)
    if drill.state.status != "RUNNING":
        return finished(drill)
    try:
        preflight_task(drill)                                   # 1
        heartbeat_task(drill)                                   # 2
        fence_task(drill)                                       # 3
        try:
            promote_task(drill)                                 # 4
            switch_task(drill)                                  # 5
            checks_task(drill)                                  # 6
        except Exception as exc:
            abort_task(drill, getattr(exc, "message", None) or str(exc))
            raise
        measure_task(drill)                                     # 7
        fail_back_task(drill, fail_back)                        # 8
        final_health_task(drill, fail_back)                     # 9
    except Exception as exc:
        fail(drill, exc)
        raise_failed(report_task(drill), exc)
    finally:
        close(drill)
    return verdict(report_task(drill))                          # 10


# ---- helpers (no SDK calls: the steps live in tasks/drill.py and seawall/drill) ----------------

def open_drill(primary: PostgresNode, standby: PostgresNode, switch: TrafficSwitchBlock | None,
               objectives: DrillObjectives | None, drill_id: str | None, vault: VaultTarget | str | None,
               dataset: str | None, checks: list[str] | None, fence_mode: str) -> Drill:
    """Build the drill: nodes, switch, state store, and the state (new, or loaded for re-entry)."""
    if fence_mode not in ("fast", "immediate"):
        raise ConfigError(f"fence_mode must be fast or immediate, not {fence_mode!r}")
    objectives = objectives or DrillObjectivesConfig()  # the Block is a type-checking name only
    store: StateStore = DirStateStore()
    backup_age = None
    if vault is not None:
        v = as_vault_target(vault).open_vault()
        store = VaultStateStore(v)
        if dataset:
            backup_age = _backup_age(v, dataset)
    state = load_state(store, drill_id) if drill_id else None
    if state is None:
        state = DrillState(drill_id=drill_id or new_drill_id(), primary=primary.name, standby=standby.name,
                           started_at=datetime.now(UTC))
    elif (state.primary, state.standby) != (primary.name, standby.name):
        raise ConfigError(f"drill {state.drill_id} was run with {state.primary}/{state.standby}, not "
                          f"{primary.name}/{standby.name}")
    elif state.status == "FAILED" and not state.done("preflight"):
        print(f"drill {state.drill_id} stopped in preflight before touching anything: running it again")
        state.status, state.error = "RUNNING", None
        state.steps.pop("preflight", None)
    else:
        print(f"resuming drill {state.drill_id}: done so far: {', '.join(s for s in state.steps if state.done(s))}")
    if primary.name == standby.name:
        raise ConfigError("primary and standby need different names")
    endpoints = {n.name: n.endpoint or n.get_pgconn().params().get("host", n.name) for n in (primary, standby)}
    return Drill(primary.get_node(), standby.get_node(), state, store,
                 Objectives(objectives.rto_seconds, objectives.rpo_seconds,
                            objectives.max_verified_backup_age_seconds if dataset else None),
                 switch.get_switch() if switch else None, endpoints, checks or ["smoke", "amcheck"], fence_mode,
                 backup_age)


def _backup_age(vault, dataset: str):
    from seawall.ledger import latest_verified

    def age() -> float | None:
        report = latest_verified(vault, dataset)
        if report is None or report.backup_started_at is None:
            return None
        return (datetime.now(UTC) - report.backup_started_at).total_seconds()

    return age


def fail(drill: Drill, exc: BaseException) -> None:
    if drill.state.status == "RUNNING":
        drill.state.status = "FAILED"
    drill.state.error = drill.state.error or getattr(exc, "message", None) or str(exc)
    drill.save()


def close(drill: Drill) -> None:
    if drill.writer is not None:
        drill.writer.stop()
    drill.primary.close()
    drill.standby.close()


def finished(drill: Drill) -> DrillReport:
    """A rerun of a drill that already ended returns (or raises) its stored verdict."""
    report = load_report(drill.store, drill.state.drill_id)
    if report is None:
        raise ConfigError(f"drill {drill.state.drill_id} ended {drill.state.status} but has no report")
    print(f"drill {report.drill_id} already ended: {report.status}")
    return verdict(report)


def raise_failed(report: DrillReport, cause: BaseException | None = None) -> None:
    """Raise DrillFailed with the report; bad input keeps its exit code (2)."""
    raise DrillFailed(f"failover drill {report.drill_id} {report.status}: {report.error}", report=report,
                      exit_code=cause.exit_code if isinstance(cause, SeawallError) else None)


def verdict(report: DrillReport) -> DrillReport:
    m = report.measurements
    summary = (f"RTO {m.rto_s}s (objective {report.rto_objective_s}s), RPO {m.rpo_s}s / "
               f"{m.rpo_lost_transactions} tx lost (objective {report.rpo_objective_s}s)")
    if report.status == "PASSED":
        print(f"failover drill {report.drill_id} PASSED: {summary}")
        return report
    if report.status == "OBJECTIVE_MISSED":
        raise ObjectiveMissed(f"failover drill {report.drill_id}: every step passed but an objective was "
                              f"missed: {summary}", report=report)
    raise_failed(report)
    return report

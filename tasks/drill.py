"""Tasks of the failover drill: one per step, thin calls into `seawall.drill.steps`.

Each task records its step in the drill state (so a rerun skips it) and retries only transient
errors; every step is idempotent (a stop of a stopped server, a promotion of a writable one, an
UPSERT of the same value are no-ops), so a retry after a crash is safe.
"""

from __future__ import annotations

from datetime import UTC, datetime

from seawall.drill import steps
from seawall.drill.state import STEPS, DrillReport, judge, save_report
from seawall.drill.steps import Drill, run_step
from tasks.policy import RETRYABLE
from tasks.report import artifact_key
from tasks.runtime import NO_CACHE, create_markdown_artifact, create_table_artifact, task

_TASK = dict(RETRYABLE, cache_policy=NO_CACHE)  # inputs hold live connections: never hash them
_ONCE = dict(cache_policy=NO_CACHE)


@task(name="drill-preflight", **_ONCE)
def preflight_task(drill: Drill) -> str:
    """Collected checks on both nodes; a critical failure stops the drill before anything is touched.

    Example:
        ```python
        preflight_task(drill)
        ```
    """
    return run_step(drill, "preflight", steps.preflight).detail


@task(name="drill-heartbeat", **_TASK)
def heartbeat_task(drill: Drill) -> str:
    """Start committing heartbeats on the primary (restarted on re-entry until the fence is done).

    Example:
        ```python
        heartbeat_task(drill)
        ```
    """
    if drill.state.done("fence"):
        return "fence already done: no heartbeats needed"
    drill.state.steps.pop("heartbeat", None)
    return run_step(drill, "heartbeat", steps.start_heartbeat).detail


def _step_task(step: str, fn, *, retry: bool = True):
    options = _TASK if retry else _ONCE

    @task(name=f"drill-{step.replace('_', '-')}", **options)
    def _run(drill: Drill) -> str:
        return run_step(drill, step, fn).detail

    _run.__doc__ = f"Drill step `{step}` (recorded in the drill state; skipped on re-entry when done)."
    return _run


fence_task = _step_task("fence", steps.fence)
promote_task = _step_task("promote", steps.promote)
checks_task = _step_task("checks", steps.checks, retry=False)
measure_task = _step_task("measure", steps.measure)


@task(name="drill-switch", **_TASK)
def switch_task(drill: Drill) -> str:
    """Point traffic at the new primary (Route53 UPSERT or a command).

    Example:
        ```python
        switch_task(drill)
        ```
    """
    return run_step(drill, "switch", lambda d: steps.switch_to(d, d.standby)).detail


@task(name="drill-fail-back", **_TASK)
def fail_back_task(drill: Drill, enabled: bool) -> str:
    """CHECKPOINT, pg_rewind (or re-clone) the old primary, switch roles back.

    Example:
        ```python
        fail_back_task(drill, True)
        ```
    """
    if not enabled:
        return run_step(drill, "fail_back", lambda d: "skipped (fail_back=False): the standby stays primary").detail
    return run_step(drill, "fail_back", steps.fail_back).detail


@task(name="drill-final-health", **_TASK)
def final_health_task(drill: Drill, fail_back_done: bool) -> str:
    """The expected primary accepts writes and its standby streams with zero lag.

    Example:
        ```python
        final_health_task(drill, True)
        ```
    """
    return run_step(drill, "final_health", lambda d: steps.final_health(d, fail_back_done)).detail


@task(name="drill-abort", **_ONCE)
def abort_task(drill: Drill, why: str) -> str:
    """Restore the original primary after a failed promotion or failed checks.

    Example:
        ```python
        abort_task(drill, "checks failed")
        ```
    """
    return steps.abort(drill, why)


def build_report(drill: Drill) -> DrillReport:
    st, obj = drill.state, drill.objectives
    status, rto_met, rpo_met = judge(st, obj.rto_seconds, obj.rpo_seconds)
    return DrillReport(drill_id=st.drill_id, primary=st.primary, standby=st.standby, started_at=st.started_at,
                       finished_at=datetime.now(UTC), steps=[st.steps[s] for s in STEPS if s in st.steps],
                       preflight=st.preflight, checks=st.checks, measurements=st.measurements,
                       rto_objective_s=obj.rto_seconds, rpo_objective_s=obj.rpo_seconds, rto_met=rto_met,
                       rpo_met=rpo_met, promotions=st.promotions, notes=st.notes, status=status, error=st.error)


@task(name="drill-report", **_TASK)
def report_task(drill: Drill) -> DrillReport:
    """Build the scorecard, store it next to the state, publish it as Prefect artifacts.

    Example:
        ```python
        report = report_task(drill)
        ```
    """
    report = build_report(drill)
    drill.state.status = report.status
    drill.save()
    save_report(drill.store, report)
    publish(report)
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def publish(report: DrillReport) -> None:
    m = report.measurements
    rows = [{"step": s.name, "ok": s.ok, "seconds": s.seconds, "detail": s.detail[:300]} for s in report.steps]
    create_table_artifact(key=artifact_key("drill", report.drill_id), table=rows or [{"step": "none"}],
                          description=f"Failover drill {report.drill_id}: {report.status}")
    lines = [f"# Failover drill {report.drill_id}: **{report.status}**", "",
             "| measure | value | objective | met |", "|---|---|---|---|",
             f"| RTO (fence → checks passed) | {_fmt(m.rto_s)} s | {report.rto_objective_s} s | {report.rto_met} |",
             f"| RTO (fence → writable) | {_fmt(m.rto_writable_s)} s | | |",
             f"| RPO | {_fmt(m.rpo_s)} s, {m.rpo_lost_transactions} tx lost of {m.heartbeats_committed} | "
             f"{report.rpo_objective_s} s | {report.rpo_met} |", ""]
    lines += [f"- {n}" for n in report.notes]
    create_markdown_artifact(key=artifact_key("drill-summary", report.drill_id), markdown="\n".join(lines))

"""`seawall demo`: the whole pipeline on embedded defaults, with nothing to configure.

    throwaway PostgreSQL (realistic shop data, WAL archived into vault "region-a")
      → heartbeat → logical + physical backups → a day of changes → second logical backup (dedup)
      → cross-region copy to vault "region-b" → restore verification from region-b (RTO, RPO)
      → restore drill (when `flows.restore_drill` is installed) → summary
      → readiness report (a policy file for the two vaults; flow + artifact) → runbook for demo-shop

Everything lives in one temporary folder: the two vaults (local folders standing for two regions)
and the cluster. With no Prefect API configured the flows run in plain mode (no server, no Prefect
import: `tasks/mode.py`); with one (`PREFECT_API_URL` or the active profile), every step is a flow
run there, with its artifacts and events, to explore in the UI. The cluster is always removed;
without `--keep`, everything else too.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seawall.cli.common import PASSPHRASE_ENV, run_flow
from seawall.cli.output import State, console
from seawall.cli.runtime import start_runtime
from seawall.units import human_bytes, human_seconds

DEMO_PASSPHRASE = "seawall-demo-passphrase (not a secret: demo vaults only)"
SCALE_MB = 30
DATABASE = "shop"
LOGICAL, PHYSICAL = "demo-shop", "demo-shop-physical"


@dataclass
class DemoRun:
    """Where the demo keeps things, and what each step produced (for the summary)."""

    base: Path
    vault_a: str = ""
    vault_b: str = ""
    results: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    prefect: bool = False


def run_demo(*, keep: bool = False) -> None:
    """Run the demo pipeline end to end; raises on the first failed step (after cleaning up).

    Args:
        keep: Keep the vaults (the cluster is removed in every case).

    Example:
        ```python
        from seawall.cli.demo import run_demo
        run_demo(keep=True)
        ```
    """
    from seawall.postgres.cluster import make_private_dir

    prefect = start_runtime(State.verbose or State.debug)  # an unreachable API fails here, at once
    run = DemoRun(base=make_private_dir("seawall-demo-"), prefect=prefect)  # owned by the postgres OS user
    _prepare_environment(run)
    console.print(f"[bold]seawall demo[/] in {run.base}")
    console.print("flows run as Prefect flow runs on the configured API" if run.prefect
                  else "flows run without a Prefect server (no API configured: plain mode)")
    cluster = None
    clock = time.monotonic()
    try:
        cluster = _start_cluster(run)
        _pipeline(run, cluster)
        run.seconds["total"] = time.monotonic() - clock
        _summary(run)
        _readiness(run)
    finally:
        if cluster is not None:
            cluster.remove()
        _cleanup(run, keep)


def _prepare_environment(run: DemoRun) -> None:
    """Embedded defaults: the demo passphrase for both vaults."""
    os.environ[PASSPHRASE_ENV] = DEMO_PASSPHRASE
    os.environ.pop("SEAWALL_DEST_PASSPHRASE", None)  # region-b shares the demo passphrase


def _start_cluster(run: DemoRun):
    """A fresh cluster whose archive_command pushes WAL into region-a, filled with shop data."""
    from seawall.crypto import ScryptParams
    from seawall.postgres import datagen
    from seawall.postgres.binaries import chown_to_server_user
    from seawall.postgres.cluster import LocalCluster
    from seawall.vault import init_vault

    region_a = run.base / "region-a"
    region_a.mkdir(mode=0o700)
    chown_to_server_user(region_a)
    run.vault_a = f"file://{region_a}"
    run.vault_b = f"file://{run.base / 'region-b'}"
    passfile = run.base / "passphrase"
    passfile.write_text(DEMO_PASSPHRASE)
    chown_to_server_user(passfile)
    passfile.chmod(0o600)
    # A lighter key-derivation cost than the default: wal-push unlocks the key once per segment.
    init_vault(run.vault_a, DEMO_PASSPHRASE, scrypt=ScryptParams(n=2**14))
    seawall_bin = Path(sys.executable).with_name("seawall")
    archive = f"{seawall_bin} wal-push %p --vault {run.vault_a} --passphrase-file {passfile}"
    cluster = LocalCluster.create(run.base, settings={
        "archive_mode": "on", "archive_command": archive, "archive_timeout": "60s", "wal_level": "replica",
        "max_wal_size": "256MB"})
    cluster.start()
    step = _step(f"PostgreSQL on port {cluster.port}: generating ~{SCALE_MB} MB of shop data")
    cluster.execute(f"CREATE DATABASE {DATABASE}")
    run.results["rows"] = datagen.generate(cluster.conninfo(DATABASE), SCALE_MB)
    run.results["db_bytes"] = cluster.execute(f"SELECT pg_database_size('{DATABASE}')")[0][0]
    run.seconds["datagen"] = step()
    return cluster


def _pipeline(run: DemoRun, cluster) -> None:
    """backup → copy → verify → drill, each a Prefect flow run."""
    from flows.backup import backup_postgres
    from flows.cross_region_copy import cross_region_copy
    from flows.restore_verification import postgres_heartbeat, verify_restore
    from seawall.postgres import datagen

    dsn = cluster.conninfo(DATABASE)
    step = _step("heartbeat + logical backup (pg_dump, one snapshot) into region-a")
    run_flow(postgres_heartbeat, source=dsn)
    run.results["logical1"] = run_flow(backup_postgres, source=dsn, vault=run.vault_a, mode="logical",
                                       dataset=LOGICAL)
    run.seconds["logical1"] = step()
    step = _step("physical backup (pg_basebackup + WAL archive) into region-a")
    run.results["physical"] = run_flow(backup_postgres, source=dsn, vault=run.vault_a, mode="physical",
                                       dataset=PHYSICAL)
    run.seconds["physical"] = step()
    step = _step("a day of changes (1% of rows), heartbeat, second logical backup")
    run.results["changed_rows"] = datagen.mutate(dsn, 0.01)
    run_flow(postgres_heartbeat, source=dsn)
    run.results["logical2"] = run_flow(backup_postgres, source=dsn, vault=run.vault_a, mode="logical",
                                       dataset=LOGICAL)
    run.seconds["logical2"] = step()
    _archive_current_wal(cluster)
    step = _step("cross-region copy region-a → region-b (only what region-b lacks, verified there)")
    run.results["copy"] = run_flow(cross_region_copy, source_vault=run.vault_a, dest_vault=run.vault_b,
                                   init_dest=True)
    run.seconds["copy"] = step()
    step = _step("restore verification from region-b (scratch cluster, checks, RTO/RPO)")
    run.results["verified"] = run_flow(verify_restore, vault=run.vault_b, dataset=LOGICAL)
    run.seconds["verify"] = step()
    _restore_drill(run)


def _restore_drill(run: DemoRun) -> None:
    """Run `flows.restore_drill.restore_drill` on region-b if that flow is installed."""
    try:
        from flows import restore_drill as module
    except ImportError:
        run.results["drill"] = "not installed (flows/restore_drill.py)"
        return
    drill = getattr(module, "restore_drill", None)
    if drill is None:
        run.results["drill"] = "flows.restore_drill has no restore_drill flow"
        return
    params = inspect.signature(getattr(drill, "fn", drill)).parameters
    kwargs = {k: v for k, v in {"vault": run.vault_b, "dataset": PHYSICAL}.items() if k in params}
    step = _step("restore drill in region-b (physical backup, point in time)")
    try:
        run.results["drill"] = run_flow(drill, **kwargs)
    except Exception as exc:  # a failed drill is a finding to report, not a reason to hide the rest
        run.results["drill"] = f"[red]FAILED[/]: {str(exc).splitlines()[0]}"
    run.seconds["drill"] = step()


def _archive_current_wal(cluster, timeout: float = 60) -> None:
    """Switch WAL and wait until it is archived, so the copy carries every segment written so far."""
    segment = cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        archived = cluster.execute("SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
        if archived and archived >= segment:
            return
        time.sleep(0.2)


def _step(title: str):
    """Print a step title; returns a function that prints and returns the step's duration."""
    console.print(f"[cyan]→[/] {title}")
    started = time.monotonic()

    def done() -> float:
        seconds = time.monotonic() - started
        console.print(f"  done in {human_seconds(seconds)}")
        return seconds

    return done


def _summary(run: DemoRun) -> None:
    r = run.results
    first, second, physical, copy, report = r["logical1"], r["logical2"], r["physical"], r["copy"], r["verified"]
    console.print("\n[bold]summary[/]")
    console.print(f"source: database {DATABASE}, {human_bytes(r['db_bytes'])} on disk, "
                  f"{sum(r['rows'].values()):,} rows in {len(r['rows'])} tables")
    for label, m in (("logical backup 1", first), ("physical backup", physical),
                     ("logical backup 2", second)):
        s = m.stats
        console.print(f"{label}: {m.backup_id}, {human_bytes(s.bytes_total)} read → "
                      f"{human_bytes(s.stored_bytes_new)} new in region-a, {human_seconds(m.duration_s)}")
    total, new = second.stats.bytes_total, second.stats.stored_bytes_new
    console.print(f"dedup: after {r['changed_rows']:,} changed rows, backup 2 stored "
                  f"{human_bytes(new)} of {human_bytes(total)} ({100 * (1 - new / max(total, 1)):.1f}% deduplicated)")
    stats = copy.stats
    console.print(f"cross-region copy: {len(copy.backups)} backups, {stats.get('objects_copied', 0)} objects, "
                  f"{human_bytes(stats.get('bytes_copied', 0))} to region-b")
    console.print(f"restore verification ({report.status}) of {report.backup_id} from region-b: "
                  f"{len(report.checks)} checks passed")
    console.print(f"[bold]measured RTO[/]: {report.rto_restore_s:.2f} s restore, "
                  f"{report.rto_verified_s:.2f} s restored and verified")
    rpo = f"{report.rpo_s:.2f} s" if report.rpo_s is not None else "unknown"
    console.print(f"[bold]measured RPO[/]: {rpo} (source: {report.rpo_source or 'none'})")
    drill = r.get("drill")
    console.print(f"restore drill: {drill if isinstance(drill, str) else _describe(drill)}")
    console.print(f"reports: {run.vault_b}/verifications/{LOGICAL}/ (sealed; `seawall status --vault "
                  f"{run.vault_b}`)" + (" and as Prefect artifacts" if run.prefect else ""))
    console.print(f"total: {human_seconds(run.seconds['total'])}")


DEMO_POLICY = """version: 1
vaults:
  region-a: {{url: "{vault_a}", region: region-a}}
  region-b: {{url: "{vault_b}", role: dr, region: region-b}}
datasets:
  {logical}:
    postgres: {{dsn_env: DEMO_SHOP_DSN, mode: logical}}
    vault: region-a
    copy_to: region-b
    rpo: 26h
    rto: 30m
    tier: tier-1
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
  {physical}:
    postgres: {{dsn_env: DEMO_SHOP_DSN, mode: physical}}
    vault: region-a
    copy_to: region-b
    rpo: 26h
    rto: 1h
    tier: tier-1
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
readiness:
  contacts: [{{name: Demo on-call, role: incident commander, reach: "+00 000 000 000"}}]
  escalation: ["the database team after 15 minutes", "the head of platform after 1 hour"]
"""
RUNBOOK_BEGIN, RUNBOOK_END = "----- runbook demo-shop -----", "----- end of runbook -----"


def _readiness(run: DemoRun) -> None:
    """Write a policy file for the demo's vaults, publish the readiness report, print it and a runbook."""
    from datetime import UTC, datetime

    from rich.markdown import Markdown

    from flows.readiness import readiness_report
    from seawall.policy import load_policy
    from seawall.readiness.collect import collect
    from seawall.readiness.report import to_markdown
    from seawall.readiness.runbook import render

    policy_file = run.base / "seawall.yaml"
    policy_file.write_text(DEMO_POLICY.format(vault_a=run.vault_a, vault_b=run.vault_b, logical=LOGICAL,
                                              physical=PHYSICAL))
    report = run_flow(readiness_report, policy_file=str(policy_file), fail_on_failed=False)
    console.print("\n[bold]readiness report[/] (also the Prefect artifact `readiness-report`; on a laptop, local "
                  "folders are neither offsite nor immutable: those controls fail, as they should)")
    console.print(Markdown(to_markdown(report)))
    policy = load_policy(policy_file)
    now = datetime.now(UTC)
    runbook = render(policy, LOGICAL, collect(policy, [LOGICAL], now), now, str(policy_file))
    (run.base / f"runbook-{LOGICAL}.md").write_text(runbook)
    sys.stdout.write(f"\n{RUNBOOK_BEGIN}\n{runbook}{RUNBOOK_END}\n")
    sys.stdout.flush()


def _describe(result: Any) -> str:
    for attr in ("status", "verdict"):
        if hasattr(result, attr):
            extra = [f"{k} {getattr(result, k)}" for k in ("rto_restore_s", "rpo_s") if hasattr(result, k)]
            return ", ".join([str(getattr(result, attr)), *extra])
    return "done"


def _cleanup(run: DemoRun, keep: bool) -> None:
    if not keep:
        shutil.rmtree(run.base, ignore_errors=True)
        return
    console.print(f"\nkept: vaults {run.vault_a} and {run.vault_b}")
    console.print(f"  explore: SEAWALL_PASSPHRASE='{DEMO_PASSPHRASE}' seawall status --vault {run.vault_b}")
    if run.prefect:
        console.print("  the flow runs, artifacts and events are in the Prefect UI of the configured API")

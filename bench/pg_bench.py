"""PostgreSQL benchmark: seawall against pg_dump and pgBackRest 2.45, each baseline measured in the same run.

    uv run python -m bench.pg_bench --size-mb 1000 --reps 3 --json bench/out/pg-1g.json
    uv run python -m bench.pg_bench --size-mb 100 --reps 1            # a quick smoke run

One throwaway primary (Debian PostgreSQL 15 binaries, run as the `postgres` OS user, data checksums
on, fsync on) holds a realistic database (`seawall.postgres.datagen`: text/json/numeric/bytea with
indexes, ~2-3x compressible). Its `archive_command` pushes every WAL segment through
`seawall wal-push` into a seawall vault *and* through `pgbackrest archive-push` into a local
pgBackRest repository (zstd, process-max=2), so both tools restore from their own WAL archive.

Every seawall operation runs in its own process (`--child`), so its wall time (interpreter start,
imports and key unwrapping included) and its peak RSS are its own. Baselines run the same way.

a. logical backup: `backup_logical(jobs=2)` into a fresh file:// vault vs `pg_dump -Fd -Z0 -j2`
   into a local folder (same disk); target <= 1.15x.
b. a second logical backup after `mutate(fraction=0.01)`: stored bytes <= 5% of the first's.
c. physical backup: `backup_physical` into a fresh vault (the archive is switched to it first, so
   the backup's WAL lands there) vs `pgbackrest backup --type=full`; target <= 1.0x.
d. PITR restore to latest into a new data directory, until the server accepts a write, after
   `--replay-mb` of WAL written since the backups: `restore_physical` vs `pgbackrest restore` plus
   starting the server and waiting for the end of recovery; target <= 1.0x.
e. archive keep-up: `archive_command` = `seawall wal-push` only; `pgbench -c 4 -j 2 -T 60` on a
   pgbench database (scale `--pgbench-scale`) next to the realistic one; pg_stat_archiver's
   failed_count must be 0 and the archiver <= 4 segments behind at the end.
f. peak RSS of every seawall process: < 300 MB.

Timed repetitions alternate which tool goes first and start after `sync` (no writeback from the
previous step). The data is in the page cache (23 GiB RAM), as it is for both tools.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.pg_common import (
    MB,
    PASSPHRASE,
    SEAWALL_BIN,
    Measured,
    PgBackRest,
    Primary,
    du,
    measure,
    new_root,
    private_dir,
    remove_cluster_dir,
    restored_cluster,
    run_child,
    segno,
    settle,
    start_primary,
    vm_hwm,
)
from seawall.postgres.cluster import free_port
from seawall.postgres.recovery_modes import wait_for_end

DB = "shop"
PGB_DB = "pgb"
RSS_LIMIT = 300 * MB
TARGETS = {"logical": 1.15, "incremental": 0.05, "physical": 1.0, "restore": 1.0, "behind": 4}


# ---- children: each writes one JSON report --------------------------------------------------------
def _open(url: str):
    from seawall.vault import open_vault

    return open_vault(url, PASSPHRASE)


def child_logical(a: dict[str, Any]) -> dict[str, Any]:
    from seawall.postgres.conn import PgConn
    from seawall.postgres.logical import backup_logical

    t0 = time.perf_counter()
    vault = _open(a["vault"])
    parent = vault.find_backup(a["parent"]) if a.get("parent") else None
    t1 = time.perf_counter()
    m = backup_logical(vault, PgConn(a["conninfo"]), a["dataset"], jobs=a["jobs"], parent=parent)
    t2 = time.perf_counter()
    return {"backup_id": m.backup_id, "open_s": t1 - t0, "op_s": t2 - t1, "stats": m.stats.model_dump(),
            "spool": m.source.get("spool"), "tables": len(m.source.get("tables", {}))}


def child_physical(a: dict[str, Any]) -> dict[str, Any]:
    from seawall.postgres.conn import PgConn
    from seawall.postgres.physical import backup_physical

    t0 = time.perf_counter()
    vault = _open(a["vault"])
    t1 = time.perf_counter()
    m = backup_physical(vault, PgConn(a["conninfo"]), a["dataset"])
    t2 = time.perf_counter()
    src = m.source
    return {"backup_id": m.backup_id, "open_s": t1 - t0, "op_s": t2 - t1, "stats": m.stats.model_dump(),
            "start_lsn": src.get("start_lsn"), "stop_lsn": src.get("stop_lsn"),
            "start_wal_file": src.get("start_wal_file"), "stop_wal_file": src.get("stop_wal_file")}


def child_restore(a: dict[str, Any]) -> dict[str, Any]:
    from seawall.postgres.recovery import RecoveryTarget, restore_physical

    t0 = time.perf_counter()
    vault = _open(a["vault"])
    manifest = vault.find_backup(a["backup_id"])
    t1 = time.perf_counter()
    summary = restore_physical(vault, manifest, a["datadir"], port=a["port"], target=RecoveryTarget.parse("latest"),
                               vault_url=a["vault"], passphrase_file=a["passphrase_file"], leave_running=True)
    t2 = time.perf_counter()
    marker = _write_check(summary["conninfo"])
    t3 = time.perf_counter()
    return {"open_s": t1 - t0, "restore_s": t2 - t1, "write_s": t3 - t2, "marker": marker,
            "last_restored_wal": summary.get("last_restored_wal"), "timeline": summary.get("timeline")}


def _write_check(conninfo: str) -> str | None:
    """Prove the copy accepts writes; return the markers the primary wrote (the last one ends the WAL)."""
    import psycopg

    with psycopg.connect(conninfo.replace("dbname=postgres", f"dbname={DB}"), autocommit=True) as pg:
        pg.execute("CREATE TABLE bench_write_check (x int); INSERT INTO bench_write_check VALUES (1)")
        row = pg.execute("SELECT string_agg(tag, ',' ORDER BY tag) FROM bench_marker").fetchone()
    return row[0] if row else None


CHILDREN = {"logical": child_logical, "physical": child_physical, "restore": child_restore}


def child_main(op: str, args_json: str, out: str) -> None:
    report = CHILDREN[op](json.loads(args_json))
    report["vm_hwm"] = vm_hwm()
    Path(out).write_text(json.dumps(report, default=str))


# ---- the parent --------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def new_vault(root: Path, name: str) -> str:
    from seawall.vault import init_vault

    path = private_dir(root / name)
    url = f"file://{path}"
    init_vault(url, PASSPHRASE)  # default scrypt cost: what a real vault pays per wal-push / wal-get
    return url


def pg_tool(name: str) -> str:
    from seawall.postgres import binaries

    return binaries.tool(name)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.root = new_root()
        self.primary: Primary | None = None
        self.results: dict[str, Any] = {"size_mb": args.size_mb, "reps": args.reps}
        self.rss: dict[str, list[int]] = {}
        self.extra_clusters: list[Any] = []
        self.children: list[subprocess.Popen] = []

    # -- helpers --
    def rss_note(self, what: str, m: Measured) -> None:
        self.rss.setdefault(what, []).append(m.report.get("vm_hwm", 0))
        self.rss.setdefault(what + " (incl. waited children)", []).append(m.peak_rss)

    @property
    def p(self) -> Primary:
        assert self.primary is not None
        return self.primary

    # -- setup --
    def setup(self) -> None:
        from seawall.postgres import datagen

        log(f"work dir {self.root}")
        first = new_vault(self.root, "vault-setup")
        self.primary = start_primary(self.root, first)
        p = self.p
        p.sql(f"CREATE DATABASE {DB}")
        t0 = time.perf_counter()
        counts = datagen.generate(p.conninfo(DB), self.args.size_mb, seed=42)
        p.sql("VACUUM (FREEZE, ANALYZE)", DB)  # hint bits and visibility map set before anything is timed
        p.sql("CREATE TABLE bench_marker (tag text); INSERT INTO bench_marker VALUES ('setup')", DB)
        p.sql("CHECKPOINT")
        p.switch_and_wait_archived()
        size = p.sql(f"SELECT pg_database_size('{DB}')")[0][0]
        cluster_size = p.sql("SELECT sum(pg_database_size(oid)) FROM pg_database")[0][0]
        log(f"generated {size / MB:.0f} MB ({counts}) in {time.perf_counter() - t0:.0f}s; archive caught up")
        self.results["database"] = {"db_bytes": size, "cluster_bytes": cluster_size, "rows": counts,
                                    "server_version": p.sql("SHOW server_version")[0][0]}
        settle()

    # -- a + b --
    def logical(self) -> None:
        p, args = self.p, self.args
        dump_argv = [pg_tool("pg_dump"), "-Fd", "-Z0", "-j", "2", "-d", p.conninfo(DB)]
        warm = self.root / "dump-warm"
        measure([*dump_argv, "-f", str(warm)])  # untimed: page cache and server caches warm
        dump_bytes = du(warm)
        shutil.rmtree(warm)
        base, ours, ours_op, base_cpu, ours_cpu, base_busy, ours_busy = [], [], [], [], [], [], []
        last: dict[str, Any] = {}
        for rep in range(args.reps):
            for tool in (("pg_dump", "seawall") if rep % 2 == 0 else ("seawall", "pg_dump")):
                settle()
                if tool == "pg_dump":
                    folder = self.root / f"dump-{rep}"
                    m = measure([*dump_argv, "-f", str(folder)])
                    shutil.rmtree(folder)
                    base.append(m.wall_s)
                    base_cpu.append(m.cpu_s)
                    base_busy.append(m.system_busy_s)
                    log(f"a rep {rep}: pg_dump -Fd -Z0 -j2 {m.wall_s:.1f}s (machine busy {m.system_busy_s:.1f} CPU-s)")
                else:
                    if last:
                        shutil.rmtree(last["path"], ignore_errors=True)
                    url = new_vault(self.root, f"lvault-{rep}")
                    m = run_child("logical", {"vault": url, "conninfo": p.conninfo(DB), "dataset": DB, "jobs": 2},
                                  self.root)
                    self.rss_note("logical backup", m)
                    ours.append(m.wall_s)
                    ours_op.append(m.report["op_s"])
                    ours_cpu.append(m.cpu_s)
                    ours_busy.append(m.system_busy_s)
                    last = {"url": url, "path": Path(url.removeprefix("file://")), "report": m.report}
                    log(f"a rep {rep}: seawall backup_logical {m.wall_s:.1f}s (op {m.report['op_s']:.1f}s, "
                        f"stored {m.report['stats']['stored_bytes_new'] / MB:.0f} MB, "
                        f"rss {m.report['vm_hwm'] / MB:.0f} MB, machine busy {m.system_busy_s:.1f} CPU-s)")
        first = last["report"]
        self.results["logical"] = {
            "dump_bytes": dump_bytes, "pg_dump_s": base, "seawall_s": ours, "seawall_op_s": ours_op,
            "pg_dump_median_s": med(base), "seawall_median_s": med(ours), "ratio": med(ours) / med(base),
            "ratio_op": med(ours_op) / med(base), "target": TARGETS["logical"],
            "pg_dump_cpu_s": base_cpu, "seawall_cpu_s": ours_cpu, "cores": os.cpu_count(),
            "pg_dump_machine_busy_s": base_busy, "seawall_machine_busy_s": ours_busy,
            "first_stored_bytes": first["stats"]["stored_bytes_new"], "first_bytes": first["stats"]["bytes_total"],
            "vault_bytes_after_first": du(last["path"])}
        # b: a second backup after 1% of rows changed, into the same vault, with the first as parent
        incr: dict[str, Any] = {}
        first_stored = first["stats"]["stored_bytes_new"]
        for pattern, fraction in (("recent", 0.01), ("scattered", 0.01)):
            from seawall.postgres import datagen

            touched = datagen.mutate(p.conninfo(DB), fraction, pattern=pattern)
            before = du(last["path"])
            settle()
            m = run_child("logical", {"vault": last["url"], "conninfo": p.conninfo(DB), "dataset": DB, "jobs": 2,
                                      "parent": first["backup_id"]}, self.root)
            self.rss_note("logical backup", m)
            st = m.report["stats"]
            incr[pattern] = {"rows_touched": touched, "wall_s": m.wall_s, "stored_bytes_new": st["stored_bytes_new"],
                             "bytes_new": st["bytes_new"], "chunks_new": st["chunks_new"],
                             "chunks_total": st["chunks_total"], "vault_growth": du(last["path"]) - before,
                             "share": st["stored_bytes_new"] / first_stored}
            log(f"b {pattern}: {touched} rows changed, second backup stored {st['stored_bytes_new'] / MB:.1f} MB "
                f"= {incr[pattern]['share']:.1%} of the first ({m.wall_s:.1f}s)")
        incr["share"] = incr["recent"]["share"]
        incr["target"] = TARGETS["incremental"]
        self.results["incremental"] = incr
        shutil.rmtree(last["path"], ignore_errors=True)

    # -- c --
    def physical(self) -> None:
        p, args = self.p, self.args
        ours, ours_op, base, ours_cpu, base_cpu = [], [], [], [], []
        self.phys: dict[str, Any] = {}
        for rep in range(args.reps):
            for tool in (("seawall", "pgbackrest") if rep % 2 == 0 else ("pgbackrest", "seawall")):
                if tool == "seawall":
                    old = self.phys.get("path")
                    url = new_vault(self.root, f"pvault-{rep}")
                    p.switch_vault(url)
                    p.switch_and_wait_archived()  # from here on, every segment lands in the new vault
                    if old:
                        shutil.rmtree(old, ignore_errors=True)
                    settle()
                    m = run_child("physical", {"vault": url, "conninfo": p.conninfo(), "dataset": "cluster"},
                                  self.root)
                    self.rss_note("physical backup", m)
                    ours.append(m.wall_s)
                    ours_op.append(m.report["op_s"])
                    ours_cpu.append(m.cpu_s)
                    self.phys = {"url": url, "path": Path(url.removeprefix("file://")), "report": m.report}
                    log(f"c rep {rep}: seawall backup_physical {m.wall_s:.1f}s (op {m.report['op_s']:.1f}s, "
                        f"stored {m.report['stats']['stored_bytes_new'] / MB:.0f} MB, "
                        f"rss {m.report['vm_hwm'] / MB:.0f} MB)")
                else:
                    settle()
                    m = p.pgbr.run("backup", "--type=full")
                    base.append(m.wall_s)
                    base_cpu.append(m.cpu_s)
                    log(f"c rep {rep}: pgbackrest backup --type=full {m.wall_s:.1f}s")
        info = subprocess.run(p.pgbr.argv("info", "--output=json"), capture_output=True, text=True, check=False)
        pgbr_sizes = []
        with contextlib.suppress(Exception):
            for b in json.loads(info.stdout)[0]["backup"]:
                pgbr_sizes.append(b["info"]["repository"]["delta"])
        st = self.phys["report"]["stats"]
        self.results["physical"] = {
            "pgbackrest_s": base, "seawall_s": ours, "seawall_op_s": ours_op, "pgbackrest_median_s": med(base),
            "seawall_median_s": med(ours), "ratio": med(ours) / med(base), "ratio_op": med(ours_op) / med(base),
            "target": TARGETS["physical"], "seawall_cpu_s": ours_cpu, "pgbackrest_cpu_s": base_cpu,
            "base_tar_bytes": st["bytes_total"],
            "seawall_stored_bytes": st["stored_bytes_new"],
            "pgbackrest_repo_bytes_per_full": pgbr_sizes}

    # -- d --
    def make_replay_wal(self) -> dict[str, Any]:
        from seawall.postgres import datagen

        p = self.p
        start = p.sql("SELECT pg_current_wal_lsn()")[0][0]
        target = self.args.replay_mb * MB
        rounds = 0
        t0 = time.perf_counter()
        while True:
            done = p.sql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{start}')")[0][0]
            if done >= target or rounds >= 50:
                break
            datagen.mutate(p.conninfo(DB), 0.01, pattern="scattered", seed=100 + rounds)
            rounds += 1
        p.sql("INSERT INTO bench_marker VALUES ('end-of-replay-wal')", DB)
        end = p.sql("SELECT pg_current_wal_lsn()")[0][0]
        p.switch_and_wait_archived()
        wal = p.sql(f"SELECT pg_wal_lsn_diff('{end}', '{start}')")[0][0]
        log(f"d: wrote {wal / MB:.0f} MB of WAL in {rounds} mutate rounds ({time.perf_counter() - t0:.0f}s); archived")
        return {"wal_bytes": int(wal), "rounds": rounds}

    def restore(self) -> None:
        p, args = self.p, self.args
        wal = self.make_replay_wal()
        ours, ours_restore, base, base_restore = [], [], [], []
        for rep in range(args.reps):
            for tool in (("seawall", "pgbackrest") if rep % 2 == 0 else ("pgbackrest", "seawall")):
                parent = private_dir(self.root / f"restore-{tool}-{rep}")
                datadir = parent / "data"
                port = free_port()
                settle()
                if tool == "seawall":
                    copy = restored_cluster(datadir, port)
                    self.extra_clusters.append(copy)
                    m = run_child("restore", {"vault": self.phys["url"], "backup_id": self.phys["report"]["backup_id"],
                                              "datadir": str(datadir), "port": port,
                                              "passphrase_file": str(p.passphrase_file)}, self.root)
                    self.rss_note("PITR restore", m)
                    marker = m.report["marker"]
                    ours.append(m.wall_s)
                    ours_restore.append(m.report["restore_s"])
                    log(f"d rep {rep}: seawall restore_physical {m.wall_s:.1f}s (restore {m.report['restore_s']:.1f}s, "
                        f"marker {marker!r}, rss {m.report['vm_hwm'] / MB:.0f} MB)")
                else:
                    private_dir(datadir)
                    copy = restored_cluster(datadir, port)
                    self.extra_clusters.append(copy)
                    t0 = time.perf_counter()
                    m = p.pgbr.run(f"--pg1-path={datadir}", "restore", "--archive-mode=off")
                    t1 = time.perf_counter()
                    private_dir(copy.socket_dir)
                    copy.start(wait=False, timeout=3600)
                    wait_for_end(copy, "promote", 3600)  # the same wait (0.25 s polls) restore_physical uses
                    marker = _write_check(copy.conninfo())
                    t2 = time.perf_counter()
                    base.append(t2 - t0)
                    base_restore.append(t1 - t0)
                    log(f"d rep {rep}: pgbackrest restore + recovery {t2 - t0:.1f}s (restore {t1 - t0:.1f}s, "
                        f"recovery {t2 - t1:.1f}s, marker {marker!r})")
                if "end-of-replay-wal" not in (marker or ""):
                    raise RuntimeError(f"{tool} restore did not reach the end of the WAL (marker {marker!r})")
                if args.logs:  # the restored servers' logs: where recovery spends its time
                    Path(args.logs).mkdir(parents=True, exist_ok=True)
                    with contextlib.suppress(OSError):
                        shutil.copyfile(copy.logfile, Path(args.logs) / f"restore-{tool}-{rep}.log")
                remove_cluster_dir(copy)
                self.extra_clusters.remove(copy)
                shutil.rmtree(parent, ignore_errors=True)
        self.results["restore"] = {
            **wal, "pgbackrest_s": base, "pgbackrest_restore_only_s": base_restore, "seawall_s": ours,
            "seawall_restore_s": ours_restore, "pgbackrest_median_s": med(base), "seawall_median_s": med(ours),
            "ratio": med(ours) / med(base), "target": TARGETS["restore"]}

    # -- wal-push alone --
    def walpush_latency(self) -> None:
        """A few `seawall wal-push` runs of a real segment into a scratch vault: time and RSS per call."""
        p = self.p
        seg = p.switch_and_wait_archived()  # a complete segment, still in pg_wal (recycled at checkpoints only)
        src = p.cluster.datadir / "pg_wal" / seg
        if not src.exists():
            return
        url = new_vault(self.root, "wvault")
        walls, rss = [], []
        for i in range(5):
            copy = self.root / seg
            shutil.copyfile(src, copy)
            m = measure([SEAWALL_BIN, "wal-push", str(copy), "--vault", url, "--passphrase-file",
                         str(p.passphrase_file)])
            copy.unlink()
            if i == 0:
                first = m.wall_s
            walls.append(m.wall_s)
            rss.append(m.peak_rss)
            shutil.rmtree(Path(url.removeprefix("file://")) / "wal", ignore_errors=True)
        shutil.rmtree(Path(url.removeprefix("file://")), ignore_errors=True)
        self.rss["wal-push"] = rss
        self.results["wal_push"] = {"wall_s": walls, "median_s": med(walls), "first_s": first}
        log(f"wal-push of one 16 MiB segment: median {med(walls):.2f}s, peak RSS {max(rss) / MB:.0f} MB")

    # -- e --
    def keep_up(self) -> None:
        p, args = self.p, self.args
        p.sql(f"CREATE DATABASE {PGB_DB}")
        pgb = shutil.which("pgbench") or pg_tool("pgbench")
        conn = ["-h", str(p.cluster.socket_dir), "-p", str(p.cluster.port), "-U", "postgres"]
        url = p.vault_url
        command = f"{SEAWALL_BIN} wal-push %p --vault {url} --passphrase-file {p.passphrase_file}"
        p.sql(f"ALTER SYSTEM SET archive_command = '{command}'")
        p.sql("SELECT pg_reload_conf()")
        t0 = time.perf_counter()
        measure([pgb, "-i", "-q", "-s", str(args.pgbench_scale), *conn, PGB_DB])
        p.sql("VACUUM (FREEZE, ANALYZE)", PGB_DB)
        p.sql("CHECKPOINT")
        p.switch_and_wait_archived()
        log(f"e: pgbench -i -s {args.pgbench_scale} done and archived in {time.perf_counter() - t0:.0f}s")
        p.sql("SELECT pg_stat_reset_shared('archiver')")
        settle()
        start_lsn = p.sql("SELECT pg_current_wal_lsn()")[0][0]
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            t = time.perf_counter()
            while not stop.wait(2.0):
                with contextlib.suppress(Exception):
                    samples.append((time.perf_counter() - t, self._behind()[0]))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        bench = subprocess.run([pgb, "-c", "4", "-j", "2", "-T", str(args.load_s), "-n", *conn, PGB_DB],
                               capture_output=True, text=True, check=False)
        summary = [ln for ln in bench.stdout.splitlines() if ln.startswith(("tps", "number of transactions actually"))]
        behind_end, last, current = self._behind()
        stop.set()
        sampler.join()
        failed, archived = p.sql("SELECT failed_count, archived_count FROM pg_stat_archiver")[0]
        wal = p.sql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{start_lsn}')")[0][0]
        t1 = time.perf_counter()  # catch-up after the load: switch the current segment, wait until archived
        p.switch_and_wait_archived(timeout=600)
        catch_up = time.perf_counter() - t1
        self.results["keep_up"] = {
            "load_s": args.load_s, "pgbench_summary": summary, "pgbench_scale": args.pgbench_scale,
            "pgbench_rc": bench.returncode,
            "wal_bytes": int(wal), "segments_written": int(wal) // (16 << 20), "archived_count": archived,
            "failed_count": failed, "behind_at_end": behind_end, "last_archived_wal": last, "current_wal": current,
            "max_behind": max((s[1] for s in samples), default=None), "samples": samples,
            "catch_up_s": catch_up, "target_behind": TARGETS["behind"]}
        log(f"e: {wal / MB:.0f} MB WAL in {args.load_s}s, archived {archived}, failed {failed}, "
            f"behind at end {behind_end} (max {self.results['keep_up']['max_behind']}), caught up in {catch_up:.1f}s")

    def _behind(self) -> tuple[int, str, str]:
        """(completed segments not yet archived, last archived, the segment being written)."""
        last, current = self.p.sql("SELECT last_archived_wal, pg_walfile_name(pg_current_wal_lsn()) "
                                   "FROM pg_stat_archiver")[0]
        if not last:
            return -1, "", current
        return max(0, segno(current) - segno(last[:24]) - 1), last, current

    # -- teardown --
    def cleanup(self) -> None:
        for proc in self.children:
            with contextlib.suppress(Exception):
                proc.kill()
        for copy in list(self.extra_clusters):
            with contextlib.suppress(Exception):
                remove_cluster_dir(copy)
        if self.primary is not None:
            with contextlib.suppress(Exception):
                self.primary.cluster.remove()
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def summarise(res: dict[str, Any], rss: dict[str, list[int]]) -> str:
    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lines = []
    if "logical" in res:
        lg = res["logical"]
        lines.append(f"a. logical backup: seawall {lg['seawall_median_s']:.1f}s vs pg_dump -Fd -Z0 -j2 "
                     f"{lg['pg_dump_median_s']:.1f}s = {lg['ratio']:.2f}x (in-process {lg['ratio_op']:.2f}x; "
                     f"target <= {lg['target']}x: {mark(lg['ratio'] <= lg['target'])}); machine busy "
                     f"{med(lg['seawall_machine_busy_s']):.1f} vs {med(lg['pg_dump_machine_busy_s']):.1f} CPU-s "
                     f"on {lg['cores']} cores")
    if "incremental" in res:
        inc = res["incremental"]
        lines.append(f"b. second logical backup after 1% changed (recent): "
                     f"{inc['recent']['stored_bytes_new'] / MB:.1f} MB = {inc['share']:.1%} of the first "
                     f"(target <= 5%: {mark(inc['share'] <= inc['target'])}); "
                     f"scattered 1%: {inc['scattered']['share']:.1%}")
    if "physical" in res:
        ph = res["physical"]
        lines.append(f"c. physical backup: seawall {ph['seawall_median_s']:.1f}s vs pgbackrest full "
                     f"{ph['pgbackrest_median_s']:.1f}s = {ph['ratio']:.2f}x (in-process {ph['ratio_op']:.2f}x; "
                     f"target <= 1.0x: {mark(ph['ratio'] <= ph['target'])})")
    if "restore" in res:
        rs = res["restore"]
        lines.append(f"d. PITR restore (latest, {rs['wal_bytes'] / MB:.0f} MB WAL): "
                     f"seawall {rs['seawall_median_s']:.1f}s vs pgbackrest restore + recovery "
                     f"{rs['pgbackrest_median_s']:.1f}s = {rs['ratio']:.2f}x "
                     f"(target <= 1.0x: {mark(rs['ratio'] <= rs['target'])})")
    if "keep_up" in res:
        ku = res["keep_up"]
        ok = ku["failed_count"] == 0 and 0 <= ku["behind_at_end"] <= ku["target_behind"]
        lines.append(f"e. archive keep-up: {ku['wal_bytes'] / MB:.0f} MB WAL in {ku['load_s']}s, failed_count "
                     f"{ku['failed_count']}, {ku['behind_at_end']} segments behind at the end (max "
                     f"{ku['max_behind']}) (target 0 failures, <= 4 behind: {mark(ok)})")
    if rss:
        peaks = {k: max(v) for k, v in rss.items()}
        worst = max(v for k, v in peaks.items() if "incl." not in k)
        lines.append("f. peak RSS: " + ", ".join(f"{k} {v / MB:.0f} MB" for k, v in peaks.items())
                     + f" (target < 300 MB: {mark(worst < RSS_LIMIT)})")
    return "\n".join(lines)


def machine_facts(root: Path) -> dict[str, Any]:
    from bench.common import filesystem, machine

    facts = machine()
    facts["filesystem"] = filesystem(root)
    facts["pgbackrest"] = PgBackRest.version()
    facts["load_before"] = os.getloadavg()
    return facts


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs=2, metavar=("OP", "ARGS"), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--size-mb", type=int, default=1000, help="database size in MB (default 1000)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each timed step (default 3)")
    ap.add_argument("--replay-mb", type=int, default=None,
                    help="WAL to write between the backups and the PITR restore (default: size/4)")
    ap.add_argument("--pgbench-scale", type=int, default=20, help="pgbench -s for the keep-up load (default 20)")
    ap.add_argument("--load-s", type=int, default=60, help="seconds of pgbench load (default 60)")
    ap.add_argument("--only", default="abcde", help="phases to run, e.g. 'ab' (default abcde)")
    ap.add_argument("--json", help="write all figures to this file")
    ap.add_argument("--logs", help="copy the restored servers' logs into this directory")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (debugging)")
    args = ap.parse_args()
    if args.child:
        child_main(args.child[0], args.child[1], args.out)
        return
    signal.signal(signal.SIGTERM, _terminate)  # clusters and temp dirs are removed on SIGTERM too
    args.replay_mb = args.replay_mb if args.replay_mb is not None else max(16, args.size_mb // 4)
    bench = Bench(args)
    bench.results["machine"] = machine_facts(bench.root)
    bench.results["command"] = " ".join(["uv run python -m bench.pg_bench", *sys.argv[1:]])
    started = time.perf_counter()
    try:
        bench.setup()
        if "a" in args.only or "b" in args.only:
            bench.logical()
        if "c" in args.only or "d" in args.only:
            bench.physical()
            bench.walpush_latency()
        if "d" in args.only:
            bench.restore()
        if "e" in args.only:
            bench.keep_up()
    finally:
        bench.results["rss"] = bench.rss
        bench.results["total_s"] = time.perf_counter() - started
        bench.cleanup()
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(bench.results, indent=2, default=str))
    print()
    print(summarise(bench.results, bench.rss))


if __name__ == "__main__":
    main()

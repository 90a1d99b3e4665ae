"""Steps d and e of `bench.pg_bench`, and wal-push alone: everything that replays or archives WAL.

d. PITR restore to latest after `--replay-mb` of WAL, seawall against pgBackRest restore + recovery;
e. archive keep-up under pgbench load with `archive_command` = `seawall wal-push`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.pg_bench_children import write_check
from bench.pg_bench_report import TARGETS
from bench.pg_common import (
    DB,
    MB,
    SEAWALL_BIN,
    Measured,
    Primary,
    log,
    measure,
    med,
    new_vault,
    pg_tool,
    private_dir,
    remove_cluster_dir,
    restored_cluster,
    run_child,
    segno,
    settle,
)
from seawall.postgres.cluster import free_port
from seawall.postgres.recovery_modes import wait_for_end

PGB_DB = "pgb"


class WalSteps:
    """Mixed into `pg_bench.Bench`: needs `self.p`, `self.root`, `self.args`, `self.results`, `self.rss`,
    `self.phys` (step c's last backup), `self.extra_clusters` and `self.rss_note`."""

    p: Primary
    root: Path
    args: Any
    results: dict[str, Any]
    rss: dict[str, list[int]]
    phys: dict[str, Any]
    extra_clusters: list[Any]

    def rss_note(self, what: str, m: Measured) -> None:
        raise NotImplementedError

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
                    marker = write_check(copy.conninfo())
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

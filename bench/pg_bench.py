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
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.pg_bench_backups import BackupSteps
from bench.pg_bench_children import child_main
from bench.pg_bench_report import machine_facts, summarise
from bench.pg_bench_wal import WalSteps
from bench.pg_common import (
    DB,
    MB,
    Measured,
    Primary,
    log,
    new_root,
    new_vault,
    remove_cluster_dir,
    settle,
    start_primary,
)


class Bench(BackupSteps, WalSteps):
    """One run: a primary with a realistic database, the steps a-e, and everything they leave to remove."""

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

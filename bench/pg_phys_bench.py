"""Physical backup and restore of PostgreSQL: seawall's CLI vs pg_basebackup and pgBackRest 2.45, same run.

    bench/gate bench .venv/bin/python -m bench.pg_phys_bench --size-mb 1000 --reps 3 \\
        --json bench/out/pg-phys-1g.json     # (gate: the machine alone; any quiet machine will do)
    .venv/bin/python -m bench.pg_phys_bench --size-mb 100 --reps 1      # a smoke run (~2 min)

One throwaway primary (`bench.pg_common.start_primary`: Debian PostgreSQL 15 as `postgres`, data
checksums, fsync on) with a realistic database (`seawall.postgres.datagen`, ~2-3x compressible; pgbench
tables compress ~100x and would flatter every tool). Its archive_command pushes each segment into the
current seawall vault and into a local pgBackRest repository (compress-type=zst, process-max=2).
Every timed step is a whole process (`seawall ...` as users run it; interpreter start, imports and the
scrypt unlock included). Per repetition k (the order of the tools alternates):

2. full backup: `seawall backup postgres --mode physical` into a fresh vault vs `pg_basebackup -Ft
   -X fetch -D - > /dev/null` (target <= 1.5x) and `pgbackrest backup --type=full` (<= 0.8x);
3. `datagen.mutate(0.01)` (1% of the rows of every table), a CHECKPOINT, the archiver caught up (as
   before the fulls), then the next seawall backup of the same
   dataset (incremental) vs that full's wall (<= 0.3x), pgBackRest `--type=incr` beside it; the
   primary's `pg_dumpall --data-only` is hashed as the reference;
4. restores to `--target immediate`, each until the copy is promoted: seawall's full restore of the
   incremental backup into an empty directory, and its `--delta` restore of the same backup into a
   stopped copy of the full (restored first, untimed, then stopped): delta <= 0.3x full. pgBackRest's
   `restore` and `restore --delta` the same way as peers. Every seawall copy must dump the reference's
   data (sha256 of `pg_dumpall --data-only`); those of the first `--amcheck-reps` repetitions must also
   pass `pg_amcheck --heapallindexed`.

`--alt-args "..."` also times a variant of seawall's backups (extra `seawall backup postgres` arguments,
e.g. `--compress-level 0`) in the same repetitions: a full (in the same alternating order as the other
fulls) and an incremental, into a fresh vault of its own (the archive goes into it meanwhile:
`Primary.archive_into`, which has a segment archived into each vault it switches to, so every seawall
backup finds the server last archived into its vault, as pgBackRest always finds its repository).
Every full and incremental also reports the bytes it stored (seawall's `stored_bytes_new`, pgBackRest's
repository size of the backup).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.pg_common import (
    MB,
    SEAWALL_BIN,
    Primary,
    measure,
    new_root,
    remove_cluster_dir,
    settle,
    start_primary,
)
from bench.pg_restore_steps import DB, RestoreSteps, log, med, new_vault, pg_tool
from seawall.postgres import binaries

TARGETS = {"vs_basebackup": 1.5, "vs_pgbackrest": 0.8, "incremental": 0.3, "delta": 0.3}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


class PhysBench(RestoreSteps):
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.root = new_root()
        self.primary: Primary | None = None
        self.res: dict[str, Any] = {"size_mb": args.size_mb, "reps": args.reps, "runs": []}
        self.copies: list[Any] = []

    @property
    def p(self) -> Primary:
        assert self.primary is not None
        return self.primary

    def setup(self) -> None:
        from seawall.postgres import datagen

        self.primary = start_primary(self.root, new_vault(self.root, "vault-setup"))
        p = self.p
        p.sql(f"CREATE DATABASE {DB}")
        t0 = time.perf_counter()
        counts = datagen.generate(p.conninfo(DB), self.args.size_mb, seed=42)
        p.sql("VACUUM (FREEZE, ANALYZE)", DB)
        p.sql("CHECKPOINT")
        p.switch_and_wait_archived()
        size = p.sql("SELECT sum(pg_database_size(oid)) FROM pg_database")[0][0]
        log(f"generated {size / MB:.0f} MB cluster ({counts}) in {time.perf_counter() - t0:.0f}s")
        self.res["cluster_bytes"] = size
        self.res["server_version"] = p.sql("SHOW server_version")[0][0]

    # ---- backups ---------------------------------------------------------------------------------
    def seawall_backup(self, url: str, extra: str = "") -> tuple[float, dict]:
        out = self.root / f"backup-{time.monotonic_ns()}.json"
        settle()
        m = measure([SEAWALL_BIN, "backup", "postgres", "--dsn", self.p.conninfo(), "--vault", url, "--mode",
                     "physical", "--dataset", "cluster", "--passphrase-file", str(self.p.passphrase_file), "--json",
                     *self.args.backup_args.split(), *extra.split()], stdout=out)
        report = json.loads(out.read_text())
        out.unlink()
        return m.wall_s, report

    def basebackup(self) -> float:
        settle()
        argv = [pg_tool("pg_basebackup"), "-d", self.p.conninfo(), "-Ft", "-X", "fetch", "-D", "-",
                "--checkpoint=fast"]
        return measure(argv).wall_s  # stdout goes to /dev/null

    def pgbackrest(self, kind: str) -> float:
        settle()
        return self.p.pgbr.run("backup", f"--type={kind}").wall_s

    def pgbackrest_stored(self) -> int:
        """Repository bytes of pgBackRest's last backup (untimed `pgbackrest info`)."""
        out = self.root / f"pgbr-info-{time.monotonic_ns()}.json"
        measure(self.p.pgbr.argv("info", "--output=json"), user=binaries.os_user(), stdout=out)
        info = json.loads(out.read_text())
        out.unlink()
        return int(info[0]["backup"][-1]["info"]["repository"]["delta"])

    def alt_backup(self, run: dict[str, Any], url: str, alt_url: str, key: str) -> None:
        """The `--alt-args` variant's backup into its own vault; the archive goes there meanwhile (and
        a segment is archived into each vault as it is switched to: `Primary.archive_into`)."""
        self.p.archive_into(alt_url)
        run[f"alt_{key}_s"], report = self.seawall_backup(alt_url, self.args.alt_args)
        run[f"alt_{key}_stored"] = report["stored_bytes_new"]
        self.p.archive_into(url)

    def rep(self, k: int) -> dict[str, Any]:
        p, first = self.p, k % 2 == 0
        run: dict[str, Any] = {"rep": k, "load_before": os.getloadavg()}
        url = new_vault(self.root, f"vault-{k}")
        alt_url = new_vault(self.root, f"vault-{k}-alt") if self.args.alt_args else ""
        p.archive_into(url)  # from here on, every segment lands in this rep's vault
        tools = ("seawall", "alt", "basebackup", "pgbackrest")
        for tool in tools if first else tools[::-1]:
            if tool == "seawall":
                run["full_s"], full = self.seawall_backup(url)
                run["full_id"], run["full_stored"] = full["backup_id"], full["stored_bytes_new"]
            elif tool == "alt" and alt_url:
                self.alt_backup(run, url, alt_url, "full")
            elif tool == "basebackup":
                run["basebackup_s"] = self.basebackup()
            elif tool == "pgbackrest":
                run["pgbackrest_full_s"] = self.pgbackrest("full")
                run["pgbackrest_full_stored"] = self.pgbackrest_stored()
        log(f"rep {k}: full seawall {run['full_s']:.1f}s ({run['full_stored'] / MB:.0f} MB stored), pg_basebackup "
            f"{run['basebackup_s']:.1f}s, pgbackrest {run['pgbackrest_full_s']:.1f}s "
            f"({run['pgbackrest_full_stored'] / MB:.0f} MB)"
            + (f"; alt {run['alt_full_s']:.1f}s ({run['alt_full_stored'] / MB:.0f} MB)" if alt_url else ""))
        self.full_copies(run, url)  # the copies the delta restores start from (untimed)
        from seawall.postgres import datagen

        run["rows_changed"] = datagen.mutate(p.conninfo(DB), 0.01, pattern=self.args.pattern, seed=100 + k)
        p.sql("CHECKPOINT")
        # The change wrote ~100 MB of WAL: let the archiver (one wal-push and one pgbackrest process per
        # segment) catch up before the incrementals, as it had before the fulls; otherwise whichever
        # tool goes first shares the two cores with it, and the incremental/full ratio measures that.
        t0 = time.perf_counter()
        p.switch_and_wait_archived()
        run["archive_catch_up_s"] = time.perf_counter() - t0
        tools = ("seawall", "alt", "pgbackrest")
        for tool in tools if first else tools[::-1]:
            if tool == "seawall":
                run["incr_s"], incr = self.seawall_backup(url)
                run["incr_id"], run["incr_report"] = incr["backup_id"], incr
                run["incr_stored"] = incr["stored_bytes_new"]
            elif tool == "alt" and alt_url:
                self.alt_backup(run, url, alt_url, "incr")
            elif tool == "pgbackrest":
                run["pgbackrest_incr_s"] = self.pgbackrest("incr")
        run["reference_sha256"] = self.dump_hash(p.conninfo())
        log(f"rep {k}: after {run['rows_changed']} rows changed: incremental seawall {run['incr_s']:.1f}s, "
            f"pgbackrest {run['pgbackrest_incr_s']:.1f}s")
        self.restores(run, url, first)
        return run

    def cleanup(self) -> None:
        for copy in list(self.copies):
            with contextlib.suppress(Exception):
                remove_cluster_dir(copy)
        if self.primary is not None:
            with contextlib.suppress(Exception):
                self.primary.cluster.remove()
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def m(key: str) -> float:
        return med([r[key] for r in runs if key in r])

    out = {key: m(key) for key in ("full_s", "basebackup_s", "pgbackrest_full_s", "incr_s", "pgbackrest_incr_s",
                                   "restore_full_s", "restore_delta_s", "pgbackrest_restore_s",
                                   "pgbackrest_delta_s", "full_stored", "incr_stored", "pgbackrest_full_stored")}
    out["ratios"] = {"vs_basebackup": out["full_s"] / out["basebackup_s"],
                     "vs_pgbackrest": out["full_s"] / out["pgbackrest_full_s"],
                     "incremental": out["incr_s"] / out["full_s"],
                     "delta": out["restore_delta_s"] / out["restore_full_s"],
                     "pgbackrest_incremental": out["pgbackrest_incr_s"] / out["pgbackrest_full_s"],
                     "pgbackrest_delta": out["pgbackrest_delta_s"] / out["pgbackrest_restore_s"]}
    if any("alt_full_s" in r for r in runs):
        out.update({key: m(key) for key in ("alt_full_s", "alt_incr_s", "alt_full_stored", "alt_incr_stored")})
        out["ratios"].update(alt_vs_basebackup=out["alt_full_s"] / out["basebackup_s"],
                             alt_vs_pgbackrest=out["alt_full_s"] / out["pgbackrest_full_s"],
                             alt_incremental=out["alt_incr_s"] / out["alt_full_s"])
    out["identical"] = all(r.get("identical") for r in runs)
    return out


def print_summary(s: dict[str, Any]) -> None:
    r = s["ratios"]

    def mark(key: str) -> str:
        return "met" if r[key] <= TARGETS[key.removeprefix("alt_")] else "MISSED"

    print(f"2. full backup: seawall {s['full_s']:.1f}s vs pg_basebackup {s['basebackup_s']:.1f}s = "
          f"{r['vs_basebackup']:.2f}x (<= 1.5x {mark('vs_basebackup')}); vs pgbackrest full "
          f"{s['pgbackrest_full_s']:.1f}s = {r['vs_pgbackrest']:.2f}x (<= 0.8x {mark('vs_pgbackrest')}); stored "
          f"{s['full_stored'] / MB:.0f} MB (pgbackrest {s['pgbackrest_full_stored'] / MB:.0f} MB)")
    print(f"3. incremental: {s['incr_s']:.1f}s = {r['incremental']:.2f}x the full (<= 0.3x {mark('incremental')}); "
          f"pgbackrest incr {s['pgbackrest_incr_s']:.1f}s = {r['pgbackrest_incremental']:.2f}x its full")
    print(f"4. delta restore: {s['restore_delta_s']:.1f}s vs full restore {s['restore_full_s']:.1f}s = "
          f"{r['delta']:.2f}x (<= 0.3x {mark('delta')}); pgbackrest --delta {s['pgbackrest_delta_s']:.1f}s vs "
          f"{s['pgbackrest_restore_s']:.1f}s = {r['pgbackrest_delta']:.2f}x; data identical: {s['identical']}")
    if "alt_full_s" in s:
        print(f"alt ({s['alt_args']}): full {s['alt_full_s']:.1f}s = {r['alt_vs_basebackup']:.2f}x pg_basebackup "
              f"({mark('alt_vs_basebackup')}), {r['alt_vs_pgbackrest']:.2f}x pgbackrest ({mark('alt_vs_pgbackrest')}), "
              f"stored {s['alt_full_stored'] / MB:.0f} MB; incremental {s['alt_incr_s']:.1f}s = "
              f"{r['alt_incremental']:.2f}x its full ({mark('alt_incremental')}), "
              f"stored {s['alt_incr_stored'] / MB:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1000, help="database size in MB (default 1000)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3; medians are reported)")
    ap.add_argument("--pattern", default="recent", choices=("recent", "scattered"),
                    help="where the 1%% of changed rows lie (datagen.mutate; default recent)")
    ap.add_argument("--jobs", type=int, default=3, help="seawall restore -j (default 3)")
    ap.add_argument("--amcheck-reps", type=int, default=1,
                    help="repetitions whose restored copies also get pg_amcheck --heapallindexed (default 1)")
    ap.add_argument("--backup-args", default="", help="extra arguments of `seawall backup postgres`")
    ap.add_argument("--alt-args", default="", help="also time a variant: its extra `seawall backup postgres` "
                    "arguments (a full and an incremental per repetition, into a vault of its own)")
    ap.add_argument("--json", help="write all figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (debugging)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt("SIGTERM")))
    bench = PhysBench(args)
    bench.res["command"] = " ".join(["bench/gate bench .venv/bin/python -m bench.pg_phys_bench",
                                     *sys.argv[1:]])
    bench.res["uptime_before"] = uptime()
    log(bench.res["uptime_before"])
    try:
        bench.setup()
        for k in range(args.reps):
            bench.res["runs"].append(bench.rep(k))
        bench.res["summary"] = summarise(bench.res["runs"]) | {"alt_args": args.alt_args}
    finally:
        bench.res["uptime_after"] = uptime()
        bench.cleanup()
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(bench.res, indent=2, default=str))
    log(bench.res["uptime_after"])
    print_summary(bench.res["summary"])


if __name__ == "__main__":
    main()

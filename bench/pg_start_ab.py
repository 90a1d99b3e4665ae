"""A/B of the short physical jobs whose time is mostly process start: two `seawall` builds, alternating.

Issue 18's incremental backup and delta restore (acceptance 3 and 4) pay the CLI's start (interpreter,
imports, typer's parse) in every process. This times the two whole processes as users run them, for
two builds (`--a`, `--b`: each a `seawall` executable, e.g. a clone of main's and this tree's), `--reps`
times each, A and B alternating (B first in odd repetitions), medians printed (bench/POSTGRES.md):

- `seawall backup postgres --mode physical` of an unchanged cluster (an incremental that reuses
  every file: what is left is the process's fixed cost);
- `seawall restore ... --to-datadir DIR --target immediate --no-archive -j 3 --delta` of that
  backup into a stopped copy (the copy was promoted by the previous restore, so each delta writes
  the few files that changed and recovers to the backup's end).

Set-up (untimed): one PostgreSQL 15 primary (checksums, fsync on) with `seawall.postgres.datagen`
data (`--size-mb`), archiving with `--a`'s `wal-push` into a file:// vault, a full physical backup,
its restored copy, one incremental (the delta restores' backup).

    bench/gate bench .venv/bin/python -m bench.pg_start_ab --a /tmp/main/.venv/bin/seawall \\
        --b .venv/bin/seawall --size-mb 250 --reps 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.pg_common import DB, PASSPHRASE, log, new_root, new_vault, private_file, restored_cluster
from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster, free_port


def seawall_json(argv: list[str]) -> tuple[float, dict]:
    """Run one whole seawall process (--json), return its wall time and its report."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... exited {proc.returncode}: {proc.stderr.strip()[-1500:]}")
    return wall, json.loads(proc.stdout or "{}")


class StartAB:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.root = new_root()
        self.pw = private_file(self.root / "passphrase", PASSPHRASE)
        self.url = new_vault(self.root, "vault")  # default scrypt cost, as a real vault
        self.primary: LocalCluster | None = None
        self.copy: LocalCluster | None = None
        self.incr_id = ""

    def common(self) -> list[str]:
        return ["--vault", self.url, "--passphrase-file", str(self.pw), "--json"]

    def backup_argv(self, binary: str) -> list[str]:
        assert self.primary is not None
        return [binary, "backup", "postgres", "--mode", "physical", "--dsn", self.primary.conninfo(),
                "--dataset", "cluster", *self.common()]

    def restore_argv(self, binary: str, backup_id: str, delta: bool) -> list[str]:
        assert self.copy is not None
        return [binary, "restore", backup_id, "--to-datadir", str(self.copy.datadir), "--port", str(self.copy.port),
                "--target", "immediate", "--no-archive", "-j", "3", *(["--delta"] if delta else []), *self.common()]

    def setup(self) -> None:
        from seawall.postgres import datagen

        script = private_file(self.root / "archive.sh", f'#!/bin/sh\nexec {self.args.a} wal-push "$1" --vault '
                              f'{self.url} --passphrase-file {self.pw}\n', mode=0o755)
        p = self.primary = LocalCluster.create(self.root, settings={"archive_mode": "on", "wal_level": "replica",
                                                                    "max_wal_size": "1GB"})
        p.configure({"archive_command": f"{script} %p"})
        p.start()
        p.execute(f"CREATE DATABASE {DB}")
        datagen.generate(p.conninfo(DB), self.args.size_mb, seed=42)
        p.execute("VACUUM (FREEZE, ANALYZE)", dbname=DB)
        p.execute("CHECKPOINT")
        size = p.execute("SELECT sum(pg_database_size(oid))::bigint FROM pg_database")[0][0]
        _, full = seawall_json(self.backup_argv(self.args.a))
        copydir = self.root / "copy"
        copydir.mkdir(mode=0o700)
        binaries.chown_to_server_user(copydir)
        self.copy = restored_cluster(copydir / "data", free_port())
        seawall_json(self.restore_argv(self.args.a, full["backup_id"], delta=False))
        _, incr = seawall_json(self.backup_argv(self.args.a))
        self.incr_id = incr["backup_id"]
        log(f"cluster {size / 1e6:.0f} MB; full {full['backup_id']}, incremental {self.incr_id}")

    def run(self) -> dict:
        builds = {"A": self.args.a, "B": self.args.b}
        out: dict = {"size_mb": self.args.size_mb, "reps": self.args.reps, "load_start": os.getloadavg()}
        for op in ("incremental", "delta"):
            walls: dict[str, list[float]] = {"A": [], "B": []}
            for k in range(self.args.reps):
                for name in ("A", "B") if k % 2 == 0 else ("B", "A"):
                    if op == "delta":
                        self.copy.stop("fast")  # the previous restore left it running, promoted
                        argv = self.restore_argv(builds[name], self.incr_id, delta=True)
                    else:
                        argv = self.backup_argv(builds[name])
                    os.sync()
                    time.sleep(0.5)
                    walls[name].append(seawall_json(argv)[0])
            out[op] = {name: {"median": statistics.median(v), "runs": v} for name, v in walls.items()}
            log(f"{op}: A median {out[op]['A']['median']:.3f} s {fmt(walls['A'])}; "
                f"B median {out[op]['B']['median']:.3f} s {fmt(walls['B'])}")
        out["load_end"] = os.getloadavg()
        return out

    def cleanup(self) -> None:
        for cluster in (self.copy, self.primary):
            if cluster is not None and cluster.is_running():
                cluster.stop("immediate")
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def fmt(values: list[float]) -> str:
    return "(" + " ".join(f"{v:.3f}" for v in values) + ")"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="seawall executable A (the baseline; its wal-push archives)")
    ap.add_argument("--b", required=True, help="seawall executable B")
    ap.add_argument("--size-mb", type=int, default=250)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    args.a, args.b = (str(Path(shutil.which(x) or x).absolute()) for x in (args.a, args.b))
    bench = StartAB(args)
    try:
        bench.setup()
        res = bench.run()
    finally:
        bench.cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    print(json.dumps({op: {n: round(v["median"], 3) for n, v in res[op].items()} for op in ("incremental", "delta")}))
    sys.exit(0)


if __name__ == "__main__":
    main()

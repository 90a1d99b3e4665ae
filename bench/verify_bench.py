"""Restore-verification benchmark: verify a ~1 GB logical backup vs a plain `pg_restore -j2`, same run.

    uv run python -m bench.verify_bench --size-mb 1000 --reps 2 --json bench/out/verify-1g.json
    uv run python -m bench.verify_bench --size-mb 50 --reps 1         # a quick smoke run

Set-up: a throwaway source cluster holds a realistic database (`seawall.postgres.datagen`, ~2-3x
compressible text/json/numeric/bytea with indexes). It is backed up with `backup_logical(jobs=2)`
into a fresh file:// vault, and dumped with `pg_dump -Fd -Z0 -j2` into a local folder (the
equivalent uncompressed dump, same disk). Both stay in the page cache (23 GiB RAM).

Timed, alternating which goes first, each after `sync`:

- baseline: `createdb` + `pg_restore -Fd -j2` of the dump into a running cluster configured like
  the verification's scratch cluster (fsync off);
- seawall: the `restore-verification` flow (`verify_restore`, under an ephemeral Prefect API started
  before timing): throwaway cluster, restore from the vault, then every check (rows + checksums of
  every table, schema, amcheck heapallindexed on every btree index, the built-in GX suite).

Target: restore + all checks <= 1.5x the baseline. Reported: the flow's own phases, and the whole
flow wall (scratch initdb/start and teardown, Prefect and Great Expectations overhead included).

CPU: a sampler reads the machine's busy time (/proc/stat) every 0.1 s, so every phase also gets its
CPU seconds (all processes: PostgreSQL, pg_restore, psql, Python). On a CPU-bound run
`cpu_s / cores` is the least wall time that phase can take, however its work is scheduled.
The first repetition imports Great Expectations during its checks (as a fresh flow-run process
does); later ones find it imported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster, make_private_dir
from seawall.postgres.conn import PgConn

PASSPHRASE = "verify-bench-passphrase"
DB = "shop"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def settle() -> None:
    os.sync()
    time.sleep(1)


def _busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class CpuClock:
    """Samples busy CPU seconds against wall-clock time, to attribute CPU to any past interval."""

    def __init__(self, interval: float = 0.1):
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), _busy_seconds()))
            self._stop.wait(interval)

    def cpu_between(self, start: float, end: float) -> float:
        """Busy CPU seconds between two `time.time()` values (nearest samples)."""
        def at(t: float) -> float:
            return min(self.samples, key=lambda s: abs(s[0] - t))[1]
        return round(at(end) - at(start), 1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class Bench:
    """One source cluster, one vault, one dump; then timed repetitions of both restores."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.root = make_private_dir("seawall-verify-bench-", args.workdir)
        self.source: LocalCluster | None = None
        self.target: LocalCluster | None = None
        self.results: dict[str, Any] = {"size_mb": args.size_mb, "reps": args.reps, "baseline": [], "verify": [],
                                        "baseline_cpu_s": [], "loadavg_before": os.getloadavg()}
        self.cpu = CpuClock()

    def setup(self) -> None:
        from seawall.postgres import datagen
        from seawall.postgres.logical import backup_logical
        from seawall.vault import init_vault

        self.source = LocalCluster.create(self.root)
        self.source.start()
        self.source.execute(f"CREATE DATABASE {DB}")
        conn = PgConn(self.source.conninfo(DB))
        t0 = time.perf_counter()
        datagen.generate(conn, self.args.size_mb, seed=1)
        self.source.execute("VACUUM ANALYZE", dbname=DB)
        size = self.source.execute("SELECT pg_database_size(%s)", (DB,))[0][0]
        log(f"generated {size / 1e6:.0f} MB in {time.perf_counter() - t0:.0f}s")
        vault_dir = make_private_dir("vault-", str(self.root))
        self.vault_url = f"file://{vault_dir}"
        vault = init_vault(self.vault_url, PASSPHRASE)
        t0 = time.perf_counter()
        manifest = backup_logical(vault, conn, "bench-shop", jobs=2)
        log(f"seawall backup {manifest.stats.bytes_total / 1e6:.0f} MB in {time.perf_counter() - t0:.0f}s")
        self.dump = self.root / "dump"
        t0 = time.perf_counter()
        binaries.run([binaries.tool("pg_dump"), "-Fd", "-Z0", "-j2", "-f", str(self.dump), "-d",
                      self.source.conninfo(DB)], as_server_user=False)
        dump_bytes = sum(f.stat().st_size for f in self.dump.iterdir())
        log(f"pg_dump -Fd -Z0 -j2 {dump_bytes / 1e6:.0f} MB in {time.perf_counter() - t0:.0f}s")
        self.results.update(db_bytes=size, dump_bytes=dump_bytes, backup_bytes=manifest.stats.bytes_total)
        self.source.stop()  # the source plays no part in the timed runs
        self.target = LocalCluster.create(self.root, settings={"fsync": "off"})
        self.target.start()

    def baseline(self, rep: int) -> float:
        name = f"plain_{rep}"
        settle()
        t0, w0 = time.perf_counter(), time.time()
        self.target.execute(f"CREATE DATABASE {name}")
        binaries.run([binaries.tool("pg_restore"), "-Fd", "-j2", "--exit-on-error", "--no-owner", "-d",
                      self.target.conninfo(name), str(self.dump)], as_server_user=False)
        wall, w1 = time.perf_counter() - t0, time.time()
        self.target.execute(f"DROP DATABASE {name}")
        cpu = self.cpu.cpu_between(w0, w1)
        log(f"baseline pg_restore -j2: {wall:.1f}s, {cpu} CPU s")
        self.results["baseline"].append(round(wall, 2))
        self.results["baseline_cpu_s"].append(cpu)
        return wall

    def verify(self, rep: int) -> float:
        from flows.restore_verification import verify_restore

        settle()
        t0 = time.perf_counter()
        report = verify_restore(self.vault_url, "bench-shop", jobs=2)
        wall = time.perf_counter() - t0
        p = report.phases
        restore_and_checks = report.rto_restore_s + p.get("checks", 0)
        row = {"flow_wall": round(wall, 2), "restore_and_checks": round(restore_and_checks, 2),
               "status": report.status, "phases": p, "checks": len(report.checks),
               "check_seconds": _check_seconds(report), "phase_cpu_s": self._phase_cpu(report)}
        log(f"verify: {report.status}, restore+checks {restore_and_checks:.1f}s, flow wall {wall:.1f}s, phases {p}, "
            f"CPU s {row['phase_cpu_s']}")
        self.results["verify"].append(row)
        return restore_and_checks

    def _phase_cpu(self, report) -> dict[str, float]:
        """CPU seconds per flow phase, taking the phases as back to back from the report's start
        (the small gaps between tasks shift the boundaries by well under 0.1 s)."""
        out, t = {}, report.started_at.timestamp()
        for name, seconds in report.phases.items():
            out[name] = self.cpu.cpu_between(t, t + seconds)
            t += seconds
        return out

    def run(self) -> dict[str, Any]:
        self.setup()
        for rep in range(self.args.reps):
            order = [self.baseline, self.verify] if rep % 2 == 0 else [self.verify, self.baseline]
            for step in order:
                step(rep)
        base = statistics.median(self.results["baseline"])
        mine = statistics.median(r["restore_and_checks"] for r in self.results["verify"])
        flow = statistics.median(r["flow_wall"] for r in self.results["verify"])
        self.results.update(baseline_median=round(base, 2), verify_median=round(mine, 2),
                            flow_wall_median=round(flow, 2), ratio=round(mine / base, 3),
                            ratio_flow_wall=round(flow / base, 3), target=1.5, machine=_machine(),
                            loadavg_after=os.getloadavg())
        return self.results

    def close(self) -> None:
        self.cpu.close()
        for cluster in (self.target, self.source):
            if cluster is not None:
                cluster.remove()
        shutil.rmtree(self.root, ignore_errors=True)


def _check_seconds(report) -> dict[str, float]:
    """Summed seconds per check name (parallel checks overlap: the sum exceeds the wall time)."""
    out: dict[str, float] = {}
    for c in report.checks:
        out[c.name] = round(out.get(c.name, 0) + c.seconds, 2)
    return out


def _machine() -> dict[str, Any]:
    version = subprocess.run([binaries.tool("postgres"), "--version"], capture_output=True, text=True).stdout
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "postgres": version.strip(),
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    for name, value in {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false",
                        "SEAWALL_PASSPHRASE": PASSPHRASE,
                        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}.items():
        os.environ.setdefault(name, value)
    from prefect.testing.utilities import prefect_test_harness

    bench = Bench(args)
    try:
        with prefect_test_harness(server_startup_timeout=120):
            results = bench.run()
    finally:
        bench.close()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(f"verification (restore + all checks) / pg_restore -j2 = {results['ratio']:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()

"""MariaDB and Redis benchmark: seawall beside the native tools, every baseline in the same run.

    flock /tmp/seawall-heavy.lock .venv/bin/python -m bench.sources_bench --reps 3 --json bench/out/sources.json
    .venv/bin/python -m bench.sources_bench --rows 100000 --keys 100000 --reps 1     # a quick smoke run

One throwaway MariaDB server (binary logging on) holds the generated shop database of the tests
(`tests/fixtures/datagen_sources.py`: 1M rows across four related tables, a trigger, a view, a
procedure); one throwaway Redis server holds 1M keys of every type. Every operation is a whole
process, as users run it: `seawall` through its CLI with no Prefect API configured (plain mode),
the baselines as shell pipelines. Repetitions alternate which side goes first; figures are medians.

- mariadb logical backup: `seawall backup mariadb` into a fresh file:// vault vs
  `mariadb-dump --single-transaction --quick | zstd -1 > file`;
- mariadb logical restore: `seawall restore --to-mariadb` (it also checks every table's rows and
  checksum afterwards: a second full read) vs `zstd -dc file | mariadb db`;
- mariadb physical backup: `seawall backup mariadb --mode physical` vs
  `mariadb-backup --backup --stream=xbstream | zstd -1 > file`;
- mariadb physical restore: `seawall restore --to-datadir` vs
  `zstd -dc file | mbstream -x -C dir && mariadb-backup --prepare`;
- redis backup: `seawall backup redis` (facts before and after included) vs `redis-cli --rdb file`;
- redis restore: `seawall restore --to-redis` into an empty running server (a throwaway server loads
  the snapshot, keys copied with DUMP/RESTORE) vs the RDB file copied into a new server's directory
  and the server started until loaded (what a restore onto a stopped server costs).

seawall's bytes are compressed (zstd) and encrypted; the baselines' are compressed only (the
redis-cli baseline: neither).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEAWALL = str(Path(sys.executable).with_name("seawall"))
PASS = "bench passphrase"


CPU: dict[str, float] = {}  # the last operation's CPU seconds in child processes (the servers' excluded)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: str, env: dict | None = None) -> float:
    start, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True, env=env, stdout=subprocess.DEVNULL)
    CPU["last"] = _children_cpu() - cpu
    return time.perf_counter() - start


def seawall(*args: str, env: dict) -> tuple[float, dict]:
    start, cpu = time.perf_counter(), _children_cpu()
    out = subprocess.run([SEAWALL, *args, "--json"], check=True, env=env, capture_output=True, text=True)
    CPU["last"] = _children_cpu() - cpu
    return time.perf_counter() - start, json.loads(out.stdout)


def setup(rows: int, keys: int, work: Path):
    sys.path.insert(0, str(REPO))
    from seawall.mariadb.server import LocalServer, chown_to_server_user
    from seawall.redis.server import LocalRedis
    from tests.fixtures.datagen_sources import create_shop, populate_redis

    chown_to_server_user(work)
    db = LocalServer.create(work, binlog=True)
    db.start()
    scale = rows / 1_000_000
    create_shop(db, "shop", int(100_000 * scale), int(300_000 * scale), int(300_000 * scale))
    cache = LocalRedis.create()  # /tmp: the redis OS user cannot enter the mysql-owned work dir
    cache.start()
    populate_redis(cache, int(keys * 0.88), int(keys * 0.12), 100)
    return db, cache


def one_rep(rep: int, db, cache, work: Path, env: dict) -> dict[str, dict[str, float]]:
    """One repetition of every operation; which side goes first alternates with `rep`."""
    from seawall.mariadb.server import chown_to_server_user
    from seawall.redis.server import LocalRedis
    from seawall.vault import init_vault

    d = work / f"rep{rep}"
    d.mkdir()
    chown_to_server_user(d)
    vault = f"file://{d}/vault"
    init_vault(vault, PASS)
    dsn, opts = f"mysql://root@localhost/shop?socket={db.socket}", f"--socket={db.socket} -uroot"
    out: dict[str, dict[str, float]] = {}

    def pair(name: str, ours, theirs) -> None:
        first, second = (ours, theirs) if rep % 2 == 0 else (theirs, ours)
        results = {}
        for label, fn in ((("seawall", first) if first is ours else ("baseline", first)),
                          (("seawall", second) if second is ours else ("baseline", second))):
            subprocess.run(["sync"], check=True)
            results[label] = fn()
            results[f"{label}_cpu"] = CPU.get("last", 0.0)
        out[name] = results
        print(f"rep {rep} {name}: seawall {results['seawall']:.2f} s ({results['seawall_cpu']:.1f} CPU-s), "
              f"baseline {results['baseline']:.2f} s ({results['baseline_cpu']:.1f} CPU-s), "
              f"load {os.getloadavg()[0]:.1f}", flush=True)

    ids: dict[str, str] = {}

    def ours_backup(kind: str, *args: str) -> float:
        secs, row = seawall("backup", *args, "--vault", vault, env=env)
        ids[kind] = row["backup_id"]
        return secs

    pair("mariadb logical backup", lambda: ours_backup("logical", "mariadb", "--dsn", dsn),
         lambda: timed(f"mariadb-dump --no-defaults {opts} --single-transaction --quick --routines --triggers "
                       f"--events shop | zstd -1 -q > {d}/shop.sql.zst"))
    pair("mariadb logical restore",
         lambda: seawall("restore", ids["logical"], "--vault", vault, "--to-mariadb",
                         f"mysql://root@localhost/ours{rep}?socket={db.socket}", env=env)[0],
         lambda: timed(f"mariadb --no-defaults {opts} -e 'CREATE DATABASE theirs{rep}' && "
                       f"zstd -dc {d}/shop.sql.zst | mariadb --no-defaults {opts} theirs{rep}"))
    pair("mariadb physical backup", lambda: ours_backup("physical", "mariadb", "--dsn", dsn, "--mode", "physical"),
         lambda: timed(f"mariadb-backup --no-defaults {opts} --backup --stream=xbstream --target-dir={d}/mb-tmp "
                       f"2>/dev/null | zstd -1 -q > {d}/phys.xb.zst"))
    pair("mariadb physical restore",
         lambda: seawall("restore", ids["physical"], "--vault", vault, "--to-datadir", str(d / "ours-data"),
                         env=env)[0],
         lambda: timed(f"mkdir {d}/theirs-data && zstd -dc {d}/phys.xb.zst | mbstream -x -C {d}/theirs-data && "
                       f"mariadb-backup --prepare --target-dir={d}/theirs-data 2>/dev/null"))
    rurl = f"unix://{cache.socket}"
    pair("redis backup", lambda: ours_backup("redis", "redis", "--url", rurl),
         lambda: timed(f"redis-cli -s {cache.socket} --rdb {d}/dump.rdb 2>/dev/null"))

    def theirs_redis() -> float:
        target = LocalRedis.create()
        start = time.perf_counter()
        shutil.copy(d / "dump.rdb", target.rdb)
        target.start(timeout=600)
        secs = time.perf_counter() - start
        target.remove()
        return secs

    def ours_redis() -> float:
        target = LocalRedis.create()
        target.start()
        try:
            return seawall("restore", ids["redis"], "--vault", vault, "--to-redis",
                           f"unix://{target.socket}", env=env)[0]
        finally:
            target.remove()

    pair("redis restore", ours_redis, theirs_redis)
    shutil.rmtree(d, ignore_errors=True)
    for name in (f"ours{rep}", f"theirs{rep}"):
        db.execute(f"DROP DATABASE IF EXISTS {name}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SEAWALL_"))}
    env["SEAWALL_PASSPHRASE"] = PASS
    work = Path(tempfile.mkdtemp(prefix="seawall-bench-sources-"))
    db = cache = None
    try:
        db, cache = setup(args.rows, args.keys, work)
        reps = [one_rep(i, db, cache, work, env) for i in range(args.reps)]
    finally:
        for server in (db, cache):
            if server is not None:
                server.remove()
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for name in reps[0]:
        ours = statistics.median(r[name]["seawall"] for r in reps)
        theirs = statistics.median(r[name]["baseline"] for r in reps)
        ocpu = statistics.median(r[name]["seawall_cpu"] for r in reps)
        tcpu = statistics.median(r[name]["baseline_cpu"] for r in reps)
        summary[name] = {"seawall_s": round(ours, 2), "baseline_s": round(theirs, 2), "ratio": round(ours / theirs, 2),
                         "seawall_cpu_s": round(ocpu, 2), "baseline_cpu_s": round(tcpu, 2)}
        print(f"{name:26s} seawall {ours:7.2f} s ({ocpu:6.1f} CPU-s)  baseline {theirs:7.2f} s ({tcpu:6.1f} CPU-s)"
              f"  {ours / theirs:5.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": args.rows, "keys": args.keys, "reps": reps, "median": summary,
                                         "load": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()

"""A/B of a physical backup's fixed costs: two seawall builds back up one kept cluster, alternating.

    .venv/bin/python -m bench.pg_fixed_ab setup --root /tmp/pgfixed-ab --size-mb 1000
    bench/gate bench .venv/bin/python -m bench.pg_fixed_ab ab --root /tmp/pgfixed-ab \\
        --a /tmp/main-clone/.venv/bin/seawall --b .venv/bin/seawall --reps 8 --full-reps 3
    .venv/bin/python -m bench.pg_fixed_ab stop --root /tmp/pgfixed-ab

`setup` makes one primary (PostgreSQL 15 as `postgres`, data checksums, fsync on; `bench.pg_common`'s
settings) with the realistic `datagen` database, archiving with `seawall wal-push` (the build given
by `--archiver`, default this one) into a file:// vault. `ab` times whole `seawall backup postgres
--mode physical` processes of builds A and B into that vault, alternating A B B A ...: first
`--full-reps` fulls each (`--full`), then `--reps` incrementals each, every one after
`datagen.mutate(--fraction)`, a CHECKPOINT, the archiver caught up and a `sync` (so each build
meets the same state). It prints per-run wall times and the medians; `--json` writes them.
`--disturb-mb N`: during each backup another process (`dd`) writes N MB into the same file system.
The cluster is kept between runs (`stop` stops it and removes the root).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from bench.pg_common import DB, MB, PASSPHRASE, SEAWALL_BIN, measure, med, private_dir, private_file, settle
from seawall.postgres.cluster import LocalCluster


def _state(root: Path) -> dict:
    return json.loads((root / "state.json").read_text())


def _cluster(state: dict) -> LocalCluster:
    return LocalCluster(state["datadir"], state["port"], socket_dir=state["socket_dir"])


def setup(args: argparse.Namespace) -> None:
    from seawall.postgres import datagen
    from seawall.vault import init_vault

    root = Path(args.root)
    private_dir(root)
    os.chmod(root, 0o755)
    vault = private_dir(root / "vault")
    url = f"file://{vault}"
    init_vault(url, PASSPHRASE)
    passfile = private_file(root / "passphrase", PASSPHRASE)
    cluster = LocalCluster.create(root, settings={"archive_mode": "on", "max_wal_size": "1GB"})
    cluster.configure({"archive_command": f"{args.archiver} wal-push %p --vault {url} --passphrase-file {passfile}"})
    cluster.start()
    cluster.execute(f"CREATE DATABASE {DB}")
    t0 = time.perf_counter()
    datagen.generate(cluster.conninfo(DB), args.size_mb, seed=42)
    cluster.execute("VACUUM (FREEZE, ANALYZE)", dbname=DB)
    cluster.execute("CHECKPOINT")
    size = cluster.execute("SELECT sum(pg_database_size(oid)) FROM pg_database")[0][0]
    state = {"datadir": str(cluster.datadir), "port": cluster.port, "socket_dir": str(cluster.socket_dir),
             "vault": url, "passphrase_file": str(passfile), "seed": 100}
    (root / "state.json").write_text(json.dumps(state))
    print(f"{size / MB:.0f} MB cluster in {time.perf_counter() - t0:.0f}s: {cluster.conninfo()}")


def _caught_up(cluster: LocalCluster, timeout: float = 300) -> None:
    seg = cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    deadline = time.monotonic() + timeout
    status = Path(cluster.datadir) / "pg_wal" / "archive_status"
    while True:
        last = cluster.execute("SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
        if (last and last[:24] >= seg) or (status / f"{seg}.done").exists():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{seg} not archived after {timeout:.0f}s")
        time.sleep(0.2)


def _one(state: dict, binary: str, *, full: bool, fraction: float, root: Path, disturb_mb: int = 0) -> dict:
    from seawall.postgres import datagen

    cluster = _cluster(state)
    state["seed"] += 1
    rows = datagen.mutate(cluster.conninfo(DB), fraction, seed=state["seed"]) if fraction else 0
    cluster.execute("CHECKPOINT")
    _caught_up(cluster)
    settle()
    out = root / "report.json"
    argv = [binary, "backup", "postgres", "--dsn", cluster.conninfo(), "--vault", state["vault"], "--mode",
            "physical", "--dataset", "cluster", "--passphrase-file", state["passphrase_file"], "--json"]
    writer = None
    if disturb_mb:  # another process writing to the same file system meanwhile (its pages left dirty)
        writer = subprocess.Popen(["dd", "if=/dev/zero", f"of={root}/other-writer", "bs=1M", f"count={disturb_mb}"],
                                  stderr=subprocess.DEVNULL)
        time.sleep(0.2)
    try:
        m = measure(argv + (["--full"] if full else []), stdout=out)
    finally:
        if writer is not None:
            writer.wait()
            (root / "other-writer").unlink()
    report = json.loads(out.read_text())
    return {"wall_s": round(m.wall_s, 4), "cpu_s": round(m.cpu_s, 3), "rows": rows,
            "stored_new": report.get("stored_bytes_new"), "stderr": m.stderr[-2000:]}


def ab(args: argparse.Namespace) -> None:
    root = Path(args.root)
    state = _state(root)
    builds = {"A": args.a, "B": args.b}
    runs: dict[str, dict[str, list]] = {"full": {"A": [], "B": []}, "incr": {"A": [], "B": []}}
    print(f"{time.strftime('%H:%M:%S')} {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    for kind, reps in (("full", args.full_reps), ("incr", args.reps)):
        for k in range(reps):
            for name in ("AB" if k % 2 == 0 else "BA"):
                r = _one(state, builds[name], full=kind == "full", fraction=args.fraction, root=root,
                         disturb_mb=args.disturb_mb)
                runs[kind][name].append(r)
                print(f"{time.strftime('%H:%M:%S')} {kind} {name} {r['wall_s']:.3f} s (cpu {r['cpu_s']:.2f}, "
                      f"rows {r['rows']}, new {r['stored_new']})", flush=True)
                if args.show_stderr and r["stderr"].strip():
                    print(r["stderr"].rstrip())
    (root / "state.json").write_text(json.dumps(state))
    summary = {}
    for kind, per in runs.items():
        if not per["A"]:
            continue
        a, b = med([r["wall_s"] for r in per["A"]]), med([r["wall_s"] for r in per["B"]])
        summary[kind] = {"A_median_s": a, "B_median_s": b, "A": [r["wall_s"] for r in per["A"]],
                         "B": [r["wall_s"] for r in per["B"]]}
        print(f"{kind}: A median {a:.3f} s {summary[kind]['A']}  B median {b:.3f} s {summary[kind]['B']}  "
              f"B/A {b / a:.3f}")
    print(f"{time.strftime('%H:%M:%S')} {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"builds": builds, "summary": summary, "runs": runs}, indent=1))


def stop(args: argparse.Namespace) -> None:
    root = Path(args.root)
    cluster = _cluster(_state(root))
    if cluster.is_running():
        cluster.stop("fast")
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--root", required=True)
    s.add_argument("--size-mb", type=int, default=1000)
    s.add_argument("--archiver", default=SEAWALL_BIN, help="the seawall build whose wal-push archives")
    a = sub.add_parser("ab")
    a.add_argument("--root", required=True)
    a.add_argument("--a", required=True, help="seawall executable of build A (the baseline)")
    a.add_argument("--b", required=True, help="seawall executable of build B")
    a.add_argument("--reps", type=int, default=6, help="incrementals per build")
    a.add_argument("--full-reps", type=int, default=0, help="full backups per build, first")
    a.add_argument("--fraction", type=float, default=0.01, help="datagen.mutate fraction before each backup")
    a.add_argument("--disturb-mb", type=int, default=0,
                   help="another process (dd) writes this many MB to the same file system during each backup")
    a.add_argument("--show-stderr", action="store_true")
    a.add_argument("--json")
    t = sub.add_parser("stop")
    t.add_argument("--root", required=True)
    args = parser.parse_args()
    {"setup": setup, "ab": ab, "stop": stop}[args.cmd](args)


if __name__ == "__main__":
    main()

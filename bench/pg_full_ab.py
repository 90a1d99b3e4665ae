"""A/B of a physical full backup's whole process, two builds (or two sets of options), with pg_basebackup.

    .venv/bin/python -m bench.pg_fixed_ab setup --root /tmp/fullpath-ab --size-mb 1000
    bench/gate bench .venv/bin/python -m bench.pg_full_ab --root /tmp/fullpath-ab \\
        --a /tmp/main-clone/.venv/bin/seawall --b .venv/bin/seawall --reps 4 --level 1
    .venv/bin/python -m bench.pg_fixed_ab stop --root /tmp/fullpath-ab

Uses the cluster `bench.pg_fixed_ab setup` keeps. Every full goes into a **new vault** (as in
bench/pg_phys_bench.py: every chunk is new, so it is compressed, sealed and written; a full into a
vault that has the chunks already only reads and hashes), and the archive is pointed at that vault
first (ALTER SYSTEM + reload, then a switched segment archived), so the backup's stop segment lands
where the backup waits for it. Order per rep: A B P, then P B A, ... (P: `pg_basebackup -Ft -X fetch
-D - --checkpoint=fast` to /dev/null as the postgres user). Before each timed process: CHECKPOINT,
the archiver caught up, `sync` and 1 s of rest. Prints per-run wall and CPU (user+sys of the process
tree) and the medians; each vault is removed once the archive points at the next.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

from bench.pg_common import MB, PASSPHRASE, measure, med, pg_tool, private_dir, settle
from bench.pg_fixed_ab import _caught_up, _cluster, _state


def _new_vault(root: Path, state: dict, k: int) -> tuple[Path, str]:
    from seawall.vault import init_vault

    path = private_dir(root / f"full-vault-{time.time_ns()}-{k}")
    url = f"file://{path}"
    init_vault(url, PASSPHRASE)
    cluster = _cluster(state)
    archiver = state.get("archiver", "seawall")
    command = f"{archiver} wal-push %p --vault {url} --passphrase-file {state['passphrase_file']}"
    quoted = command.replace("'", "''")
    cluster.execute(f"ALTER SYSTEM SET archive_command = '{quoted}'")
    cluster.execute("SELECT pg_reload_conf()")
    time.sleep(0.2)
    _caught_up(cluster)  # a segment switched after the reload: archived into the new vault
    return path, url


def _seawall(state: dict, binary: str, url: str, extra: list[str], root: Path) -> dict:
    cluster = _cluster(state)
    cluster.execute("CHECKPOINT")
    _caught_up(cluster)
    settle()
    out = root / "report.json"
    argv = [binary, "backup", "postgres", "--dsn", cluster.conninfo(), "--vault", url, "--mode", "physical",
            "--dataset", "cluster", "--passphrase-file", state["passphrase_file"], "--json", "--full", *extra]
    m = measure(argv, stdout=out)
    report = json.loads(out.read_text())
    return {"wall_s": round(m.wall_s, 3), "cpu_s": round(m.cpu_s, 3), "stored_new": report.get("stored_bytes_new")}


def _basebackup(state: dict) -> dict:
    cluster = _cluster(state)
    cluster.execute("CHECKPOINT")
    _caught_up(cluster)
    settle()
    argv = [pg_tool("pg_basebackup"), "-h", state["socket_dir"], "-p", str(state["port"]), "-U", "postgres",
            "-Ft", "-X", "fetch", "-D", "-", "--checkpoint=fast"]
    m = measure(argv, user="postgres")
    return {"wall_s": round(m.wall_s, 3), "cpu_s": round(m.cpu_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--a", required=True, help="seawall executable of build A (the baseline)")
    parser.add_argument("--b", required=True, help="seawall executable of build B")
    parser.add_argument("--a-args", default="", help="extra options of A's backups")
    parser.add_argument("--b-args", default="", help="extra options of B's backups")
    parser.add_argument("--level", type=int, default=1, help="--compress-level of both (1: the default)")
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--no-basebackup", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    root = Path(args.root)
    state = _state(root)
    state["archiver"] = args.a
    level = ["--compress-level", str(args.level)]
    builds = {"A": (args.a, args.a_args.split() + level), "B": (args.b, args.b_args.split() + level)}
    runs: dict[str, list[dict]] = {"A": [], "B": [], "P": []}
    print(f"{time.strftime('%H:%M:%S')} {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    order = "AB" if args.no_basebackup else "ABP"
    n, old = 0, None
    for k in range(args.reps):
        for name in (order if k % 2 == 0 else order[::-1]):
            if name == "P":
                r = _basebackup(state)
            else:
                path, url = _new_vault(root, state, n)
                n += 1
                if old is not None:  # the archive points at the new one now
                    shutil.rmtree(old)
                old = path
                r = _seawall(state, builds[name][0], url, builds[name][1], root)
            runs[name].append(r)
            print(f"{time.strftime('%H:%M:%S')} {name} {r['wall_s']:.3f} s cpu {r['cpu_s']:.2f} s "
                  f"stored {(r.get('stored_new') or 0) / MB:.0f} MB", flush=True)
    summary = {}
    for name, rs in runs.items():
        if rs:
            summary[name] = {"wall_median_s": med([r["wall_s"] for r in rs]),
                             "cpu_median_s": med([r["cpu_s"] for r in rs]), "wall": [r["wall_s"] for r in rs]}
            print(f"{name}: wall median {summary[name]['wall_median_s']:.3f} s {summary[name]['wall']}  "
                  f"cpu median {summary[name]['cpu_median_s']:.2f} s")
    if runs["P"]:
        p = summary["P"]["wall_median_s"]
        print(f"A/P {summary['A']['wall_median_s'] / p:.2f}x  B/P {summary['B']['wall_median_s'] / p:.2f}x  "
              f"B/A {summary['B']['wall_median_s'] / summary['A']['wall_median_s']:.3f}")
    print(f"{time.strftime('%H:%M:%S')} {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"builds": builds, "summary": summary, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()

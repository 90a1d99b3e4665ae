"""A/B of exec→flow start (`bench/start_to_flow.py`) for builds of seawall, whole processes, in turn.

    bench/gate bench .venv/bin/python -m bench.start_ab --root /tmp/pgfixed-cli --cmd backup --reps 31 \\
        base=/tmp/base-clone lane=.

Each build is a source tree run by this venv's interpreter with PYTHONPATH=TREE (so both use the same
installed packages and both trees should have compiled bytecode: `python -m compileall -q seawall flows
tasks deployments blocks` in each). `--root` is a `bench.pg_fixed_ab setup` root (cluster, vault,
passphrase file); `--backup-id` picks the backup `restore` starts on (default: the vault's newest).
The order of the builds rotates each repetition; medians and quartiles per build are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _argv(root: Path, cmd: str, backup_id: str | None) -> list[str]:
    st = json.loads((root / "state.json").read_text())
    common = ["--vault", st["vault"], "--passphrase-file", st["passphrase_file"]]
    if cmd == "backup":
        dsn = f"host={st['socket_dir']} port={st['port']} user=postgres dbname=postgres"
        return ["backup", "postgres", "--mode", "physical", "--dsn", dsn, *common]
    if backup_id is None:
        manifests = Path(st["vault"].removeprefix("file://")) / "manifests"
        backup_id = max(p.name for p in manifests.rglob("*") if p.is_file())  # ids start with their time
    return ["restore", backup_id, *common, "--to-datadir", str(root / "restored"), "--delta"]


def _once(tree: str, argv: list[str]) -> float:
    env = os.environ | {"PYTHONPATH": str(Path(tree).resolve())}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, str(Path(tree).resolve() / "bench" / "start_to_flow.py"), *argv], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd="/tmp")
    wall = time.perf_counter() - t0
    if "MARK" not in p.stderr:
        sys.exit(f"{tree}: the command did not reach its flow:\n{p.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--cmd", choices=("backup", "restore"), required=True)
    parser.add_argument("--reps", type=int, default=31)
    parser.add_argument("--backup-id")
    parser.add_argument("builds", nargs="+", help="NAME=TREE, the first is the baseline")
    args = parser.parse_args()
    builds = [b.split("=", 1) for b in args.builds]
    argv = _argv(Path(args.root), args.cmd, args.backup_id)
    walls: dict[str, list[float]] = {name: [] for name, _ in builds}
    for i in range(args.reps):
        k = i % len(builds)
        for name, tree in builds[k:] + builds[:k]:
            walls[name].append(_once(tree, argv))
    base = statistics.median(walls[builds[0][0]])
    for name, _ in builds:
        w = walls[name]
        q = statistics.quantiles(w, n=4) if len(w) > 1 else [w[0]] * 3
        print(f"{args.cmd} {name}: median {statistics.median(w) * 1000:.0f} ms (quartiles {q[0] * 1000:.0f}-"
              f"{q[2] * 1000:.0f}, min {min(w) * 1000:.0f}), {1000 * (statistics.median(w) - base):+.0f} ms "
              f"vs {builds[0][0]}")


if __name__ == "__main__":
    main()

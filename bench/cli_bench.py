"""Whole-process cost of the CLI, beside restic on the same tree in the same run (bench/CLI.md).

What a user feels when seawall runs from cron or a shell: the wall time, CPU time and peak RSS of
the whole `seawall` process, start to exit. Measured, alternating seawall and restic, `--reps`
times each (medians reported):

- a no-change re-backup of a 5,000-file tree (~14 MiB of mixed text and binaries, nested folders)
  vs `restic backup` of the same tree into its own repository;
- `seawall list` vs `restic snapshots`;
- `seawall --help` and a usage error (`backup files` of a missing folder).

No Prefect API is configured (an empty PREFECT_HOME, no PREFECT_* variables): the plain runtime,
which is what a CLI user without a Prefect server gets.

    flock /tmp/seawall-heavy.lock .venv/bin/python -m bench.cli_bench --reps 7 --json bench/cli.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, machine, median
from bench.datagen import BIN_KINDS, TEXT_KINDS, FileSpec, _write_binary, _write_text

SEAWALL = str(Path(sys.executable).with_name("seawall"))
PASSPHRASE = "bench passphrase, not a secret"


def make_tree(root: Path, files: int = 5000, size: int = 14 << 20, seed: int = 14) -> dict:
    """`files` files adding up to `size` bytes: 60% text (logs, CSV, JSON lines), 40% binary,
    log-uniform sizes from 256 B to 16 KiB, 100 folders two levels deep, fixed mtimes."""
    rng = random.Random(seed)
    raw = [math.exp(rng.uniform(math.log(256), math.log(16 << 10))) for _ in range(files)]
    scale = size / sum(raw)
    for i, weight in enumerate(raw):
        kind = rng.choice(TEXT_KINDS) if rng.random() < 0.6 else rng.choice(BIN_KINDS)
        path = root / f"dept-{i % 10}" / f"team-{i % 100:02d}" / f"file-{i:05d}.{kind}"
        path.parent.mkdir(parents=True, exist_ok=True)
        spec = FileSpec(str(path), kind, max(1, int(weight * scale)), rng.getrandbits(63))
        (_write_text if kind in TEXT_KINDS else _write_binary)(path, spec)
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {"files": files, "bytes": total}


def measure(cmd: list[str], env: dict, ok: tuple[int, ...] = (0,)) -> dict:
    """Wall, CPU (user + system) and peak RSS of one whole child process (from wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}: {err.decode(errors='replace')[-500:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024}


def commands(tree: Path, vault: str, repo: Path) -> dict[str, list[str]]:
    return {
        "seawall re-backup": [SEAWALL, "backup", "files", str(tree), "--vault", vault, "--dataset", "bench"],
        "restic re-backup": ["restic", "-r", str(repo), "backup", "-q", str(tree)],
        "seawall list": [SEAWALL, "list", "--vault", vault],
        "restic snapshots": ["restic", "-r", str(repo), "snapshots", "-q"],
        "seawall --help": [SEAWALL, "--help"],
        "seawall usage error": [SEAWALL, "backup", "files", str(tree.parent / "missing"), "--vault", vault],
    }


def run(reps: int, workdir: Path) -> dict:
    tree, repo = workdir / "tree", workdir / "restic-repo"
    vault = f"file://{workdir / 'vault'}"
    home = workdir / "prefect-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SEAWALL_", "RESTIC_"))}
    env.update(PREFECT_HOME=str(home), SEAWALL_PASSPHRASE=PASSPHRASE, RESTIC_PASSWORD=PASSPHRASE,
               RESTIC_CACHE_DIR=str(workdir / "restic-cache"))
    data = make_tree(tree)
    cmds = commands(tree, vault, repo)
    measure([SEAWALL, "init", vault], env)
    measure(["restic", "init", "-r", str(repo)], env)
    measure(cmds["seawall re-backup"], env)  # the first backups read everything: not measured
    measure(cmds["restic re-backup"], env)
    samples: dict[str, list[dict]] = {name: [] for name in cmds}
    for _ in range(reps):  # alternating, so drifting machine load hits both sides alike
        for name, cmd in cmds.items():
            samples[name].append(measure(cmd, env, ok=(2,) if name == "seawall usage error" else (0,)))
    results = {name: {k: round(median([s[k] for s in runs]), 3) for k in runs[0]} for name, runs in samples.items()}
    return {"tree": data, "reps": reps, "machine": machine(), "load_after": os.getloadavg()[0],
            "medians": results, "samples": samples,
            "ratios": {"re-backup wall": _ratio(results, "seawall re-backup", "restic re-backup", "wall_s"),
                       "re-backup cpu": _ratio(results, "seawall re-backup", "restic re-backup", "cpu_s"),
                       "list wall": _ratio(results, "seawall list", "restic snapshots", "wall_s")}}


def _ratio(results: dict, a: str, b: str, key: str) -> float:
    return round(results[a][key] / results[b][key], 2)


def table(report: dict) -> str:
    lines = ["| command | wall s | CPU s | peak RSS MiB |", "|---|---|---|---|"]
    for name, m in report["medians"].items():
        lines.append(f"| {name} | {m['wall_s']:.3f} | {m['cpu_s']:.3f} | {m['rss_mib']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the full report here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="seawall-cli-bench-") as tmp:
        report = run(args.reps, Path(tmp))
    print(table(report))
    print(json.dumps({k: report[k] for k in ("tree", "reps", "ratios", "load_after")}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

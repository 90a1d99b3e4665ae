"""Memory at scale: peak RSS of the `seawall` CLI for backup, restore, copy and verify at 1-10 GB.

Each operation runs as users run it, one `seawall` process, and is measured from outside
(bench/scale_measure.py): peak RSS of its process tree and its own high-water mark, wall and CPU
time, bytes, the 1-minute load before and after, whether the machine was the benchmark's alone
(`bench/gate bench`) and the commit measured.

Sources: a file tree (bench/scale_data.make_tree) and a PostgreSQL cluster backed up physically
(bench/scale_data.make_cluster). Vaults are local folders; `copy` goes to a second local vault.
Results are appended to a JSON file as they come (a long run that stops keeps what it measured);
`python -m bench.scale_report` turns them into the table and the plot of bench/SCALE.md.

Run it as root (PostgreSQL runs as the `postgres` user), through the gate on the shared machine:

    bench/gate bench .venv/bin/python -m bench.scale_bench --sources tree --sizes 1G,10G --nice 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import scale_data
from bench.common import MB, REPO, parse_size
from bench.pg_common import private_dir, private_file
from bench.scale_measure import Sample, count_files, du, free_bytes, git_commit, measure, mem_available
from seawall.postgres.cluster import free_port, make_private_dir

SEAWALL = str(Path(sys.executable).with_name("seawall"))
PASSPHRASE = "scale bench passphrase"
GB = 1_000_000_000
# The vault's size against the data's, to check the disk before a backup: the tree's text half
# compresses ~3x (0.63 measured), pgbench rows ~100x (a physical backup with its WAL: ~0.03).
VAULT_SHARE = {"tree": 0.7, "files": 0.7, "pg": 0.1}


# ---- the run -------------------------------------------------------------------------------------
class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.results = Path(args.results)
        self.seawall_bin = args.seawall
        # a venv's bin/seawall runs the checkout the venv was synced from (editable install)
        self.commit = git_commit(Path(args.seawall).resolve().parents[2])
        self.env = {**os.environ, "SEAWALL_PASSPHRASE": PASSPHRASE, "SEAWALL_PREFECT": "off",
                    "SCALE_TMP": str(self.work)}
        self.env.pop("PREFECT_API_URL", None)

    def log(self, msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    def record(self, sample: Sample, commit: str) -> None:
        sample.commit = commit
        rows = json.loads(self.results.read_text()) if self.results.exists() else []
        rows.append(asdict(sample))
        self.results.write_text(json.dumps(rows, indent=1) + "\n")
        self.log(f"{sample.source} {sample.size} {sample.op}: tree peak {sample.tree_peak / MB:.0f} MB, "
                 f"seawall {sample.self_hwm / MB:.0f} MB, {sample.wall_s:.0f} s, load {sample.load_before[0]:.1f}"
                 f"{'' if sample.locked else ' (not alone: run it through bench/gate bench)'}")

    def room(self, need: int, *, restore: bool = False) -> bool:
        """Whether `need` more bytes fit, leaving --min-free on the disk (or, for a restore into
        --restore-dir, a RAM-backed tmpfs: --min-free-ram of MemAvailable)."""
        if restore and self.args.restore_dir:
            left, floor, what = mem_available() - need, self.args.min_free_ram, "RAM available"
        else:
            left, floor, what = free_bytes(self.work) - need, self.args.min_free, "free on disk"
        if left < floor:
            self.log(f"skipped: would leave {left / GB:.1f} GB {what} (< {floor / GB:.0f} GB)")
            return False
        return True

    def restore_target(self, root: Path, name: str) -> Path:
        """Where a restore goes: under `root`, or a new folder in --restore-dir (owned by the
        PostgreSQL user, who must be able to create the data directory there)."""
        if not self.args.restore_dir:
            return root / "restored"
        return make_private_dir(f"scale-{name}-", self.args.restore_dir) / "restored"

    def seawall(self, sample: Sample, *argv: str, binary: str | None = None) -> dict[str, Any]:
        """Measure `seawall ARGV --json` (`binary`: another checkout's seawall, see --also)."""
        result = measure(sample, [binary or self.seawall_bin, *argv, "--json"], self.env)
        self.record(sample, git_commit(Path(binary).resolve().parents[2]) if binary else self.commit)
        return result

    def new_vault(self, root: Path, name: str) -> str:
        url = f"file://{private_dir(root / name)}"
        subprocess.run([self.seawall_bin, "init", url], env=self.env, check=True, capture_output=True)
        return url

    # -- the four operations, common to both sources --
    def ops(self, source: str, size: str, root: Path, url: str, data_bytes: int, backup: list[str],
            restore_to: list[str], restored: Path, drop_source: Callable[[], None]) -> None:
        """backup, then (with the source deleted: the disk holds the vault and one restore at a time)
        restore, copy and verify."""
        mk = lambda op: Sample(source, size, op, data_bytes=data_bytes)  # noqa: E731
        if not self.room(int(data_bytes * VAULT_SHARE[source])):
            return
        s = mk("backup")
        out = self.seawall(s, "backup", *backup, "--vault", url)
        backup_id = out["backup_id"]
        vault_path = Path(url.removeprefix("file://"))
        vault_bytes, vault_files = du(vault_path), count_files(vault_path)
        s.extra.update(backup_id=backup_id, vault_bytes=vault_bytes, vault_files=vault_files,
                       stored_bytes_new=out.get("stored_bytes_new"), files=out.get("files"))
        self.record_extra(s)
        drop_source()
        for binary in [None, *([self.args.also] if "restore" in self.args.also_ops else [])]:
            if "restore" in self.args.ops and self.room(int(data_bytes * 1.1), restore=True):
                s = mk("restore")
                self.seawall(s, "restore", backup_id, "--vault", url, *restore_to, binary=binary)
                s.extra["restored_bytes"] = du(restored)
                self.record_extra(s)
                shutil.rmtree(restored, ignore_errors=True)
        if "copy" in self.args.ops and self.room(vault_bytes):
            dest = root / "vault-copy"
            s = mk("copy")
            self.seawall(s, "copy", "--from", url, "--to", f"file://{dest}", "--init-dest")
            s.extra["copied_bytes"] = du(dest)
            self.record_extra(s)
            shutil.rmtree(dest, ignore_errors=True)
        if "verify" in self.args.ops:
            s = mk("verify")
            out = self.seawall(s, "verify", "--vault", url, "--read-data")
            s.extra.update(chunks_read=out.get("chunks_read"), bytes_read=out.get("bytes_read"), ok=out.get("ok"))
            self.record_extra(s)

    def record_extra(self, sample: Sample) -> None:
        """Rewrite the last row with the facts gathered after the measurement (sizes on disk)."""
        rows = json.loads(self.results.read_text())
        rows[-1]["extra"] = sample.extra
        self.results.write_text(json.dumps(rows, indent=1) + "\n")

    def tree(self, size: str) -> None:
        root = self.work / f"tree-{size}"
        shutil.rmtree(root, ignore_errors=True)  # vaults of an interrupted run
        root.mkdir()
        data = self.work / f"data-{size}"
        if not self.room(parse_size(size)):
            return
        t0 = time.perf_counter()
        summary = scale_data.make_tree(data, parse_size(size))
        self.log(f"tree {size}: {summary['files']} files, {summary['bytes'] / MB:.0f} MB "
                 f"({time.perf_counter() - t0:.0f} s to make)")
        url = self.new_vault(root, "vault")
        restored = self.restore_target(root, f"tree-{size}")
        drop = (lambda: None) if self.args.keep_data else (lambda: shutil.rmtree(data, ignore_errors=True))
        self.ops("tree", size, root, url, summary["bytes"], ["files", str(data), "--dataset", "scale"],
                 ["--to", str(restored)], restored, drop)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(restored.parent, ignore_errors=True)
        drop()

    def files(self, count: str) -> None:
        """Many small files (`count` like 100k): per-file and per-chunk memory at 100 GB counts."""
        n = int(float(count.lower().removesuffix("k")) * (1000 if count.lower().endswith("k") else 1))
        root = self.work / f"files-{count}"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        data = self.work / f"small-{count}"
        summary = scale_data.make_small_files(data, n)
        self.log(f"files {count}: {n} files, {summary['bytes'] / MB:.0f} MB")
        url = self.new_vault(root, "vault")
        restored = self.restore_target(root, f"files-{count}")
        drop = (lambda: None) if self.args.keep_data else (lambda: shutil.rmtree(data, ignore_errors=True))
        self.ops("files", count, root, url, summary["bytes"], ["files", str(data), "--dataset", "small"],
                 ["--to", str(restored)], restored, drop)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(restored.parent, ignore_errors=True)
        drop()

    def pg(self, size: str) -> None:
        if not self.room(int(parse_size(size) * 1.08)):  # the cluster (pgbench -s rounds up a little)
            return
        root = make_private_dir("scale-pg-", str(self.work))
        cluster, restored = None, None
        try:
            url = self.new_vault(root, "vault")
            pass_file = private_file(root / "passphrase", PASSPHRASE)
            t0 = time.perf_counter()
            cluster, facts = scale_data.make_cluster(root, parse_size(size))
            self.log(f"pg {size}: pgbench -s {facts['pgbench_scale']}, {facts['cluster_bytes'] / MB:.0f} MB "
                     f"({time.perf_counter() - t0:.0f} s to load)")
            scale_data.start_archiving(cluster, scale_data.archive_command(self.seawall_bin, url, pass_file))
            restored = self.restore_target(root, f"pg-{size}")
            self.ops("pg", size, root, url, facts["cluster_bytes"],
                     ["postgres", "--dsn", cluster.conninfo(), "--mode", "physical", "--dataset", "pg"],
                     ["--to-datadir", str(restored), "--port", str(free_port()), "--stopped",
                      "--passphrase-file", str(pass_file)], restored, cluster.remove)
        finally:
            if cluster is not None:
                cluster.stop("immediate")
            shutil.rmtree(root, ignore_errors=True)
            if restored is not None:
                shutil.rmtree(restored.parent, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", default="tree,pg", help="tree, pg, files (many small files; sizes are then "
                    "file counts such as 100k) (default tree,pg)")
    ap.add_argument("--sizes", default="1G,4G,10G", help="data sizes, GiB for trees (default 1G,4G,10G)")
    ap.add_argument("--ops", default="backup,restore,copy,verify", help="operations (backup always runs)")
    ap.add_argument("--workdir", default="/tmp/seawall-scale", help="data, vaults and restores go here")
    ap.add_argument("--results", default=str(REPO / "bench" / "scale_results.json"), help="JSON rows (appended)")
    ap.add_argument("--min-free", type=parse_size, default=parse_size("15G"),
                    help="skip a step that would leave less free disk than this (default 15G)")
    ap.add_argument("--restore-dir", help="restore into this folder instead (e.g. /dev/shm when the disk is short; "
                    "restores are deleted right after they are measured)")
    ap.add_argument("--min-free-ram", type=parse_size, default=parse_size("6G"),
                    help="skip a restore into --restore-dir that would leave less MemAvailable (default 6G)")
    ap.add_argument("--nice", type=int, default=10, help="niceness of the whole run (default 10)")
    ap.add_argument("--seawall", default=SEAWALL, help="the seawall executable measured (default: this venv's)")
    ap.add_argument("--also", help="another seawall executable (e.g. a fix's checkout) to measure too, "
                    "on the same vault right after ours, for --also-ops")
    ap.add_argument("--also-ops", default="restore", help="operations --also measures (only restore so far)")
    ap.add_argument("--keep-data", action="store_true", help="keep generated trees for the next run")
    args = ap.parse_args()
    args.ops = args.ops.split(",")
    args.also_ops = args.also_ops.split(",") if args.also else []
    os.nice(args.nice)
    run = Run(args)
    run.log(f"commit {run.commit}, results -> {run.results}")
    for source in args.sources.split(","):
        for size in args.sizes.split(","):
            getattr(run, source)(size)


if __name__ == "__main__":
    main()

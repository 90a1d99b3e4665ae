"""Data for the scale benchmark: file trees and PostgreSQL clusters of 1-10 GB, made fast.

bench/datagen.py writes realistic text at ~100 s per GiB on 2 quiet cores: 10 GB of it would take
most of a session. The scale benchmark measures memory, which depends on how many files, chunks
and bytes pass through, not on how each line was invented, so here:

* the **tree** keeps datagen's layout (`datagen.plan`: the same file names, sizes, ~50% text /
  ~50% incompressible binaries, 8% duplicate files) and its binaries (BLAKE3 XOF), but a text file
  is made of 4-64 KiB slices taken at random places of a 16 MiB pool per kind (log, CSV, JSON
  lines) that datagen's own generators wrote once. It compresses like the original text (zstd-1
  ~3x) and no chunk repeats (see `_write_text`), so nothing deduplicates that datagen would not;
* the **PostgreSQL** cluster is `pgbench -i` (logged tables: unlogged ones are not in a physical
  backup) with server-side generation, loaded under `wal_level=minimal` (the load writes no WAL),
  then restarted with archiving into the vault. pgbench rows compress ~100x: the stored bytes and
  MB/s of this source are flattering, its chunk count (what memory depends on) is not.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench import datagen
from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster

POOL_BYTES = 16 << 20  # per text kind
SLICE = (4 << 10, 64 << 10)
SCALE_MB = 15.6  # pgbench: one scale unit = 100,000 accounts = ~15.6 MB of table + index (PostgreSQL 15)


# ---- file tree -----------------------------------------------------------------------------------
def _pool(kind: str) -> bytes:
    rng = random.Random(datagen.TEXT_KINDS.index(kind) + 0x5CA1E)
    lines = datagen._GENERATORS[kind](rng, datagen._Words(random.Random(7)))
    out, size = [], 0
    for line in lines:
        out.append(line.encode())
        size += len(out[-1])
        if size >= POOL_BYTES:
            break
    return b"".join(out)


_POOLS: dict[str, bytes] = {}


def _write_text(path: Path, spec: datagen.FileSpec) -> None:
    """Slices of 4-64 KiB from random places of the kind's pool: every CDC chunk (256 KiB at least)
    spans several, so none repeats, and zstd's window (512 KiB at level 1) sees no repeats either."""
    pool = _POOLS.get(spec.kind) or _POOLS.setdefault(spec.kind, _pool(spec.kind))
    rng = random.Random(spec.seed)
    left = spec.size
    with open(path, "wb") as out:
        while left > 0:
            n = min(left, rng.randint(SLICE[0], SLICE[1]))
            start = rng.randrange(len(pool) - n)
            out.write(pool[start:start + n])
            left -= n


def _write_one(root: str, spec: datagen.FileSpec, index: int) -> None:
    path = Path(root) / spec.path
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec.kind in datagen.TEXT_KINDS:
        _write_text(path, spec)
    else:
        datagen._write_binary(path, spec)
    os.utime(path, (datagen.MTIME_BASE + index, datagen.MTIME_BASE + index))


def make_tree(root: Path, size: int, seed: int = 1, jobs: int = 2) -> dict:
    """Create the tree (or reuse it if its stamp matches); returns datagen's summary of it."""
    stamp = root.with_name(root.name + ".json")
    want = {"format": f"scale-{datagen.FORMAT}-slices", "size": size, "seed": seed}
    if stamp.exists() and root.is_dir():
        summary = json.loads(stamp.read_text())
        if {k: summary.get(k) for k in want} == want:
            return summary
    shutil.rmtree(root, ignore_errors=True)
    specs = datagen.plan(size, seed)
    originals = sorted(((i, s) for i, s in enumerate(specs) if s.dup_of is None), key=lambda it: -it[1].size)
    with ProcessPoolExecutor(jobs) as pool:
        for fut in [pool.submit(_write_one, str(root), s, i) for i, s in originals]:
            fut.result()
    for i, spec in enumerate(specs):
        if spec.dup_of is not None:
            dest = root / spec.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / spec.dup_of, dest)
            os.utime(dest, (datagen.MTIME_BASE + i, datagen.MTIME_BASE + i))
    summary = {**want, **datagen.describe(specs)}
    stamp.write_text(json.dumps(summary, indent=2))
    return summary


# ---- many small files ----------------------------------------------------------------------------
def make_small_files(root: Path, count: int, seed: int = 1) -> dict:
    """`count` files of 1-4 KiB of distinct text, 1,000 per folder: the file and chunk count of a
    datagen tree ~100x larger in bytes (datagen has ~4,500 files and ~4,500 chunks per GB), so the
    per-file and per-chunk memory of a 100 GB tree is measured on ~1 GB of disk."""
    stamp = root.with_name(root.name + ".json")
    want = {"format": "small-files-1", "count": count, "seed": seed}
    if stamp.exists() and root.is_dir() and json.loads(stamp.read_text()) == want:
        return {**want, "bytes": _tree_bytes(root)}
    shutil.rmtree(root, ignore_errors=True)
    pool = _pool("log")
    rng = random.Random(seed)
    for i in range(count):
        folder = root / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        n = rng.randint(1 << 10, 4 << 10)
        start = rng.randrange(len(pool) - n)
        (folder / f"f{i:07d}.log").write_bytes(b"%d " % i + pool[start:start + n])
    stamp.write_text(json.dumps(want))
    return {**want, "bytes": _tree_bytes(root)}


def _tree_bytes(root: Path) -> int:
    return sum(e.stat().st_size for d in os.scandir(root) for e in os.scandir(d.path))


# ---- PostgreSQL ----------------------------------------------------------------------------------
def archive_command(seawall_bin: str, vault_url: str, passphrase_file: Path) -> str:
    return f"{seawall_bin} wal-push %p --vault {vault_url} --passphrase-file {passphrase_file}"


def make_cluster(base: Path, size: int) -> tuple[LocalCluster, dict]:
    """A new cluster under `base` holding a pgbench database of about `size` bytes (not yet archiving)."""
    cluster = LocalCluster.create(base, settings={"wal_level": "minimal", "archive_mode": "off",
                                                  "max_wal_senders": 0, "max_wal_size": "4GB",
                                                  "checkpoint_timeout": "30min"})
    cluster.start()
    scale = max(1, round(size / 1e6 / SCALE_MB))
    argv = [binaries.tool("pgbench"), "-i", "-I", "dtGvp", "-s", str(scale), "-q",
            "-h", str(cluster.socket_dir), "-p", str(cluster.port), "-U", "postgres", "postgres"]
    subprocess.run(argv, check=True, capture_output=True, text=True)
    cluster.execute("CHECKPOINT")
    db = cluster.execute("SELECT sum(pg_database_size(oid))::bigint FROM pg_database")[0][0]
    return cluster, {"pgbench_scale": scale, "cluster_bytes": int(db)}


def start_archiving(cluster: LocalCluster, command: str) -> None:
    """Restart with WAL archiving into the vault (a physical backup needs it)."""
    cluster.stop()
    cluster.configure({"wal_level": "replica", "archive_mode": "on", "max_wal_senders": 10,
                       "archive_command": command})
    cluster.start()


def datadir_bytes(cluster: LocalCluster) -> int:
    return sum(p.stat().st_size for p in itertools.chain([cluster.datadir], cluster.datadir.rglob("*"))
               if p.is_file())

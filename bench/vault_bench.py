"""Vault write/read benchmark against the single-core speed of zstd level 1, measured in the same run.

    uv run python -m bench.vault_bench --size 1G --reps 3 --json bench/out/vault-1g.json

Per repetition, each step in its own process (so its wall time and peak RSS are its own):

1. baseline: single-threaded zstd level 1 over the data files read in 1 MiB pieces; compress and
   decompress MB/s of input bytes (only the zstd calls are timed: the strictest baseline);
2. write path: `backup_tree` of the data folder into a fresh local vault (file://, same disk);
3. incremental: a second `backup_tree` of the unchanged tree, with the first as parent;
4. read path: every chunk of the first backup fetched, authenticated, decrypted, decompressed and
   checked against its keyed id (the tree index first), in file order: vault → verified plaintext;
5. restore: `restore_tree` of the first backup into a fresh folder (checked against the data),
   which adds creating ~5,000 files; compared with
6. reference: `cp -a` of the data tree, the least any restore onto this file system can cost.

Deletions: nothing is deleted until the last step has run. On ext4 without a journal (this
machine's root file system) the inode allocator skips inodes freed in the last few minutes, one
by one: creating 5,000 files right after deleting 5,000 took 1.27 s instead of 0.11 s here. A
benchmark that removed the previous repetition's vault or `cp -a` copy just before a timed step
would bill that to the step (to the write path, not to the zstd baseline, which creates no files).

Page cache: every timed step starts warm (its input files are read once just before it) and
after `sync`, so every figure, the baseline included, reads from memory and none pays for another
step's writeback. The vault fsyncs every chunk (that cost is in the write path); `restore_tree`
does not fsync restored files, so the read path ends when the data is in the page cache.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    MB,
    ChildResult,
    filesystem,
    iter_files,
    machine,
    median,
    parse_size,
    rmtree,
    run_child,
    settle,
    tree_size,
    warm,
)

PASSPHRASE = "bench-passphrase"
DATASET = "bench"
RSS_LIMIT = 300 * MB
TARGET_RATIO = 0.7


# ---- children: each prints one JSON line --------------------------------------------------------


def child_zstd(data: Path) -> dict:
    import zstandard

    cctx, dctx = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    total = packed = 0
    t_comp = t_decomp = 0.0
    clock = time.perf_counter
    for path in iter_files(data):
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                t0 = clock()
                frame = cctx.compress(view[:n])
                t1 = clock()
                plain = dctx.decompress(frame)
                t2 = clock()
                if len(plain) != n:
                    raise RuntimeError("zstd round trip lost bytes")
                t_comp += t1 - t0
                t_decomp += t2 - t1
                total += n
                packed += len(frame)
    return {"bytes": total, "compressed": packed, "compress_s": t_comp, "decompress_s": t_decomp}


def child_backup(url: str, data: Path, incremental: bool, workers: int) -> dict:
    from seawall.sources.files import backup_tree
    from seawall.vault import open_vault

    vault = open_vault(url, PASSPHRASE)
    parent = vault.latest_backup(DATASET) if incremental else None
    if incremental and parent is None:
        raise RuntimeError("no previous backup to be incremental against")
    start = time.perf_counter()
    manifest = backup_tree(vault, data, DATASET, parent=parent, workers=workers)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "backup_id": manifest.backup_id, "stats": manifest.stats.model_dump()}


def child_restore(url: str, backup_id: str, target: Path, workers: int) -> dict:
    from seawall.sources.files import restore_tree
    from seawall.vault import open_vault

    vault = open_vault(url, PASSPHRASE)
    manifest = vault.require_done(backup_id)
    start = time.perf_counter()
    files = restore_tree(vault, manifest, target, workers=workers)
    return {"seconds": time.perf_counter() - start, "files": files}


def child_readpath(url: str, backup_id: str, workers: int) -> dict:
    from seawall.sources.files import iter_tree
    from seawall.streams import ChunkReader
    from seawall.vault import open_vault

    vault = open_vault(url, PASSPHRASE)
    manifest = vault.require_done(backup_id)
    start = time.perf_counter()
    with ChunkReader(vault, workers=1) as tree_reader:
        refs = [c for e in iter_tree(vault, manifest, tree_reader) if e.type == "f" for c in e.chunks]
    total = 0
    with ChunkReader(vault, workers=workers, prefetch=16) as reader:
        for data in reader.iter_chunks(refs):
            total += len(data)
    return {"seconds": time.perf_counter() - start, "bytes": total, "chunks": len(refs)}


def child_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="vault_bench --child")
    p.add_argument("what", choices=("zstd", "backup", "restore", "readpath"))
    p.add_argument("--url")
    p.add_argument("--data", type=Path)
    p.add_argument("--target", type=Path)
    p.add_argument("--backup-id")
    p.add_argument("--incremental", action="store_true")
    p.add_argument("--workers", type=int, default=3)
    a = p.parse_args(argv)
    report = {"zstd": lambda: child_zstd(a.data),
              "backup": lambda: child_backup(a.url, a.data, a.incremental, a.workers),
              "readpath": lambda: child_readpath(a.url, a.backup_id, a.workers),
              "restore": lambda: child_restore(a.url, a.backup_id, a.target, a.workers)}[a.what]()
    print(json.dumps(report))


# ---- the parent: one repetition ------------------------------------------------------------------


def vault_bytes(root: Path) -> tuple[int, int]:
    """(objects, bytes) stored in a local vault folder, temporary files included."""
    count = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            count += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return count, size


def child_summary(res: ChildResult, mb_in: float) -> dict:
    seconds = res.report.get("seconds", 0.0)
    return {
        "load_before": res.load_before,  # 1-minute load average: other work on the machine
        "seconds": seconds,
        "mb_s": mb_in / seconds if seconds else None,
        "process_wall_s": res.wall_s,
        "cpu_s": res.cpu_s,
        "cpu_cores_busy": res.cpu_s / res.wall_s,
        "peak_rss_mb": res.peak_rss / MB,
    }


def step(inputs: Path, args: list[str]) -> ChildResult:
    """One measured child, after `sync` and with its inputs warm (see "Page cache")."""
    settle()
    warm(inputs)
    return run_child(args)


def one_rep(rep: int, data: Path, work: Path, data_bytes: int, workers: int, full_check: bool) -> dict:
    from seawall.vault import init_vault

    # Fresh folders per repetition, all removed only at the end of the run (see "Deletions").
    vault_dir, restore_dir = work / f"vault-{rep}", work / f"restore-{rep}"
    url = f"file://{vault_dir}"
    init_vault(url, PASSPHRASE)  # default scrypt parameters, as `seawall init` uses
    w = ["--workers", str(workers)]
    zstd = step(data, ["zstd", "--data", str(data)])
    settle()
    warm(data)
    copy_s = plain_copy(data, work / f"copy-{rep}")
    first = step(data, ["backup", "--url", url, "--data", str(data), *w])
    stored = vault_bytes(vault_dir)
    second = step(data, ["backup", "--url", url, "--data", str(data), "--incremental", *w])
    stored2 = vault_bytes(vault_dir)
    backup_id = first.report["backup_id"]
    readpath = step(vault_dir, ["readpath", "--url", url, "--backup-id", backup_id, *w])
    restore = step(vault_dir, ["restore", "--url", url, "--backup-id", backup_id, "--target", str(restore_dir), *w])
    settle()
    check = check_restore(data, restore_dir, data_bytes, full_check)
    return rep_result(rep, data_bytes / MB, zstd, copy_s, first, second, readpath, restore, stored, stored2) | {
        "restore_check": check}


def rep_result(rep: int, mb_in: float, zstd: ChildResult, copy_s: float, first: ChildResult, second: ChildResult,
               readpath: ChildResult, restore: ChildResult, stored: tuple[int, int], stored2: tuple[int, int]) -> dict:
    z = zstd.report
    baseline = {
        "load_before": zstd.load_before,
        "compress_mb_s": z["bytes"] / MB / z["compress_s"],
        "decompress_mb_s": z["bytes"] / MB / z["decompress_s"],
        "ratio": z["bytes"] / z["compressed"],
    }
    write, read = child_summary(first, mb_in), child_summary(readpath, mb_in)
    restored, incr = child_summary(restore, mb_in), child_summary(second, mb_in)
    return {
        "rep": rep,
        "baseline_zstd1": baseline,
        "reference_cp_a": {"seconds": copy_s, "mb_s": mb_in / copy_s},
        "write": {**write, "ratio_to_zstd1_compress": write["mb_s"] / baseline["compress_mb_s"]},
        "read": {**read, "ratio_to_zstd1_decompress": read["mb_s"] / baseline["decompress_mb_s"]},
        "restore": {**restored, "ratio_to_cp_a": restored["mb_s"] / (mb_in / copy_s)},
        "incremental": {
            **incr,
            "new_objects": stored2[0] - stored[0],
            "new_bytes": stored2[1] - stored[1],
            "share_of_first_backup_time": incr["seconds"] / write["seconds"],
            "share_of_first_process_wall": incr["process_wall_s"] / write["process_wall_s"],
        },
        "vault": {"objects": stored[0], "bytes": stored[1], "stats": first.report["stats"]},
    }


def plain_copy(data: Path, target: Path) -> float:
    """Seconds for `cp -a` of the tree: what any restore onto this file system costs at least."""
    start = time.perf_counter()
    subprocess.run(["cp", "-a", str(data), str(target)], check=True)
    seconds = time.perf_counter() - start
    settle()
    return seconds


def check_restore(data: Path, restored: Path, data_bytes: int, full: bool) -> str:
    files, size = tree_size(restored)
    want_files, _ = tree_size(data)
    if (files, size) != (want_files, data_bytes):
        raise RuntimeError(f"restore has {files} files / {size} bytes, expected {want_files} / {data_bytes}")
    if not full:
        return "file count and bytes match"
    for path in iter_files(data):
        if not filecmp.cmp(path, restored / path.relative_to(data), shallow=False):
            raise RuntimeError(f"restored {path.relative_to(data)} differs from the original")
    return "every file compared byte for byte"


# ---- summary -------------------------------------------------------------------------------------


MEDIANS = {  # summary name: where each repetition has it
    "zstd1_compress_mb_s": ("baseline_zstd1", "compress_mb_s"),
    "zstd1_decompress_mb_s": ("baseline_zstd1", "decompress_mb_s"),
    "zstd1_ratio": ("baseline_zstd1", "ratio"),
    "write_mb_s": ("write", "mb_s"),
    "write_ratio": ("write", "ratio_to_zstd1_compress"),
    "write_cores_busy": ("write", "cpu_cores_busy"),
    "cp_a_mb_s": ("reference_cp_a", "mb_s"),
    "read_mb_s": ("read", "mb_s"),
    "read_ratio": ("read", "ratio_to_zstd1_decompress"),
    "read_cores_busy": ("read", "cpu_cores_busy"),
    "restore_mb_s": ("restore", "mb_s"),
    "restore_ratio_cp_a": ("restore", "ratio_to_cp_a"),
    "incremental_s": ("incremental", "seconds"),
    "incremental_process_wall_s": ("incremental", "process_wall_s"),
    "incremental_share": ("incremental", "share_of_first_backup_time"),
    "incremental_share_process_wall": ("incremental", "share_of_first_process_wall"),
}
MAXIMA = {"write_peak_rss_mb": ("write", "peak_rss_mb"), "read_peak_rss_mb": ("read", "peak_rss_mb"),
          "restore_peak_rss_mb": ("restore", "peak_rss_mb"), "incremental_new_bytes": ("incremental", "new_bytes"),
          "incremental_peak_rss_mb": ("incremental", "peak_rss_mb")}


def summarise(reps: list[dict]) -> dict:
    s = {name: median([r[a][b] for r in reps]) for name, (a, b) in MEDIANS.items()}
    s |= {name: max(r[a][b] for r in reps) for name, (a, b) in MAXIMA.items()}
    s["targets"] = {
        "write >= 0.7x zstd1 compress": s["write_ratio"] >= TARGET_RATIO,
        "read >= 0.7x zstd1 decompress": s["read_ratio"] >= TARGET_RATIO,
        "peak RSS < 300 MB": max(s["write_peak_rss_mb"], s["read_peak_rss_mb"], s["restore_peak_rss_mb"],
                                 s["incremental_peak_rss_mb"]) < 300,
        "incremental stores < 1 MiB": s["incremental_new_bytes"] < (1 << 20),
        "incremental < 10% of first backup time": s["incremental_share"] < 0.10,
    }
    return s


def print_rep(r: dict) -> None:
    b, w, rd, i, rs = r["baseline_zstd1"], r["write"], r["read"], r["incremental"], r["restore"]
    print(
        f"  rep {r['rep']}: zstd1 {b['compress_mb_s']:.0f}/{b['decompress_mb_s']:.0f} MB/s (c/d)"
        f" | cp -a {r['reference_cp_a']['mb_s']:.0f} MB/s"
        f" | write {w['mb_s']:.0f} MB/s ({w['ratio_to_zstd1_compress']:.2f}x, {w['seconds']:.1f} s,"
        f" RSS {w['peak_rss_mb']:.0f} MB)"
        f" | read {rd['mb_s']:.0f} MB/s ({rd['ratio_to_zstd1_decompress']:.2f}x, {rd['seconds']:.1f} s,"
        f" RSS {rd['peak_rss_mb']:.0f} MB)"
        f" | restore {rs['mb_s']:.0f} MB/s ({rs['ratio_to_cp_a']:.2f}x cp -a)"
        f" | incremental {i['seconds']:.2f} s, {i['new_bytes']} new bytes",
        flush=True,
    )


def print_summary(s: dict, n: int) -> None:
    rows = [
        ("zstd-1 compress, 1 core (baseline)", f"{s['zstd1_compress_mb_s']:.0f} MB/s", ""),
        ("zstd-1 decompress, 1 core (baseline)", f"{s['zstd1_decompress_mb_s']:.0f} MB/s", ""),
        ("write path (backup_tree)", f"{s['write_mb_s']:.0f} MB/s", f"{s['write_ratio']:.2f}x compress"),
        ("read path (vault -> verified plaintext)", f"{s['read_mb_s']:.0f} MB/s",
         f"{s['read_ratio']:.2f}x decompress"),
        ("restore_tree (files written)", f"{s['restore_mb_s']:.0f} MB/s", f"{s['restore_ratio_cp_a']:.2f}x cp -a"),
        ("reference: cp -a of the tree", f"{s['cp_a_mb_s']:.0f} MB/s", "same file system, no crypto"),
        ("peak RSS write / read / restore",
         f"{s['write_peak_rss_mb']:.0f} / {s['read_peak_rss_mb']:.0f} / {s['restore_peak_rss_mb']:.0f} MB", "max"),
        ("incremental backup", f"{s['incremental_s']:.2f} s", f"{s['incremental_share']:.1%} of first"),
        ("incremental, whole process", f"{s['incremental_process_wall_s']:.2f} s",
         f"{s['incremental_share_process_wall']:.1%} of first"),
        ("incremental new bytes stored", f"{s['incremental_new_bytes']:,}", "max of reps"),
    ]
    print(f"\nmedians of {n} repetition(s):")
    for name, value, note in rows:
        print(f"  {name:38s} {value:>16s}  {note}")
    for name, ok in s["targets"].items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")


# ---- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child_main(argv[1:])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="1G", help="data size: 1G, 4G, 512M ... (default 1G)")
    p.add_argument("--reps", type=int, default=3, help="repetitions (default 3; medians are reported)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/seawall-bench"), help="scratch folder")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    p.add_argument("--keep", action="store_true", help="keep the generated data for the next run")
    p.add_argument("--seed", type=int, default=1, help="data generator seed (default 1)")
    p.add_argument("--workers", type=int, default=3, help="worker threads for backup/restore (default 3)")
    a = p.parse_args(argv)
    size = parse_size(a.size)
    a.workdir.mkdir(parents=True, exist_ok=True)
    need = int(size * (1 + 2.7 * a.reps)) + (1 << 30)  # data + (vault + restore + copy) per rep + slack
    free = shutil.disk_usage(a.workdir).free
    data = a.workdir / f"data-{a.size}-seed{a.seed}"
    if not data.exists() and free < need:
        print(f"{a.workdir}: {free / (1 << 30):.1f} GiB free, {need / (1 << 30):.1f} GiB needed", file=sys.stderr)
        return 2

    from bench.datagen import generate

    print(f"generating {a.size} of data in {data} (reused if already there) ...", flush=True)
    t0 = time.perf_counter()
    summary = generate(data, size, a.seed)
    print(f"  {summary['files']} files, {summary['bytes'] / MB:.0f} MB ({summary['text_bytes'] / MB:.0f} MB text,"
          f" {summary['binary_bytes'] / MB:.0f} MB binary, {summary['duplicate_files']} duplicate files of"
          f" {summary['duplicate_bytes'] / MB:.0f} MB) in {time.perf_counter() - t0:.0f} s", flush=True)
    info = {"machine": machine(), "filesystem": filesystem(a.workdir), "data": summary, "workers": a.workers,
            "command": "uv run python -m bench.vault_bench " + " ".join(argv)}
    reps = []
    run_dir = a.workdir / f"run-{os.getpid()}"
    run_dir.mkdir()
    try:
        for rep in range(1, a.reps + 1):
            reps.append(one_rep(rep, data, run_dir, summary["bytes"], a.workers, full_check=rep == 1))
            print_rep(reps[-1])
    finally:
        for old in a.workdir.glob("run-*"):  # this run's folders, and any a crashed run left
            rmtree(old)
        if not a.keep:
            rmtree(data)
            data.with_name(data.name + ".json").unlink(missing_ok=True)
    result = {**info, "summary": summarise(reps), "reps": reps}
    print_summary(result["summary"], len(reps))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

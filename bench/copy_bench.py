"""Cross-region copy throughput: `seawall.copy` against a plain boto3 download+upload of the same bytes.

Two moto servers in child processes stand for two regions. The source vault (region A) holds one
backup of random, incompressible files (real chunker, ~1 MiB chunks). Each round measures, on a
freshly started region-B server (so both start from the same empty state):

- `boto3 x1`: one thread, for every chunk object: `get_object` from A, read, `put_object` to B;
- `boto3 xN`: the same with N threads (the fair baseline: same parallelism as seawall);
- `seawall xN`: `copy_vault` with N workers, planning included: GET (SHA-256 checked by botocore
  against the checksum the source stored), decrypt + authenticate + hash at the source, PUT with
  that SHA-256 as its checksum, destination ETag checked against the source ETag, manifest last;
- `seawall xN readback`: the same, verifying by reading every object back instead.

The source objects carry a stored SHA-256 (every S3Store write does), so the plain boto3 GETs
check it too: botocore's default (`response_checksum_validation="when_supported"`) does that.

Every measurement starts a fresh region-B server; each round rotates the order of the methods, so
machine load (shared with other jobs) hits all of them alike. The report gives the median per
method and the median over rounds of the seawall / boto3-xN time ratio.
Run: `flock /tmp/seawall-heavy.lock uv run python -m bench.copy_bench --size 128M --rounds 5`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config

from bench.common import MB, machine, median, parse_size
from seawall.copy import CopySettings, copy_vault, init_destination
from seawall.crypto import ScryptParams
from seawall.sources.files import backup_tree
from seawall.stores import open_store
from seawall.vault import Vault

OUT = Path(__file__).resolve().parent / "out"
CREDS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


class Moto:
    """A moto server in a child process on a free loopback port."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def client(url: str, workers: int):
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        config=Config(max_pool_connections=max(10, workers), s3={"addressing_style": "path"}))


def make_source(url: str, size: int, workdir: Path) -> tuple[Vault, list[tuple[str, int]]]:
    """A source vault with one backup of `size` random bytes; returns it and its pack objects."""
    data = workdir / "data"
    data.mkdir()
    per_file = 4 << 20
    for i in range(max(1, size // per_file)):
        (data / f"f{i:04d}").write_bytes(os.urandom(per_file))
    vault = Vault.init(open_store(f"s3://bench-src/vault?region=us-east-1&endpoint={url}", create=True),
                       "bench", scrypt=ScryptParams(n=2**12))
    backup_tree(vault, data, "files-bench", workers=4)
    objects = [(f"vault/{i.key}", i.size) for i in vault.store.list("data/")]  # its packs
    return vault, objects


def boto_copy(src_url: str, dst_url: str, objects: list[tuple[str, int]], workers: int) -> float:
    """Plain download + upload of every object; returns seconds."""
    src, dst = client(src_url, workers), client(dst_url, workers)
    bucket = f"plain-{uuid.uuid4().hex[:12]}"
    dst.create_bucket(Bucket=bucket)

    def one(key: str) -> None:
        body = src.get_object(Bucket="bench-src", Key=key)["Body"].read()
        dst.put_object(Bucket=bucket, Key=key, Body=body)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, [k for k, _ in objects]))
    return time.perf_counter() - start


def seawall_copy(source: Vault, dst_url: str, workers: int, verify: str) -> tuple[float, dict]:
    """`copy_vault` (plan included) into a fresh destination vault; returns (seconds, stats)."""
    store = open_store(f"s3://dr-{uuid.uuid4().hex[:12]}/vault?region=us-east-1&endpoint={dst_url}", create=True)
    dest = init_destination(source, store, "dr", scrypt=ScryptParams(n=2**12))
    start = time.perf_counter()
    report = copy_vault(source, dest, include_wal=False, settings=CopySettings(workers=workers, verify=verify))
    seconds = time.perf_counter() - start
    assert report.ok, report.failures
    return seconds, report.stats


def measure(method: str, source: Vault, region_a: Moto, objects: list[tuple[str, int]], workers: int) -> float:
    """Seconds one method takes, on a freshly started region-B server."""
    region_b = Moto()
    try:
        if method.startswith("seawall"):
            return seawall_copy(source, region_b.url, workers, "readback" if "readback" in method else "etag")[0]
        return boto_copy(region_a.url, region_b.url, objects, 1 if method == "boto3 x1" else workers)
    finally:
        region_b.stop()


def run(size: int, workers: int, rounds: int) -> dict:
    os.environ.update(CREDS)
    load_at_start = os.getloadavg()
    region_a = Moto()
    methods = ["boto3 x1", f"boto3 x{workers}", f"seawall x{workers}", f"seawall x{workers} readback"]
    times: dict[str, list[float]] = {m: [] for m in methods}
    try:
        with tempfile.TemporaryDirectory(prefix="seawall-copy-bench-") as tmp:
            source, objects = make_source(region_a.url, size, Path(tmp))
            total = sum(s for _, s in objects)
            for n in range(rounds):
                for method in methods[n % len(methods):] + methods[:n % len(methods)]:  # rotate the order
                    times[method].append(measure(method, source, region_a, objects, workers))
                    print(f"{method:>22}: {total / times[method][-1] / MB:7.1f} MB/s ({times[method][-1]:.2f} s)",
                          file=sys.stderr)
    finally:
        region_a.stop()
    rates = {m: total / median(t) / MB for m, t in times.items()}
    base = f"boto3 x{workers}"
    ratios = {m: round(median([b / s for b, s in zip(times[base], times[m], strict=True)]), 2)
              for m in methods if m.startswith("seawall")}
    return {"bytes": total, "objects": len(objects), "workers": workers, "rounds": rounds,
            "seconds": times, "median_MBps": {m: round(r, 1) for m, r in rates.items()},
            "median_round_ratio_vs_boto3_same_workers": ratios,
            "ratio_of_medians_vs_boto3_same_workers": round(rates[f"seawall x{workers}"] / rates[base], 2),
            "load_avg_start": load_at_start, "load_avg": os.getloadavg(), "machine": machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128M", help="bytes in the source backup (e.g. 64M, 1G)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = run(parse_size(args.size), args.workers, args.rounds)
    OUT.mkdir(exist_ok=True)
    (OUT / "copy.json").write_text(json.dumps(result, indent=2))
    keys = ("bytes", "objects", "median_MBps", "median_round_ratio_vs_boto3_same_workers",
            "ratio_of_medians_vs_boto3_same_workers", "load_avg_start", "load_avg")
    print(json.dumps({k: result[k] for k in keys}, indent=2))


if __name__ == "__main__":
    main()

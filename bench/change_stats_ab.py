"""A/B: the vault write path with and without the anomaly detector's change statistics.

What each backup now measures on the write path (seawall/entropy.py, ChunkWriter, sources/tree.py):
a 256-byte sample of each new chunk into a bounded reservoir, the entropy of that sample once at the
end, and new/changed/deleted file counters. "B" turns the sampler into a no-op (the counters are
integer increments, not worth a switch). Both variants back up the same generated tree into a fresh
local vault, alternately (A B A B ...), in one process, so machine noise hits both alike; the
figure is the median of each and their ratio.

    uv run python -m bench.change_stats_ab --size 512M --reps 5
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import median, parse_size, warm
from bench.datagen import generate


def _backup(data: Path, work: Path, sample: bool) -> float:
    from seawall.entropy import ByteSampler
    from seawall.sources.files import backup_tree
    from seawall.vault import init_vault

    original = ByteSampler.add
    if not sample:
        ByteSampler.add = lambda self, data: None  # type: ignore[method-assign]
    try:
        vault = init_vault(f"file://{work}/vault", "bench passphrase")
        started = time.perf_counter()
        manifest = backup_tree(vault, data, "bench")
        seconds = time.perf_counter() - started
    finally:
        ByteSampler.add = original  # type: ignore[method-assign]
        shutil.rmtree(work / "vault", ignore_errors=True)
    changes = manifest.stats.changes
    assert (changes.entropy_sample_bytes > 0) == sample, changes
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="512M")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/seawall-bench"))
    a = p.parse_args(argv)
    data = a.workdir / f"data-{a.size}-seed1"
    summary = generate(data, parse_size(a.size), 1)
    mb = summary["bytes"] / 1e6
    warm(data)
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        for rep in range(a.reps):
            for sample in (True, False) if rep % 2 == 0 else (False, True):
                times[sample].append(_backup(data, Path(tmp), sample))
                print(f"  rep {rep + 1} {'with' if sample else 'without'} sampling: {times[sample][-1]:.2f} s "
                      f"({mb / times[sample][-1]:.0f} MB/s)", flush=True)
    with_s, without_s = median(times[True]), median(times[False])
    print(f"medians of {a.reps}: with change statistics {mb / with_s:.0f} MB/s, without {mb / without_s:.0f} MB/s: "
          f"{without_s / with_s:.3f}x ({summary['files']} files, {mb:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

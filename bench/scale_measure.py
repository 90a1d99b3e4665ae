"""Measuring one `seawall` process from outside, for bench/scale_bench.py: peak RSS of its process
tree, its own high-water mark, wall and CPU time, the load around it, whether the machine was ours.

* **tree peak**: the highest sum of VmRSS over the `seawall` process and every descendant it has
  at that moment (pg_basebackup, pg_ctl ...), sampled every 50 ms. Left out: the PostgreSQL
  server a physical restore starts for recovery (and the `wal-get` it runs): that memory is the
  database's; and a child between fork and exec, whose RSS is the parent's pages counted twice.
* **seawall peak**: VmHWM of the `seawall` process itself (its kernel high-water mark, read at the
  last sample), and `ru_maxrss` from wait4 (the largest single process of the tree, reaped children
  included) as a cross-check.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUIET_LOCK = "/tmp/seawall-quiet.lock"  # bench/gate: a benchmark holds it exclusively, tests shared


@dataclass
class Sample:
    """What one measured operation cost."""

    source: str
    size: str
    op: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    tree_peak: int = 0  # bytes: highest sum of VmRSS over the process tree at one moment
    self_hwm: int = 0  # bytes: VmHWM of the seawall process
    ru_maxrss: int = 0  # bytes: largest single process (wait4)
    data_bytes: int = 0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    lock_wait_s: float = 0.0  # rows before the gate: seconds spent trying the retired heavy lock
    locked: bool = True  # the machine was this benchmark's alone (before the gate: the heavy lock held)
    commit: str = ""
    at: str = ""
    exit_code: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# ---- measuring one process -----------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(x) for x in fh.read().split())
    except (OSError, ValueError):
        pass
    return out


def _status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError:
        return {}


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _kb(status: dict[str, str], key: str) -> int:
    return int(status.get(key, "0 kB").split()[0]) * 1024


class TreeSampler(threading.Thread):
    """Samples the RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.tree_peak = self.self_hwm = 0
        self.done = threading.Event()

    def run(self) -> None:
        own = _cmdline(self.pid)
        while not self.done.is_set():
            total, stack = 0, [self.pid]
            while stack:
                pid = stack.pop()
                st = _status(pid)
                if st.get("Name", "").strip() == "postgres":
                    continue  # the database server a restore starts: not seawall's memory
                if pid != self.pid and _cmdline(pid) == own:
                    continue  # forked, not yet exec'd (a child run as another user is forked, not
                    # vforked): its RSS counts the parent's pages a second time
                total += _kb(st, "VmRSS")
                if pid == self.pid:
                    self.self_hwm = max(self.self_hwm, _kb(st, "VmHWM"))
                stack.extend(_children(pid))
            self.tree_peak = max(self.tree_peak, total)
            self.done.wait(self.interval)


def alone() -> bool:
    """Whether a benchmark holds the machine through `bench/gate bench` (its exclusive lock on the
    quiet lock file: a shared one cannot be taken), i.e. whether this step ran without tests beside it."""
    with open(QUIET_LOCK, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def measure(sample: Sample, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run one seawall command; fill `sample`; return its --json output."""
    sample.locked = alone()
    sample.load_before = os.getloadavg()
    sample.at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out_path = Path(env["SCALE_TMP"]) / f"out-{time.monotonic_ns()}.json"
    start = time.perf_counter()
    with open(out_path, "w+") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.PIPE, text=True, cwd="/")
        sampler = TreeSampler(proc.pid)
        sampler.start()
        err = proc.stderr.read() if proc.stderr else ""
        _, status, usage = os.wait4(proc.pid, 0)
        sample.wall_s = time.perf_counter() - start
        sampler.done.set()
        sampler.join()
        out.seek(0)
        text = out.read()
    out_path.unlink()
    sample.load_after = os.getloadavg()
    sample.exit_code = os.waitstatus_to_exitcode(status)
    sample.cpu_s = usage.ru_utime + usage.ru_stime
    sample.ru_maxrss = usage.ru_maxrss * 1024
    sample.tree_peak, sample.self_hwm = max(sampler.tree_peak, sampler.self_hwm), sampler.self_hwm
    if sample.exit_code != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} exited {sample.exit_code}: {err.strip()[-1500:]}")
    try:
        return json.loads(text)
    except ValueError:
        return {}


# ---- facts about the machine and the data ----------------------------------------------------------
def git_commit(repo: Path) -> str:
    """The last commit that changed seawall/ in the checkout whose code `seawall` runs (+dirty if
    seawall/ has edits): edits to bench/ alone do not change what is measured."""
    out = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h", "--", "seawall"], capture_output=True,
                         text=True)
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "seawall"], capture_output=True,
                           text=True).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def mem_available() -> int:
    with open("/proc/meminfo") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def count_files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())

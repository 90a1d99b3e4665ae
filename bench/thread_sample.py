"""Run a command and sample its threads from /proc every 10 ms: per-thread CPU, state counts, and how
many threads were runnable over time (are the cores busy, or do threads wait on I/O, D, or locks, S?).

    bench/gate bench .venv/bin/python -m bench.thread_sample .venv/bin/seawall backup postgres ...

Python's threads keep the process's name, so they are told apart by thread id. The sampling costs
some CPU of its own (not in the counts shown): use it to see where time goes, not for timings.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time


def _sample(pid: int, cpu: dict, states: dict) -> int:
    """One pass over the threads of `pid`; returns how many were runnable (R)."""
    running = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                line = fh.read()
        except OSError:
            continue
        fields = line[line.rindex(")") + 2:].split()
        cpu[tid] = (int(fields[11]), int(fields[12]))  # utime, stime in clock ticks
        states[tid][fields[0]] += 1
        running += fields[0] == "R"
    return running


def main() -> None:
    tick = os.sysconf("SC_CLK_TCK")
    t0 = time.perf_counter()
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    cpu: dict[str, tuple[int, int]] = {}
    states: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    timeline: list[tuple[float, int]] = []
    while proc.poll() is None:
        timeline.append((time.perf_counter() - t0, _sample(proc.pid, cpu, states)))
        time.sleep(0.01)
    print(f"wall {time.perf_counter() - t0:.2f} s, exit {proc.returncode}")
    for tid in sorted(cpu, key=lambda t: -sum(cpu[t])):
        user, system = cpu[tid]
        if user + system or sum(states[tid].values()) > 5:
            print(f"  thread {tid}: user {user / tick:.2f} s sys {system / tick:.2f} s samples {dict(states[tid])}")
    buckets: dict[int, list[int]] = collections.defaultdict(list)
    for at, running in timeline:
        buckets[int(at * 5)].append(running)
    print("runnable threads, mean per 0.2 s:", " ".join(f"{sum(v) / len(v):.1f}" for _, v in sorted(buckets.items())))


if __name__ == "__main__":
    main()

"""Run-ahead jobs on plain threads, taken back in order by the thread that submitted them.

ThreadPoolExecutor costs a Future per job (a Condition, locks, callbacks) and a wake-up made while
holding the GIL. At thousands of chunk fetches per second, on VMs where a futex wake across vCPUs
costs tens of microseconds, that bookkeeping took more GIL time than the Python around the fetch.
Here a job is a slotted object and hand-offs are C `SimpleQueue`s. The consumer claims any job no
worker has started and runs it itself rather than wait behind another one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

_QUEUED, _TAKEN, _CANCELLED = 0, 1, 2


class Job:
    __slots__ = ("arg", "done", "error", "finished", "fn", "result", "state")

    def __init__(self, fn: Callable[[Any], Any], arg: Any, done: queue.SimpleQueue[None]):
        self.fn, self.arg, self.done = fn, arg, done
        self.state = _QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False


class Prefetcher:
    """`workers` daemon threads, started on first use; `close()` stops them."""

    def __init__(self, workers: int, name: str):
        self._workers, self._name = max(1, workers), name
        self._todo: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._claim = threading.Lock()  # a job's state changes only under it: claimed exactly once
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[[Any], Any], arg: Any, done: queue.SimpleQueue[None]) -> Job:
        """Queue `fn(arg)`. `done` gets a token when a worker finishes it: one queue per consumer."""
        if not self._threads:
            self._start()
        job = Job(fn, arg, done)
        self._todo.put(job)
        return job

    def take(self, job: Job) -> Any:
        """`job`'s result (or its exception, raised): run here if no worker has started it."""
        if self._claimed(job):
            return job.fn(job.arg)
        while not job.finished:
            job.done.get()  # some job of this consumer finished: look again
        if job.error is not None:
            raise job.error
        return job.result

    def cancel(self, jobs: Iterable[Job]) -> None:
        """Drop jobs no worker has started (a consumer that stopped early)."""
        with self._claim:
            for job in jobs:
                if job.state == _QUEUED:
                    job.state = _CANCELLED

    def close(self) -> None:
        threads, self._threads = self._threads, []
        for _ in threads:
            self._todo.put(None)
        for t in threads:
            t.join()

    def _start(self) -> None:
        with self._claim:
            if self._threads:
                return
            self._threads = [threading.Thread(target=self._work, name=f"{self._name}-{n}", daemon=True)
                             for n in range(self._workers)]
        for t in self._threads:
            t.start()

    def _claimed(self, job: Job) -> bool:
        with self._claim:
            if job.state != _QUEUED:
                return False
            job.state = _TAKEN
            return True

    def _work(self) -> None:
        while (job := self._todo.get()) is not None:
            if not self._claimed(job):
                continue
            try:
                job.result = job.fn(job.arg)
            except BaseException as exc:  # raised by `take`, in the consumer's thread
                job.error = exc
            job.finished = True
            job.done.put(None)

"""The WAL push daemon: one process per cluster and vault, pushing every ready segment in parallel.

Started on demand by `seawall wal-push --async` (see `seawall.postgres.walasync`), modelled on
pgBackRest's async archive-push (src/command/archive/push/push.c): it holds the spool's lock,
unlocks the vault once (the key stays in this process's memory only), then loops:

- list `pg_wal/archive_status/*.ready`: the files PostgreSQL waits to archive;
- push those with no ok status yet on `jobs` threads (oldest first): read one descriptor, so the
  inode/size/mtime recorded in `ok/<name>` are those of the bytes pushed;
- record `ok/<name>` only after the vault's put returned (durable: fsync+rename, or S3's 200), or
  `error/<name>` with the exit code and one line. A retryable failure (network) is tried again with
  backoff; a permanent one (different content under the same name) only when archive_command
  asks again (it clears the error first);
- drop ok statuses whose `.ready` is gone (PostgreSQL acknowledged them; archive_command leaves
  them in place, or the daemon would push the file again between the answer and PostgreSQL's
  rename of .ready to .done);
- exit after `idle` seconds without work, or on SIGTERM/SIGINT (in-flight puts are atomic).

If the vault cannot be opened (unreachable, wrong passphrase) it writes `global.error` and exits:
every waiting archive_command reports that line and PostgreSQL retries later.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from seawall.errors import RetryableError, SeawallError
from seawall.memory import tune_allocator
from seawall.postgres.walspool import SpoolDir, write_atomic

READY = ".ready"
SCAN_EVERY = 0.02  # seconds between scans of archive_status while idle (a listdir of a few names)
PRUNE_EVERY = 1.0  # seconds between sweeps of ok statuses PostgreSQL has acknowledged
BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0)
LOG_MAX = 1 << 20


class PushDaemon:
    """Pushes `wal_dir`'s ready files through `open_archive()` (a `WalArchive`) until idle."""

    def __init__(self, spool: SpoolDir, wal_dir: str, open_archive: Callable[[], object], *,
                 jobs: int = 4, idle: float = 30.0, sysid: str | None = None):
        self.spool, self.wal_dir, self.open_archive = spool, wal_dir, open_archive
        self.jobs, self.idle, self.sysid = max(1, jobs), idle, sysid
        self.stop = threading.Event()
        self.inflight: dict[str, Future] = {}
        self.failures: dict[str, tuple[int, float]] = {}  # name -> (attempts, next try)
        self.pushed = 0
        self._buffers = threading.local()  # per worker: the segment buffer, reused (no fresh pages)

    def run(self) -> int:
        """Run until idle; returns an exit code (0 also when another daemon already runs)."""
        if claim(self.spool, self.stop) is None:
            return 0
        tune_allocator()  # zstd's 16 MiB outputs reuse freed heap instead of faulting in fresh pages
        try:
            archive = self.open_archive()
        except SeawallError as exc:
            log(f"cannot open the vault: {exc}")
            self._record(None, exc.exit_code, isinstance(exc, RetryableError), str(exc))
            return exc.exit_code
        log(f"started (pid {os.getpid()}, {self.jobs} jobs) for {self.wal_dir}")
        with ThreadPoolExecutor(self.jobs, thread_name_prefix="seawall-walpush") as pool:
            self._loop(archive, pool)
        log(f"exiting after {self.pushed} pushed")
        return 0

    def _loop(self, archive: object, pool: ThreadPoolExecutor) -> None:
        last_work = last_prune = time.monotonic()
        while not self.stop.is_set():
            ready = self._ready()
            if time.monotonic() - last_prune > PRUNE_EVERY:
                self._prune(ready)
                last_prune = time.monotonic()
            for name in self._todo(ready):
                self.inflight[name] = pool.submit(self._push, archive, name)
            if self.inflight:
                done, _ = wait(list(self.inflight.values()), timeout=SCAN_EVERY, return_when=FIRST_COMPLETED)
                self._collect(done)
                last_work = time.monotonic()
            elif time.monotonic() - last_work > self.idle:
                self._prune(self._ready())
                return
            else:
                self.stop.wait(SCAN_EVERY)
        wait(list(self.inflight.values()))  # stopping: let started puts finish and record them
        self._collect(set(self.inflight.values()))

    def _ready(self) -> list[str]:
        try:
            entries = os.listdir(os.path.join(self.wal_dir, "archive_status"))
        except OSError as exc:  # the cluster is gone (or moved): nothing left to push for it
            log(f"stopping: cannot list {self.wal_dir}/archive_status: {exc.strerror}")
            self.stop.set()
            return []
        return sorted(e[:-len(READY)] for e in entries if e.endswith(READY))

    def _todo(self, ready: list[str]) -> list[str]:
        now, out = time.monotonic(), []
        room = 2 * self.jobs - len(self.inflight)  # a little queued so no worker waits on the scan
        for name in ready:
            if len(out) >= room:
                break
            if name in self.inflight or os.path.exists(self.spool.sub("ok", name)):
                continue
            if os.path.exists(self.spool.sub("error", name)):
                _attempts, next_try = self.failures.get(name, (0, 0.0))
                if next_try == float("inf") or now < next_try:
                    continue  # permanent: archive_command clears the error when PostgreSQL retries
            out.append(name)
        return out

    def _push(self, archive, name: str) -> tuple[os.stat_result, str]:
        fd = os.open(os.path.join(self.wal_dir, name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            data = _read_into(fd, st.st_size, self._buffers)
        finally:
            os.close(fd)
        return st, archive.push_bytes(name, data, sysid=self.sysid)

    def _collect(self, done: set[Future]) -> None:
        for name, future in list(self.inflight.items()):
            if future not in done:
                continue
            del self.inflight[name]
            try:
                st, outcome = future.result()
                self.spool.write_ok(name, st, outcome)
                self.spool.remove("error", name)
                self.failures.pop(name, None)
                self.pushed += 1
            except FileNotFoundError:
                self.failures.pop(name, None)  # acknowledged and removed meanwhile: nothing to do
            except SeawallError as exc:
                self._failed(name, exc.exit_code, isinstance(exc, RetryableError), str(exc))
            except Exception as exc:  # a bug: recorded, never taken for success
                log(f"{name}: unexpected error\n{traceback.format_exc()}")
                self._failed(name, 1, False, f"unexpected error: {type(exc).__name__}: {exc}")

    def _failed(self, name: str, code: int, retryable: bool, message: str) -> None:
        attempts = self.failures.get(name, (0, 0.0))[0] + 1
        delay = BACKOFF[min(attempts, len(BACKOFF)) - 1] if retryable else float("inf")
        self.failures[name] = (attempts, time.monotonic() + delay)
        log(f"{name}: {message}")
        self._record(name, code, retryable, message)

    def _record(self, name: str | None, code: int, retryable: bool, message: str) -> None:
        try:
            if name is None:
                line = " ".join(message.split())
                write_atomic(self.spool.global_error, f"{code} {int(retryable)} {line}\n")
            else:
                self.spool.write_error(name, code, retryable, message)
        except (OSError, SeawallError) as exc:  # a full spool: archive_command times out instead
            log(f"cannot record the failure of {name or 'the daemon'}: {exc}")

    def _prune(self, ready: list[str]) -> None:
        """ok statuses of files PostgreSQL no longer waits for (already acknowledged)."""
        waiting = set(ready)
        try:
            names = os.listdir(self.spool.sub("ok"))
        except OSError:
            return
        for name in names:
            if name not in waiting and ".tmp" not in name:
                self.spool.remove("ok", name)
        for name in [n for n in self.failures if n not in waiting]:
            self.failures.pop(name)
            self.spool.remove("error", name)


def _read_into(fd: int, size: int, local: threading.local) -> memoryview:
    """The file's `size` bytes in this thread's reused buffer (a fresh 16 MiB per segment costs
    4,096 page faults); valid until the thread's next read."""
    buf = getattr(local, "buf", None)
    if buf is None or len(buf) < size:
        buf = local.buf = bytearray(size)
    view, got = memoryview(buf)[:size], 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            break  # the file shrank under us: push what is there (its header check decides)
        got += n
    return view[:got]


def claim(spool: SpoolDir, stop: threading.Event) -> int | None:
    """Become the spool's daemon: its lock (pid written in it) and SIGTERM/SIGINT setting `stop`.

    None when another daemon holds the lock.
    """
    lock = spool.try_lock()
    if lock is None:
        return None
    os.ftruncate(lock, 0)
    os.write(lock, f"{os.getpid()}\n".encode())
    if threading.current_thread() is threading.main_thread():  # (tests run it on a thread)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    return lock


def log(message: str) -> None:
    """One timestamped line on stderr (the spool's daemon.log)."""
    from seawall.redact import redact

    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    print(f"{stamp} UTC [{os.getpid()}] {redact(message)}", file=__import__("sys").stderr, flush=True)


def trim_log(path: str) -> None:
    """Keep daemon.log bounded: past LOG_MAX it starts again (the previous one kept as .1)."""
    try:
        if os.path.getsize(path) > LOG_MAX:
            os.replace(path, f"{path}.1")
    except OSError:
        pass

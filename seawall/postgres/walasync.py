"""The archive_command / restore_command side of async WAL archiving: ask the daemon, wait, answer.

`push_async` is what `seawall wal-push %p --async` runs for each segment PostgreSQL hands over. It
never touches the vault: it makes sure a push daemon (`seawall.postgres.walpushd`) runs for this
cluster and vault, and waits until the daemon has recorded the segment as durable in the vault
(`ok/<name>`, naming the very file at %p) or as failed (`error/<name>`). The daemon pushes every
`.ready` segment in parallel, so by the time PostgreSQL asks for the next one it is usually done
already, and the answer costs one Python start and a few `stat`s.

Rules that keep a segment from being lost (PostgreSQL deletes or recycles it once we return 0):
- 0 only when the ok status names the same inode, size and mtime as the file at %p (a status of
  another file under that name, from an earlier life of the cluster, is deleted, never trusted);
- the segment's previous error is cleared first, so only a new attempt's verdict counts;
- a dead daemon (kill -9) is noticed by its lock and started again, at most `RESPAWNS` times;
- a full spool, an unreachable vault or no answer within `timeout` is non-zero: PostgreSQL keeps the
  file and calls again.
`get_prefetched` is the restore_command side: take a segment the get daemon fetched ahead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time

from seawall.errors import ConfigError, PermanentError, RetryableError, SeawallError
from seawall.postgres.walspool import SpoolDir, is_segment, python_argv, write_atomic

RESPAWNS = 3
LOCK_CHECK_EVERY = 0.2  # seconds between checks that the daemon is alive while waiting


def push_async(path: str, spool: SpoolDir, daemon_args: list[str], *, timeout: float) -> str:
    """Wait until the WAL file at `path` is durable in the vault; returns the daemon's outcome.

    Raises:
        NoSpaceError: the spool is full. RetryableError: no verdict within `timeout`, or the daemon's
            transient failure. PermanentError: the daemon's failure that a retry cannot fix (both
            carry the daemon's exit code and line).
    """
    name = os.path.basename(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot read WAL file {path}: {exc.strerror}") from None
    spool.prepare("ok", "error")
    if spool.ok_matches(name, st):
        return _acknowledge(spool, name)
    spool.check_space()
    spool.remove("error", name)  # only an attempt made from now on may answer
    spool.remove("ok", name)  # a status of another file under this name (an earlier life of the cluster)
    return _wait(name, st, spool, daemon_args, timeout)


def _wait(name: str, st: os.stat_result, spool: SpoolDir, daemon_args: list[str], timeout: float) -> str:
    started = time.monotonic()
    spawned, next_check, pause, proc = 0, 0.0, 0.002, None
    stale_global = os.path.exists(spool.global_error)
    while True:
        if spool.ok_matches(name, st):
            return _acknowledge(spool, name)
        failure = spool.read_error(name) or (None if stale_global else spool.read_error(None))
        if failure:
            code, retryable, message = failure
            raise (RetryableError if retryable else PermanentError)(message, exit_code=code)
        now = time.monotonic()
        if now >= next_check:
            next_check = now + LOCK_CHECK_EVERY
            starting = proc is not None and proc.poll() is None  # ours, before it took the lock
            if not starting and not spool.daemon_running():
                if spawned == RESPAWNS:
                    raise RetryableError(f"the WAL push daemon for {spool.path} keeps exiting",
                                         hint=f"see {spool.log_path}")
                spool.remove("global.error")
                stale_global = False
                proc = spool.spawn(python_argv(*daemon_args), cwd=os.getcwd())
                spawned += 1
        if now - started > timeout:
            raise RetryableError(f"{name} was not pushed within {timeout:g} s",
                                 hint=f"see {spool.log_path}; PostgreSQL keeps the WAL and retries")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.02)


def _acknowledge(spool: SpoolDir, name: str) -> str:
    """The daemon's outcome. The status stays: the daemon drops it once PostgreSQL has marked the
    file .done (dropping it here would make the daemon push the file again meanwhile)."""
    return spool.outcome(name)


# ---- restore_command: prefetched segments ---------------------------------------------------------
def get_prefetched(name: str, dest: str, spool: SpoolDir, daemon_args: list[str]) -> bool:
    """Move a prefetched `name` into place if the get daemon has it; True if it did.

    Either way, a segment request is recorded (`want`) and the daemon started if none runs, so the
    segments after `name` are fetched in parallel while PostgreSQL replays this one.
    """
    if not is_segment(name):
        return False
    spool.prepare("in")
    hit = _take(spool.sub("in", name), dest)
    _write_want(spool, name)
    if not spool.daemon_running():
        spool.spawn(python_argv(*daemon_args), cwd=os.getcwd())
    return hit


def _take(src: str, dest: str) -> bool:
    try:
        os.replace(src, dest)
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise ConfigError(f"cannot move the prefetched {os.path.basename(src)} to {dest}: {exc.strerror}") from None
    import shutil  # (not at the top: archive_command imports this module for every segment)

    tmp = f"{dest}.seawall-tmp"  # the spool is on another file system: copy, then rename
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except FileNotFoundError:
        return False
    os.unlink(src)
    return True


def _write_want(spool: SpoolDir, name: str) -> None:
    with contextlib.suppress(OSError, SeawallError):  # prefetch only saves time: never fail for it
        write_atomic(spool.sub("want"), name + "\n")

"""The archive_command fast path of `seawall wal-push --async`: answer from the push daemon's status.

PostgreSQL starts one `seawall wal-push %p --async` per segment, one after the other, so what each
call costs beyond the interpreter's own start is paid once per 16 MiB of WAL, on the same cores
the daemon compresses on. This module runs before the CLI imports anything else, and imports only
modules the interpreter has already loaded or that are built in (no `re`, `contextlib`,
`argparse`): checking a status costs a few system calls.

`acknowledged` answers True when the daemon recorded this very file (inode, size, mtime) as
archived; while the daemon runs and has recorded nothing against it, it waits here, cheaply,
instead of in the full path. Anything else (no daemon, an error status, a status of another file,
an option it does not know) returns False and the full path (`seawall.postgres.walasync`)
decides: it clears stale statuses, starts the daemon and reports failures.
"""

from __future__ import annotations

import os
import time
import zlib

SPOOL_ENV = "SEAWALL_SPOOL"
VAULT_ENV = "SEAWALL_VAULT"
LOCK_CHECK_EVERY = 0.2  # seconds between checks that the daemon still holds its lock (and spool space)
MIN_FREE = 1 << 20  # below this much free space the spool counts as full: status files need room
_VALUED = {"--vault", "--passphrase-file", "--sysid", "--spool", "--jobs", "--idle", "--timeout"}
_FLAGS = {"--async", "--debug"}
spent = 0.0  # seconds `acknowledged` waited in this process: the full path's --timeout is what is left


def default_root() -> str:
    tmp = os.environ.get("TMPDIR") or "/tmp"
    return os.environ.get(SPOOL_ENV) or os.path.join(tmp, f"seawall-spool-{os.getuid()}")


def spool_key(wal_dir: str, vault_url: str) -> str:
    """A short stable name for (this cluster's pg_wal, this vault): crc32 of both, twice seeded."""
    text = f"{os.path.realpath(wal_dir)}\0{vault_url}".encode()
    return f"{zlib.crc32(text):08x}{zlib.crc32(text[::-1]):08x}"


def read_ok(path: str) -> list[str] | None:
    """The fields of an ok status (inode, size, mtime, outcome), if it exists and is this user's
    (only our daemon's word counts: the fast path reads before anything checked the directories)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_uid != os.getuid():
            return None
        return os.read(fd, 4096).decode(errors="replace").rstrip("\n").split(" ", 3)
    finally:
        os.close(fd)


def matches(fields: list[str] | None, st: os.stat_result) -> bool:
    return fields is not None and fields[:3] == [str(st.st_ino), str(st.st_size), str(st.st_mtime_ns)]


def daemon_running(spool_path: str) -> bool:
    """Someone holds the daemon's flock (it dies with its process: a kill -9 leaves no stale lock)."""
    import fcntl  # built in: no file is read to import it

    try:
        fd = os.open(os.path.join(spool_path, "daemon.lock"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def spool_full(path: str) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < MIN_FREE


def acknowledged(argv: list[str]) -> bool:
    """True if `wal-push ARGV --async` may answer 0: the daemon recorded this very file as archived
    (waiting for it while the daemon runs with nothing recorded against this file)."""
    options, positional, args = {}, [], iter(argv)
    for arg in args:
        if arg in _VALUED:
            options[arg] = next(args, None)
        elif arg.startswith("-") and arg not in _FLAGS:
            return False
        elif arg not in _FLAGS:
            positional.append(arg)
    vault = options.get("--vault") or os.environ.get(VAULT_ENV)
    if len(positional) != 1 or not vault:
        return False
    try:
        timeout = float(options.get("--timeout") or 60.0)
        path = os.path.abspath(positional[0])
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    wal_dir, name = os.path.split(path)
    root = os.path.abspath(options.get("--spool") or default_root())
    spool = os.path.join(root, f"push-{spool_key(wal_dir, vault)}")
    global spent
    started = time.monotonic()
    try:
        return _wait(spool, name, st, started + timeout)
    finally:
        spent += time.monotonic() - started


def _wait(spool: str, name: str, st: os.stat_result, deadline: float) -> bool:
    ok, error = os.path.join(spool, "ok", name), os.path.join(spool, "error", name)
    pause, next_check = 0.001, 0.0
    while True:
        fields = read_ok(ok)
        if fields is not None:  # another outcome ("already archived") is reported by the full path
            return matches(fields, st) and fields[3:] == ["archived"]
        if os.path.exists(error) or os.path.exists(os.path.join(spool, "global.error")):
            return False  # the full path clears it and asks again, or reports it
        now = time.monotonic()
        if now >= next_check:  # a full spool: the daemon cannot record its verdict, the full path says so
            if now > deadline or not daemon_running(spool) or spool_full(spool):
                return False  # the full path starts one (or reports the timeout)
            next_check = now + LOCK_CHECK_EVERY
        time.sleep(pause)
        pause = min(pause * 1.5, 0.01)

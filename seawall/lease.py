"""Vault leases: backups and copies share the vault; garbage collection needs it alone.

Two kinds of lease objects, plain JSON (owner, host, pid, purpose, expiry), no key needed to read:

- `locks/shared/<owner>`: one per running backup or copy (`shared_lease`). Many may coexist.
- `locks/lease`: the exclusive lease of a prune / GC run (`exclusive_lease`), created with the
  store's conditional put, so two GCs cannot both create it.

Each side writes its own object first and then looks for the other kind (a two-flag protocol):
with read-after-write consistent stores (local files, S3 since 2020) at least one of two
concurrent takers sees the other and backs off, so GC never runs while a backup writes. A taker
that finds the other kind either waits (polling until `wait` seconds passed, after a log line
naming the holder and its expiry) or raises `LeaseBusy` (exit code 5). Leases expire after `ttl`
unless renewed: a background thread renews them every `ttl / 3`, and a crashed holder's lease is
broken by the next taker, with a log line. A holder on this same host is known crashed at once:
its record names its PID and that process's start time (boot id + start ticks, so a recycled PID
is not mistaken for it), so a lease left by a killed process does not block anyone for `ttl`.
`break_all` (`seawall unlock`) removes every lease, for holders on other hosts that are known dead.

Example:
    ```python
    with shared_lease(vault, "backup files-www"):
        backup_tree(vault, "/srv/www", "files-www")

    with exclusive_lease(vault, "gc", wait=300) as lease:
        ...
        lease.check()  # raises LeaseLost if another process broke or took the lease
    ```
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from seawall.errors import LeaseBusy, ObjectNotFound, SeawallError
from seawall.stores import ObjectStore
from seawall.vault import Vault

log = logging.getLogger(__name__)

LEASE_KEY = "locks/lease"
SHARED_PREFIX = "locks/shared/"
#: restic treats a lock not refreshed for 30 minutes as stale; renewals come every ttl / 3.
DEFAULT_TTL = 30 * 60.0
_POLL = 1.0
Kind = Literal["shared", "exclusive"]


class LeaseLost(LeaseBusy):
    """Our lease was broken or taken over (we failed to renew it in time)."""


@dataclass(frozen=True)
class LeaseRecord:
    """The content of one lease object."""

    owner: str
    kind: str
    purpose: str
    host: str
    pid: int
    created: str
    expires: str
    process: str | None = None  # process_identity(pid) on host (None: written by an older seawall)

    def expired(self, now: datetime | None = None) -> bool:
        return datetime.fromisoformat(self.expires) <= (now or datetime.now(UTC))

    def describe(self) -> str:
        until = datetime.fromisoformat(self.expires).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.purpose} ({self.kind}) by {self.host} pid {self.pid}, owner {self.owner}, expires {until}"

    def holder_gone(self) -> bool:
        """True when the holder ran on this host and that process no longer exists."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        if self.process is not None:
            # Only a holder in our own boot and PID namespace can be judged from here (a container
            # sharing the host name sees other PIDs); anyone else's lease waits for its expiry.
            same_space = _OWN_IDENTITY is not None and self.process.rsplit(":", 1)[0] == _OWN_IDENTITY.rsplit(":", 1)[0]
            return same_space and process_identity(self.pid) != self.process
        try:  # an older record without the start time: only a vanished PID is proof
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # exists, owned by another user
            return False
        return False

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()


def process_identity(pid: int) -> str | None:
    """"<boot id>:<pid namespace>:<start ticks>" of a process (Linux /proc), None if it does not exist.

    PIDs are recycled; (boot, namespace, start time) is not, so a new process that got a dead
    holder's PID is never taken for the holder.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) ": comm may hold spaces
    return f"{boot}:{namespace}:{int(fields[19])}"  # field 22 of proc(5): starttime


_OWN_PID, _OWN_IDENTITY = os.getpid(), process_identity(os.getpid())


def _parse(data: bytes, mtime: Callable[[], float | None]) -> LeaseRecord:
    """A lease record; a damaged one counts as held for DEFAULT_TTL after it was written."""
    try:
        raw = json.loads(data)
        optional = {"process"}
        record = LeaseRecord(**{k: raw[k] for k in LeaseRecord.__dataclass_fields__
                                if k not in optional or k in raw})
        record.expired()  # the expiry must parse
        return record
    except (ValueError, KeyError, TypeError):
        written = datetime.fromtimestamp(mtime() or time.time(), UTC)
        return LeaseRecord("unknown", "unknown", "unreadable lease object", "?", 0, written.isoformat(),
                           (written + timedelta(seconds=DEFAULT_TTL)).isoformat())


def read_lease(store: ObjectStore, key: str) -> LeaseRecord | None:
    try:
        data = store.get(key)
    except ObjectNotFound:
        return None
    return _parse(data, lambda: getattr(store.stat(key), "mtime", None))


class Lease:
    """One lease held (or being taken) on a vault; use `shared_lease` / `exclusive_lease`."""

    def __init__(self, vault: Vault, kind: Kind, purpose: str, ttl: float = DEFAULT_TTL):
        self.vault, self.store = vault, vault.store
        self.kind, self.purpose, self.ttl = kind, purpose, ttl
        self.owner = secrets.token_hex(8)
        self.key = LEASE_KEY if kind == "exclusive" else f"{SHARED_PREFIX}{self.owner}"
        self.held = False
        self.lost: SeawallError | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Lease({self.kind}, {self.purpose!r}, {self.vault.url!r}, owner={self.owner})"

    def _record(self) -> LeaseRecord:
        now = datetime.now(UTC)
        return LeaseRecord(self.owner, self.kind, self.purpose, socket.gethostname(), os.getpid(),
                           now.isoformat(), (now + timedelta(seconds=self.ttl)).isoformat(),
                           _OWN_IDENTITY if os.getpid() == _OWN_PID else process_identity(os.getpid()))

    # ---- reading and breaking ---------------------------------------------------------------
    def _read(self, key: str) -> LeaseRecord | None:
        return read_lease(self.store, key)

    def _break_if_stale(self, key: str, record: LeaseRecord) -> bool:
        """Delete an expired lease, or one whose holder on this host is gone (re-read first, so a
        renewed or replaced one survives)."""
        if record.expired():
            why = "expired"
        elif record.holder_gone():
            why = f"its process (pid {record.pid} on this host) no longer runs"
        else:
            return False
        if self._read(key) != record:
            return False
        log.warning("breaking the lease %s on %s (%s): %s", key, self.vault.url, why, record.describe())
        self.store.delete(key)
        return True

    def _live_exclusive(self) -> LeaseRecord | None:
        for _ in range(3):  # a lease broken or released under our feet: look again
            record = self._read(LEASE_KEY)
            if record is None or record.owner == self.owner:
                return None
            if not self._break_if_stale(LEASE_KEY, record):
                return record
        return self._read(LEASE_KEY)

    def _live_shared(self) -> list[LeaseRecord]:
        live = []
        for info in self.store.list(SHARED_PREFIX):
            record = self._read(info.key)
            if record is not None and record.owner != self.owner and not self._break_if_stale(info.key, record):
                live.append(record)
        return live

    # ---- taking -----------------------------------------------------------------------------
    def _try_shared(self) -> list[LeaseRecord]:
        self.store.put(self.key, self._record().to_json())
        holder = self._live_exclusive()
        if holder is None:
            return []
        self.store.delete(self.key)
        return [holder]

    def _create_exclusive(self) -> LeaseRecord | None:
        """Create `locks/lease`: None once it is ours, else the live holder."""
        for _ in range(5):
            if self.store.put_if_absent(LEASE_KEY, self._record().to_json()):
                return None
            holder = self._read(LEASE_KEY)
            if holder is not None and holder.owner == self.owner:  # our own write, response lost
                return None
            if holder is not None and not self._break_if_stale(LEASE_KEY, holder):
                return holder
        return self._contended()

    def _contended(self) -> LeaseRecord:
        now = datetime.now(UTC).isoformat()
        return LeaseRecord("?", "exclusive", "another process taking the lease", "?", 0, now, now)

    def _try_exclusive(self) -> list[LeaseRecord]:
        holder = self._create_exclusive()
        if holder is not None:
            return [holder]
        blockers = self._live_shared()
        mine = self._read(LEASE_KEY)
        if mine is None or mine.owner != self.owner:  # a racing stale-breaker removed ours: start again
            return [mine or self._contended()]
        if blockers:
            self.store.delete(LEASE_KEY)
        return blockers

    def acquire(self, wait: float = 0.0) -> Lease:
        """Take the lease, polling for up to `wait` seconds; LeaseBusy names a holder otherwise."""
        deadline = time.monotonic() + max(wait, 0.0)
        attempt = self._try_exclusive if self.kind == "exclusive" else self._try_shared
        said = None
        while True:
            blockers = attempt()
            if not blockers:
                self.held = True
                return self
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._busy(blockers, wait)
            if said != blockers[0].owner:  # one line per holder, not one per poll
                said = blockers[0].owner
                log.warning("vault %s is busy: %s; %s waits up to %.0fs (a lease left by a crashed process "
                            "on another host: `seawall unlock`)", self.vault.url, blockers[0].describe(),
                            self.purpose, remaining)
            time.sleep(min(_POLL, remaining))

    def _busy(self, blockers: list[LeaseRecord], wait: float) -> LeaseBusy:
        more = f" (+{len(blockers) - 1} more)" if len(blockers) > 1 else ""
        waited = f" after waiting {wait:.0f}s" if wait > 0 else ""
        return LeaseBusy(
            f"vault {self.vault.url} is busy{waited}: {blockers[0].describe()}{more}; {self.purpose} did not start",
            hint="retry when it has finished, or wait longer; if that holder crashed on another host, "
                 "`seawall unlock` removes its lease (it also expires by itself)",
        )

    # ---- holding ----------------------------------------------------------------------------
    def check(self) -> None:
        """Raise LeaseLost unless the lease is still ours (call before irreversible steps)."""
        if self.lost is not None:
            raise self.lost
        record = self._read(self.key)
        if record is None or record.owner != self.owner:
            self.lost = LeaseLost(f"lost the {self.kind} lease on {self.vault.url} ({self.purpose})",
                                  hint="another process broke it as stale: renewals did not reach the store")
            raise self.lost

    def renew(self) -> None:
        """Push the expiry `ttl` seconds ahead; LeaseLost if the lease is no longer ours."""
        self.check()
        self.store.put(self.key, self._record().to_json())

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except SeawallError as exc:  # keep trying: a transient error must not drop the lease
                log.warning("could not renew %s: %s", self, exc)
                if isinstance(exc, LeaseLost):
                    return

    def start_renewing(self) -> None:
        self._renewer = threading.Thread(target=self._renew_loop, name="seawall-lease", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing and delete the lease object if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self.held:
            self.held = False
            record = self._read(self.key)
            if record is not None and record.owner == self.owner:
                self.store.delete(self.key)


@contextlib.contextmanager
def _holding(lease: Lease, wait: float) -> Iterator[Lease]:
    lease.acquire(wait)
    try:
        lease.start_renewing()
        yield lease
    finally:
        lease.release()


def shared_lease(vault: Vault, purpose: str, *, wait: float = 600.0, ttl: float = DEFAULT_TTL
                 ) -> contextlib.AbstractContextManager[Lease]:
    """Hold a shared lease (backups, copies) while the block runs; waits out a running GC.

    Args:
        vault: The vault written to.
        purpose: Shown to whoever finds the vault busy, e.g. "backup files-www".
        wait: Seconds to wait for an exclusive holder before raising LeaseBusy.
        ttl: Seconds until the lease expires unless renewed (renewed every ttl / 3).
    """
    return _holding(Lease(vault, "shared", purpose, ttl), wait)


def exclusive_lease(vault: Vault, purpose: str, *, wait: float = 0.0, ttl: float = DEFAULT_TTL
                    ) -> contextlib.AbstractContextManager[Lease]:
    """Hold the exclusive lease (prune, GC): no backup or copy holds a live shared lease meanwhile.

    Args:
        vault: The vault pruned.
        purpose: Shown to whoever finds the vault busy, e.g. "retention".
        wait: Seconds to wait for other holders to finish; 0 raises LeaseBusy at once.
        ttl: Seconds until the lease expires unless renewed (renewed every ttl / 3).
    """
    return _holding(Lease(vault, "exclusive", purpose, ttl), wait)


def current_leases(vault: Vault) -> list[LeaseRecord]:
    """Every lease object in the vault, expired or not (for status displays)."""
    return leases_in(vault.store)


def break_all(store: ObjectStore) -> list[LeaseRecord]:
    """Delete every lease object (`seawall unlock`); returns what was removed.

    For holders known dead that this host cannot prove dead (another host, another container).
    A live holder loses its lease too and stops at its next check (LeaseLost), so only run it
    when none is running. Needs no key: lease objects are plain JSON.
    """
    removed = []
    for key in [LEASE_KEY, *(i.key for i in store.list(SHARED_PREFIX))]:
        record = read_lease(store, key)
        if record is not None:
            log.warning("removing the lease %s on %s: %s", key, store.display_url, record.describe())
            store.delete(key)
            removed.append(record)
    return removed


def leases_in(store: ObjectStore) -> list[LeaseRecord]:
    """Every lease object in a store, expired or not (needs no key)."""
    keys = [LEASE_KEY, *(i.key for i in store.list(SHARED_PREFIX))]
    return [r for k in keys if (r := read_lease(store, k)) is not None]

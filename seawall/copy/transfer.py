"""Verified, parallel, rate-limited transfer of sealed objects between two vaults.

Sealed objects are copied byte-for-byte: their associated data is the header and the object's
name, never the vault, so a vault sharing the master key opens them as they are. Each object is

1. read from the source (on S3 with the source's ETag and the SHA-256 botocore checked the bytes
   against) and opened there with the keyring (authenticated, decompressed and, for chunks,
   hashed back to its id): a corrupt source object is never sent;
2. written to the destination through the bandwidth limit (a token bucket shared by all workers),
   on S3 with the already checked SHA-256 as its checksum (no second hashing);
3. checked at the destination (seawall.copy.verify): read back and compared byte for byte, or on
   S3 by the ETag the server computed over what it stored, against the source's ETag (or the MD5
   of the bytes sent). S3's `ChecksumSHA256` alone would not do: moto accepts a wrong one.

Memory stays bounded: at most `2 * workers` objects are in flight, each a few MiB. Transient errors
(`RetryableError`) are retried per object with exponential backoff and jitter; permanent ones
(credentials, configuration) stop the whole transfer at once, so a refused key never turns into a
retry storm. Integrity failures are verdicts on one object, not exceptions: the caller decides
which backups they fail.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from seawall.copy import verify as copy_verify
from seawall.crypto import ObjType
from seawall.errors import ConfigError, IntegrityError, ObjectNotFound, RetryableError
from seawall.vault import Vault

if TYPE_CHECKING:
    from seawall.stores.s3_checksums import Fetched

T = TypeVar("T")


class _Mismatch(RetryableError):
    """The destination holds other bytes than were sent: transient (a damaged transfer) until
    every attempt has seen it, then an integrity failure."""


class TokenBucket:
    """A thread-safe token bucket in bytes per second; `take` blocks until the bytes may pass.

    A request larger than the bucket is let through by going into debt, so objects bigger than
    one second's allowance still move and the long-run rate stays at `rate`.

    Example:
        >>> bucket = TokenBucket(1 << 20)  # 1 MiB/s
        >>> bucket.take(4096)
    """

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ConfigError(f"bandwidth limit must be positive, got {rate}")
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else rate)
        self._tokens = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self, n: int) -> float:
        """Consume `n` tokens, sleeping while the bucket is in debt; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            delay = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if delay:
            time.sleep(delay)
        return delay


@dataclass
class TransferStats:
    """Counters of one transfer (thread-safe through `add`)."""

    objects_copied: int = 0
    bytes_copied: int = 0
    objects_failed: int = 0
    retries: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, value in deltas.items():
                setattr(self, name, getattr(self, name) + value)

    @property
    def throughput(self) -> float:
        """Bytes copied per second of transfer time."""
        return self.bytes_copied / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"objects_copied": self.objects_copied, "bytes_copied": self.bytes_copied,
                "objects_failed": self.objects_failed, "retries": self.retries,
                "seconds": round(self.seconds, 3), "throughput_bps": round(self.throughput)}


@dataclass(frozen=True)
class CopySettings:
    """How objects move: parallelism, bandwidth and the per-object retry policy.

    Args:
        workers: Objects transferred in parallel.
        bwlimit: Upload limit in bytes per second (None: unlimited).
        attempts: Tries per object for transient errors before giving up.
        backoff: First retry delay in seconds (doubles per attempt, with jitter).
        verify: How a written object is checked at the destination: "readback", "etag" (S3) or
            "auto" (see seawall.copy.verify).
    """

    workers: int = 8
    bwlimit: int | None = None
    attempts: int = 5
    backoff: float = 0.5
    verify: str = "auto"

    def __post_init__(self) -> None:
        if self.workers < 1 or self.attempts < 1:
            raise ConfigError("copy needs at least one worker and one attempt")


@dataclass(frozen=True)
class ObjectRef:
    """One object to copy: its key and how to open it at the source."""

    key: str
    obj_type: int
    name: str

    @classmethod
    def chunk(cls, chunk_id: str) -> ObjectRef:
        return cls(f"chunks/{chunk_id[:2]}/{chunk_id}", ObjType.CHUNK, chunk_id)

    @classmethod
    def sealed(cls, key: str, obj_type: int) -> ObjectRef:
        """A record, manifest or WAL object: its name (the associated data) is its key."""
        return cls(key, obj_type, key)


class ObjectCopier:
    """Copies objects from `source` to `dest` with verification on both sides.

    Example:
        >>> with ObjectCopier(src, dst, CopySettings(workers=8)) as copier:  # doctest: +SKIP
        ...     verdicts = copier.copy_many([ObjectRef.chunk(cid) for cid in missing])
    """

    def __init__(self, source: Vault, dest: Vault, settings: CopySettings, stats: TransferStats | None = None):
        self.source, self.dest, self.settings = source, dest, settings
        self.stats = stats or TransferStats()
        self.bucket = TokenBucket(settings.bwlimit, burst=max(settings.bwlimit / 4, 64 << 10)) \
            if settings.bwlimit else None
        self._verify = copy_verify.METHODS[copy_verify.resolve(settings.verify, dest.store)]
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="seawall-copy")

    def __enter__(self) -> ObjectCopier:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ---- many objects ------------------------------------------------------------------------
    def copy_many(self, refs: Iterable[ObjectRef], done: Callable[[ObjectRef, str | None], None] | None = None,
                  ) -> dict[str, str | None]:
        """Copy every object; returns key → None (copied and verified) or the problem found.

        Raises:
            PermanentError: the destination refused us (credentials, configuration): nothing
                more is submitted, and the error is raised once the objects in flight end.
            RetryableError: a transient error outlived the per-object attempts.
        """
        verdicts: dict[str, str | None] = {}
        slots = 2 * self.settings.workers
        window = threading.Semaphore(slots)
        failures: list[BaseException] = []

        def finished(future: Future) -> None:
            if not future.cancelled() and future.exception() is not None:
                failures.append(future.exception())
            window.release()

        started = time.monotonic()
        try:
            for ref in refs:
                window.acquire()
                if failures:
                    window.release()
                    break
                self._pool.submit(self._one, ref, verdicts, done).add_done_callback(finished)
            for _ in range(slots):  # every slot back: nothing is in flight any more
                window.acquire()
        finally:
            self.stats.add(seconds=time.monotonic() - started)
        if failures:
            raise failures[0]
        return verdicts

    def _one(self, ref: ObjectRef, verdicts: dict[str, str | None],
             done: Callable[[ObjectRef, str | None], None] | None) -> None:
        try:
            self.copy_one(ref)
            verdict = None
        except (IntegrityError, ObjectNotFound) as exc:
            verdict = exc.message
            self.stats.add(objects_failed=1)
        verdicts[ref.key] = verdict
        if done is not None:
            done(ref, verdict)

    # ---- one object --------------------------------------------------------------------------
    def copy_one(self, ref: ObjectRef) -> int:
        """Copy and verify one object; returns the bytes sent.

        Raises:
            IntegrityError: the object is corrupt at the source, or differs at the destination
                after every attempt.
            ObjectNotFound: the object is missing at the source.
        """
        try:
            got = self._retrying(lambda: copy_verify.fetch(self.source.store, ref.key))
        except ObjectNotFound:
            raise ObjectNotFound(f"{ref.key} is missing at the source {self.source.url}") from None
        except IntegrityError as exc:  # the bytes do not match the checksum the source stored
            raise IntegrityError(f"{ref.key} is corrupt at the source: {exc.message}") from None
        self.check_source(ref, got.data)
        try:
            self._retrying(lambda: self._put_verified(ref.key, got))
        except _Mismatch as exc:
            # Never leave damaged bytes under a real key: a rerun would take them for a copy.
            self._retrying(lambda: self.dest.store.delete(ref.key))
            raise IntegrityError(exc.message) from None
        self.stats.add(objects_copied=1, bytes_copied=len(got.data))
        return len(got.data)

    def check_source(self, ref: ObjectRef, blob: bytes) -> None:
        """Authenticate and decrypt `blob` with the keyring (and hash chunks back to their id)."""
        keyring = self.source.keyring
        try:
            plain = keyring.open(ref.obj_type, ref.name, blob)
        except IntegrityError as exc:
            raise IntegrityError(f"{ref.key} is corrupt at the source: {exc.message}") from None
        if ref.obj_type == ObjType.CHUNK and keyring.chunk_id(plain) != ref.name:
            raise IntegrityError(f"{ref.key} is corrupt at the source: content does not match its id")

    def _put_verified(self, key: str, got: Fetched) -> None:
        if self.bucket is not None:
            self.bucket.take(len(got.data))
        problem = self._verify(self.dest.store, key, got)  # writes, then checks
        if problem:
            raise _Mismatch(problem)

    def _retrying(self, action: Callable[[], T]) -> T:
        """Run `action`, retrying RetryableError with exponential backoff and jitter."""
        attempts, delay = self.settings.attempts, self.settings.backoff
        for attempt in range(1, attempts + 1):
            try:
                return action()
            except RetryableError:
                if attempt == attempts:
                    raise
                self.stats.add(retries=1)
                time.sleep(delay * (0.5 + random.random()))
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

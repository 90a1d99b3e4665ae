"""Pack uploads in the background for the S3 store (`put_deferred` / `commit`).

A backup seals chunks into packs of tens of MiB. Uploaded by the thread that filled it, each
pack's PUT (about 0.3 s for 32 MiB on loopback, more to a real region) stopped that thread's
reading and sealing, and the first backup of small files was slower than restic's
(bench/PACKS.md). Here `put_deferred` hands the pack to a few upload threads and returns; `commit`
(the vault's durability barrier, before any index file or manifest names the pack) waits for them
and raises the first failure. At most `BACKGROUND_PUTS` packs are uploading or waiting: a writer
asking for one more waits, so memory stays bounded.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from seawall.keys import validate_key

BACKGROUND_PUTS = 3


class S3BackgroundPuts:
    """Mixin for S3Store, which provides `_put(key, bytes)` and `_lock`."""

    background_puts = True
    _lock: threading.Lock

    def _init_background(self) -> None:
        self._uploads: ThreadPoolExecutor | None = None
        self._upload_slots = threading.BoundedSemaphore(BACKGROUND_PUTS)
        self._pending: set[Future[None]] = set()
        self._upload_error: BaseException | None = None

    def put_deferred(self, key: str, data: bytes | memoryview) -> None:
        """Upload `key` in the background (a pack, while the writer seals the next); durable once
        `commit` returns. A failed upload is raised by `commit` and by the next `put_deferred`.

        Without this a writer thread waited for every pack's PUT (a 32 MiB PUT is ~0.3 s on
        loopback), which made the first backup of small files slower than restic's (bench/PACKS.md).
        """
        validate_key(key)
        self._raise_upload_error()
        self._upload_slots.acquire()
        try:
            with self._lock:
                if self._uploads is None:
                    self._uploads = ThreadPoolExecutor(BACKGROUND_PUTS, thread_name_prefix="seawall-s3-put")
                future = self._uploads.submit(self._put, key, bytes(data))
                self._pending.add(future)
        except BaseException:
            self._upload_slots.release()
            raise
        future.add_done_callback(self._uploaded)

    def _uploaded(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
            if self._upload_error is None and not future.cancelled() and future.exception() is not None:
                self._upload_error = future.exception()
        self._upload_slots.release()

    def _raise_upload_error(self) -> None:
        with self._lock:
            error, self._upload_error = self._upload_error, None
        if error is not None:
            raise error

    def commit(self) -> None:
        """Wait for every background upload; raise the first that failed."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.exception()  # waits; the error is kept by _uploaded
        self._raise_upload_error()

    def _stop_background(self) -> None:
        """Stop the upload threads (uploads not committed finish; none is cut off half-way)."""
        with self._lock:
            uploads, self._uploads = self._uploads, None
        if uploads is not None:
            uploads.shutdown(wait=True)

    @staticmethod
    def _drop_background(state: dict[str, Any]) -> None:
        """Threads, futures and semaphores cannot be pickled: the copy builds its own."""
        for name in ("_uploads", "_upload_slots", "_pending", "_upload_error"):
            state.pop(name, None)

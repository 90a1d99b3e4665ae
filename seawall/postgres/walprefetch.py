"""WAL prefetch for point-in-time restores: keep the next segments recovery will ask for ready.

PostgreSQL calls restore_command once per segment, one after another. Each `seawall wal-get` pays a
Python start and a key unwrap (~0.3-1 s here), so replay waited on the archive, not on the CPU.
While `restore_physical` waits for recovery, a thread of its own (vault already unlocked) fetches
the segments of the restore's timeline path (`seawall.postgres.timelines`), in order, into a spool
folder next to the data directory, at most `ahead` at a time. restore_command takes a spooled
segment with a `mv` (same file system: a rename). Timeline history files are spooled first and
copied (PostgreSQL reads them more than once). A name that is not in the archive at all (PostgreSQL
probes for future timelines' history files) is answered "not found" from the spool's listing,
without touching the vault. Only archived files that are not spooled (other timelines, a fetch that
failed) fall back to `seawall wal-get`, which then reports the real error. So a restore from a vault
the server's OS user cannot read (a root-owned local vault) still works for everything on the
backup's own timeline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING

from seawall.errors import ObjectNotFound, SeawallError
from seawall.postgres import binaries, walnames
from seawall.postgres.wal import WalArchive
from seawall.postgres.walspool import SpoolDir

if TYPE_CHECKING:  # pydantic stays off the wal-get daemon's start
    from seawall.manifest import Manifest
    from seawall.vault import Vault

log = logging.getLogger(__name__)


def spool_dir_for(datadir: Path) -> Path:
    return datadir.parent / f".{datadir.name}.walspool"


LISTING = ".archived"
KEEP = ".keep"  # suffix of a flag file: copy this spooled segment instead of moving it


def spooled_command(spool: Path, fallback: str) -> str:
    """restore_command: spooled files are renamed (history files copied) into place; flagged segments
    (asked for twice) are hard-linked, copied only where a link cannot be made (another file system);
    names the archive does not have exit 1 (PostgreSQL's "no such file"); anything else goes to
    `fallback`.

    A link, not a copy: PostgreSQL fsyncs each restored file as it renames it into pg_wal. A copy was
    16 MiB of new dirty pages to write twice per restore (~10-15 ms each on this VM's disk); the link
    shares the spooled file, already on disk (the server's start-up syncfs flushed it). PostgreSQL
    renames a restored file into place (unlinking the old name first) and reads it; it writes into
    a segment file only once it recycles it (a checkpoint renames it to a future segment), and it
    never asks for a segment behind its redo point again, so the spool's name of a recycled inode
    is never served. The spool is removed when recovery ends.
    """
    q = shlex.quote(str(spool))
    return (f'if [ -f {q}/%f ]; then if [ -f {q}/%f{KEEP} ]; then ln {q}/%f "%p" 2>/dev/null || cp {q}/%f "%p"; '
            f'else case "%f" in '
            f'*.history) cp {q}/%f "%p";; *) mv {q}/%f "%p";; esac; fi; '
            f'elif [ -f {q}/{LISTING} ] && ! grep -qxF "%f" {q}/{LISTING}; then exit 1; '
            f'else {fallback}; fi')


def segments_to_prefetch(names: list[str], manifest: Manifest) -> list[str]:
    """Archived segments of the backup's timeline from its start segment on, in replay order."""
    start = manifest.source.get("start_wal_file")
    if not start:
        return []
    start_tli, start_no = walnames.parse_segment(start)
    out = []
    for name in names:
        if walnames.is_segment(name):
            tli, segno = walnames.parse_segment(name)
            if tli == start_tli and segno >= start_no:
                out.append((segno, name))
    return [name for _, name in sorted(out)]


class WalPrefetcher:
    """Background threads filling the spool folder; `close()` stops them and removes the folder.

    `jobs` segments are fetched at once (in replay order, so the next one recovery asks for is
    always among them); at most about `ahead` wait in the spool.
    """

    def __init__(self, vault: Vault, manifest: Manifest, spool: Path, *, ahead: int = 8,
                 names: list[str] | None = None, jobs: int = 2, path_only: bool = False):
        self.spool, self.ahead, self.jobs = spool, ahead, max(1, jobs)
        self._path = names  # the segments recovery will read, in order (default: the backup's timeline)
        # `path_only`: recovery reads no segment beyond `names` (a target of `immediate`), so the
        # listing restore_command consults holds only those (and the history files). PostgreSQL's
        # WAL read-ahead (recovery_prefetch) asks for the segments after the target before replay
        # reaches it; each archived one used to cost a `seawall wal-get` process (~0.25 s: Python,
        # scrypt) in a restore that needs none of them (up to ~1 s of a 1.3 s delta restore).
        self._path_only = path_only and names is not None
        self._archive = WalArchive(vault)
        self._manifest = manifest
        self._stop = threading.Event()
        self.fetched = 0
        spool.mkdir(mode=0o700, exist_ok=True)
        binaries.chown_to_server_user(spool)
        self._names: list[str] = []
        self._queue: list[str] = []
        self._taken: list[str] = []  # fetched, in replay order (to tell consumed from still waiting)
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, name=f"seawall-wal-prefetch-{n}", daemon=True)
                         for n in range(self.jobs)]

    def start(self) -> WalPrefetcher:
        """List the archive and spool its history files now (before the server starts), then prefetch."""
        try:
            self._names = self._archive.names()
            for name in (n for n in self._names if walnames.is_history(n)):
                self._fetch(name)
            listing = self.spool / LISTING
            listed = self._names
            if self._path_only:
                on_path = set(self._path or ())
                listed = [n for n in self._names if walnames.is_history(n) or n in on_path]
            listing.write_text("".join(f"{n}\n" for n in listed))
            binaries.chown_to_server_user(listing)
        except SeawallError as exc:  # no listing: restore_command asks wal-get for everything
            log.warning("WAL prefetch disabled: %s", exc)
            return self
        archived = set(self._names)
        self._queue = ([n for n in self._path if n in archived] if self._path is not None
                       else segments_to_prefetch(self._names, self._manifest))
        if self._queue:  # PostgreSQL reads the newest segment again when it ends recovery there
            (self.spool / f"{self._queue[-1]}{KEEP}").touch()
        self._queue.reverse()  # popped from the end: oldest first
        for thread in self._threads:
            thread.start()
        return self

    def _fetch(self, name: str) -> None:
        self._archive.get(name, self.spool / name)
        binaries.chown_to_server_user(self.spool / name)

    def _waiting(self) -> int:
        """Spooled segments recovery has not taken yet. One left behind (recovery asked for it while
        it was still being fetched and got it from the vault) is deleted once a later one is taken."""
        present = {p.name for p in self.spool.iterdir() if walnames.is_segment(p.name)}
        with self._lock:
            taken = [n for n in self._taken if n not in present]
            frontier = max(taken, default="")
            stale = [n for n in self._taken if n in present and n < frontier]
        for name in stale:
            (self.spool / name).unlink(missing_ok=True)
        return len(present) - len(stale)

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not self._queue:
                    return
                name = self._queue.pop()
            while self._waiting() >= self.ahead:
                if self._stop.wait(0.05):
                    return
            try:
                self._fetch(name)
            except SeawallError as exc:  # wal-get will meet the same problem and report it properly
                log.warning("WAL prefetch stopped at %s: %s", name, exc)
                with self._lock:
                    self._queue.clear()
                return
            with self._lock:
                self._taken.append(name)
                self.fetched += 1

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)
        shutil.rmtree(self.spool, ignore_errors=True)


class GetDaemon:
    """The prefetch daemon behind `seawall wal-get --prefetch N` (pgBackRest's async archive-get).

    restore_command records the segment it was asked for in `want`; this process (one per cluster
    and vault, holding the spool lock) keeps the next `ahead` segments of that timeline in `in/`,
    fetching `jobs` at a time with a key unlocked once. A segment not archived yet (a standby waiting
    for its primary) is looked for again a second later. It exits after `idle` seconds without a new
    request. A failure here only costs speed: restore_command fetches from the vault itself whatever
    is not spooled, and reports the real error.
    """

    def __init__(self, spool: SpoolDir, open_archive: Callable[[], WalArchive], *, ahead: int, jobs: int,
                 idle: float, spool_max: int):
        self.spool, self.open_archive = spool, open_archive
        self.ahead, self.jobs, self.idle, self.spool_max = ahead, max(1, jobs), idle, spool_max
        self.stop = threading.Event()
        self.inflight: dict[str, Future] = {}
        self.retry_at: dict[str, float] = {}
        self.fetched = 0

    def run(self) -> int:
        from seawall.postgres.walpushd import claim, log

        if claim(self.spool, self.stop) is None:
            return 0
        try:
            archive = self.open_archive()
            seg_size = archive.seg_size
        except SeawallError as exc:
            log(f"prefetch off: cannot open the vault: {exc}")
            return exc.exit_code
        ahead = max(1, min(self.ahead, self.spool_max // seg_size))
        log(f"started (pid {os.getpid()}, {ahead} ahead, {self.jobs} jobs)")
        with ThreadPoolExecutor(self.jobs, thread_name_prefix="seawall-walget") as pool:
            self._loop(archive, pool, ahead, seg_size)
        log(f"exiting after {self.fetched} fetched")
        return 0

    def _loop(self, archive: WalArchive, pool: ThreadPoolExecutor, ahead: int, seg_size: int) -> None:
        want, last_request = None, time.monotonic()
        while not self.stop.is_set():
            asked = self._want()
            if asked != want:
                want, last_request = asked, time.monotonic()
            window = self._window(want, ahead, seg_size)
            self._clean(window)
            for name in self._todo(window):
                self.inflight[name] = pool.submit(archive.get, name, self.spool.sub("in", name))
            if self.inflight:
                done, _ = wait(list(self.inflight.values()), timeout=0.05, return_when=FIRST_COMPLETED)
                self._collect(done)
            elif time.monotonic() - last_request > self.idle:
                return
            else:
                self.stop.wait(0.02)

    def _want(self) -> str | None:
        try:
            with open(self.spool.sub("want")) as fh:
                name = fh.read().strip()
        except OSError:
            return None
        return name if walnames.is_segment(name) else None

    @staticmethod
    def _window(want: str | None, ahead: int, seg_size: int) -> list[str]:
        names, name = [], want
        for _ in range(ahead if want else 0):
            name = walnames.next_segment(name, seg_size)
            names.append(name)
        return names

    def _clean(self, window: list[str]) -> None:
        """Drop spooled segments recovery went past (or never asked for) and dead daemons' temp files."""
        keep = set(window)
        for entry in os.scandir(self.spool.sub("in")):
            stale = entry.name.startswith(".") and time.time() - entry.stat().st_mtime > 300
            if stale or (walnames.is_segment(entry.name) and entry.name not in keep):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)

    def _todo(self, window: list[str]) -> list[str]:
        now = time.monotonic()
        return [n for n in window if n not in self.inflight and self.retry_at.get(n, 0) <= now
                and not os.path.exists(self.spool.sub("in", n))][:2 * self.jobs - len(self.inflight)]

    def _collect(self, done: set[Future]) -> None:
        from seawall.postgres.walpushd import log

        for name, future in list(self.inflight.items()):
            if future in done:
                del self.inflight[name]
                try:
                    future.result()
                    self.fetched += 1
                except ObjectNotFound:  # not archived yet: ask again in a second
                    self.retry_at[name] = time.monotonic() + 1.0
                except SeawallError as exc:  # a full spool, a vault hiccup: restore_command fetches itself
                    log(f"{name}: {exc}")
                    self.retry_at[name] = time.monotonic() + 5.0

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

import logging
import shlex
import shutil
import threading
from pathlib import Path

from seawall.errors import SeawallError
from seawall.manifest import Manifest
from seawall.postgres import binaries, walnames
from seawall.postgres.wal import WalArchive
from seawall.vault import Vault

log = logging.getLogger(__name__)


def spool_dir_for(datadir: Path) -> Path:
    return datadir.parent / f".{datadir.name}.walspool"


LISTING = ".archived"
KEEP = ".keep"  # suffix of a flag file: copy this spooled segment instead of moving it


def spooled_command(spool: Path, fallback: str) -> str:
    """restore_command: spooled files are renamed (history files and flagged segments copied) into
    place; names the archive does not have exit 1 (PostgreSQL's "no such file"); anything else goes
    to `fallback`."""
    q = shlex.quote(str(spool))
    return (f'if [ -f {q}/%f ]; then if [ -f {q}/%f{KEEP} ]; then cp {q}/%f "%p"; else case "%f" in '
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
    """A background thread filling the spool folder; `close()` stops it and removes the folder."""

    def __init__(self, vault: Vault, manifest: Manifest, spool: Path, *, ahead: int = 8,
                 names: list[str] | None = None):
        self.spool, self.ahead = spool, ahead
        self._path = names  # the segments recovery will read, in order (default: the backup's timeline)
        self._archive = WalArchive(vault)
        self._manifest = manifest
        self._stop = threading.Event()
        self.fetched = 0
        spool.mkdir(mode=0o700, exist_ok=True)
        binaries.chown_to_server_user(spool)
        self._names: list[str] = []
        self._thread = threading.Thread(target=self._run, name="seawall-wal-prefetch", daemon=True)

    def start(self) -> WalPrefetcher:
        """List the archive and spool its history files now (before the server starts), then prefetch."""
        try:
            self._names = self._archive.names()
            for name in (n for n in self._names if walnames.is_history(n)):
                self._fetch(name)
            listing = self.spool / LISTING
            listing.write_text("".join(f"{n}\n" for n in self._names))
            binaries.chown_to_server_user(listing)
        except SeawallError as exc:  # no listing: restore_command asks wal-get for everything
            log.warning("WAL prefetch disabled: %s", exc)
            return self
        self._thread.start()
        return self

    def _fetch(self, name: str) -> None:
        self._archive.get(name, self.spool / name)
        binaries.chown_to_server_user(self.spool / name)

    def _waiting(self) -> int:
        return sum(1 for p in self.spool.iterdir() if not p.name.startswith(".") and walnames.is_segment(p.name))

    def _run(self) -> None:
        archived = set(self._names)
        names = ([n for n in self._path if n in archived] if self._path is not None
                 else segments_to_prefetch(self._names, self._manifest))
        if names:  # PostgreSQL reads the newest segment again when it ends recovery there
            (self.spool / f"{names[-1]}{KEEP}").touch()
        for name in names:
            while self._waiting() >= self.ahead:
                if self._stop.wait(0.05):
                    return
            if self._stop.is_set():
                return
            try:
                self._fetch(name)
                self.fetched += 1
            except SeawallError as exc:  # wal-get will meet the same problem and report it properly
                log.warning("WAL prefetch stopped at %s: %s", name, exc)
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        shutil.rmtree(self.spool, ignore_errors=True)

"""A local cache of a vault's index files, so opening a big vault does not download them all.

Files are kept as stored (sealed: encrypted and authenticated, opened again on every use) under
`$SEAWALL_CACHE_DIR` (else `$XDG_CACHE_HOME/seawall`, else `~/.cache/seawall`), in
`<vault-id>/index/<index-id>`. A cached file is used only while the vault's listing shows the same
key with the same size; files the listing no longer shows (merged away by GC) are dropped.
`SEAWALL_CACHE_DIR=off` turns the cache off. Writes go to a temporary name, then are renamed:
two processes filling the same cache never see half a file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def cache_root() -> Path | None:
    configured = os.environ.get("SEAWALL_CACHE_DIR")
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "none") else Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "seawall" if xdg else Path.home() / ".cache" / "seawall"


class IndexCache:
    """Sealed index files of one vault on local disk (best effort: a cache that fails is skipped)."""

    def __init__(self, vault_id: str, root: Path | None = None):
        base = root if root is not None else cache_root()
        self.dir = base / vault_id / "index" if base is not None else None

    def _path(self, key: str) -> Path | None:
        if self.dir is None or not key.startswith("index/"):
            return None
        return self.dir / key.split("/", 1)[1]

    def get(self, key: str, size: int) -> bytes | None:
        """The cached bytes of `key` if their size matches the listing, else None."""
        path = self._path(key)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        return data if len(data) == size else None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path is None:
            return
        tmp = path.with_name(f".tmp-{secrets.token_hex(6)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def keep_only(self, keys: set[str]) -> None:
        """Drop cached files the vault no longer lists."""
        if self.dir is None or not self.dir.is_dir():
            return
        wanted = {k.split("/", 1)[1] for k in keys}
        for path in self.dir.iterdir():
            if path.name not in wanted:
                with contextlib.suppress(OSError):
                    path.unlink()

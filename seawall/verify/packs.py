"""The pack side of `seawall verify`: is every needed chunk indexed and its pack listed, and with
`--read-data`, does every pack authenticate, blob by blob, and agree with the index.

A pack that fails is named together with the backups that use it; the verdict is attached to
every chunk of the pack a backup needs, so exactly those backups fail.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from seawall.errors import IntegrityError, ObjectNotFound, SeawallError
from seawall.vault import Vault
from seawall.vault.packs import PACK_PREFIX, BlobEntry, is_pack_key, parse_pack

_NAMED = 5  # backups named in one verdict


class PackChecker:
    """Verdicts per chunk (None: fine) for the chunks backups need, and the vault's own problems."""

    def __init__(self, vault: Vault, needs: dict[str, list[str]], *, workers: int = 4, every_pack: bool = True):
        self.vault, self.chunks = vault, vault.chunks
        # The index as stored now: not as this Vault first read it, nor the local cache's copy of it
        self.index = self.chunks.reload_from_store()
        self.loose = self.chunks.loose()
        self.needs, self.workers, self.every_pack = needs, workers, every_pack
        self.listed = {i.key: i.size for i in vault.store.list(PACK_PREFIX) if is_pack_key(i.key)}
        self.problems: list[str] = [f"{p} (run `seawall repair index`)" for p in self.index.problems]
        self.verdicts: dict[str, str | None] = {}
        self._missing: dict[str, str] = {}
        self.chunks_read = self.bytes_read = self.packs_read = 0

    def users(self, chunk_ids: set[str]) -> str:
        names = sorted(k.split("/", 1)[1] for k, ids in self.needs.items() if chunk_ids.intersection(ids))
        if not names:
            return "used by no backup"
        more = f" and {len(names) - _NAMED} more" if len(names) > _NAMED else ""
        return "used by backup" + ("s " if len(names) > 1 else " ") + ", ".join(names[:_NAMED]) + more

    def run(self, read_data: bool, progress: Callable[[int], None] | None = None) -> dict[str, str | None]:
        needed = {c for ids in self.needs.values() for c in ids}
        for c in needed:
            self.verdicts[c] = self._presence(c)
        if read_data:
            self._read_packs(needed, progress)
            self._read_loose(needed, progress)
        return self.verdicts

    def _presence(self, chunk_id: str) -> str | None:
        loc = self.index.get(chunk_id)
        if loc is not None and loc[0] in self.listed:
            return None
        pack = loc[0] if loc is not None else self.index.absent.get(chunk_id)
        if pack is not None:
            return self._missing_pack(pack)
        if chunk_id in self.loose:
            return None
        return f"chunk {chunk_id} is missing (no index entry; `seawall repair index` rebuilds the index from the packs)"

    def _missing_pack(self, pack: str) -> str:
        """One verdict per missing pack (every backup that needs it gets the same line)."""
        if pack not in self._missing:
            ids = {c for c, p in self.index.absent.items() if p == pack}
            ids |= {c for c, loc in self.index.locations.items() if loc[0] == pack}
            self._missing[pack] = f"pack {pack} is missing from the vault ({self.users(ids)})"
        return self._missing[pack]

    # ---- reading packs ---------------------------------------------------------------------------
    def _read_packs(self, needed: set[str], progress: Callable[[int], None] | None) -> None:
        by_pack = self.index.by_pack()
        if self.every_pack:
            todo = sorted(self.listed)
        else:
            todo = sorted({loc[0] for c in needed if (loc := self.index.get(c)) and loc[0] in self.listed})
        with ThreadPoolExecutor(self.workers, thread_name_prefix="seawall-verify") as pool:
            for key, result in zip(todo, pool.map(self._check_pack, todo), strict=True):
                self._judge(key, result, by_pack.get(key, []), needed)
                if progress:
                    progress(1)

    def _check_pack(self, key: str) -> tuple[str | None, dict[str, tuple[int, int]], dict[str, str], int, int]:
        """(pack-level problem, header entries, per-blob problems, blobs read, plaintext bytes)."""
        try:
            data = self.vault.store.get(key)
            entries = parse_pack(self.vault.keyring, key, data)
        except (IntegrityError, ObjectNotFound) as exc:
            return exc.message, {}, {}, 0, 0
        bad: dict[str, str] = {}
        count = size = 0
        view = memoryview(data)
        for e in entries:
            try:
                size += len(self.chunks.open(e.chunk_id, key, view[e.offset:e.offset + e.length]))
                count += 1
            except SeawallError as exc:
                bad[e.chunk_id] = exc.message
        return None, {e.chunk_id: (e.offset, e.length) for e in entries}, bad, count, size

    def _judge(self, key: str, result, indexed: list[BlobEntry], needed: set[str]) -> None:
        problem, header, bad, count, size = result
        self.packs_read += 1
        self.chunks_read += count
        self.bytes_read += size
        if problem:
            ids = {e.chunk_id for e in indexed}
            verdict = f"pack {key}: {problem.removeprefix(f'pack {key}: ')} ({self.users(ids)})"
            self._fail(ids, verdict, needed)
            return
        for chunk_id, message in bad.items():
            self._fail({chunk_id}, f"{message} ({self.users({chunk_id})})", needed)
        wrong = [e for e in indexed if header.get(e.chunk_id) != (e.offset, e.length)]
        if wrong:
            self.problems.append(f"the index disagrees with pack {key} on {len(wrong)} chunk(s), first "
                                 f"{wrong[0].chunk_id} (run `seawall repair index`)")
            self._fail({e.chunk_id for e in wrong}, f"chunk {wrong[0].chunk_id}: the index disagrees with pack "
                       f"{key} (run `seawall repair index`)", needed)

    def _fail(self, ids: set[str], verdict: str, needed: set[str]) -> None:
        hit = ids & needed
        for c in hit:
            self.verdicts[c] = verdict
        if not hit:
            self.problems.append(verdict)

    def _read_loose(self, needed: set[str], progress: Callable[[int], None] | None) -> None:
        todo = sorted(c for c in needed if self.index.get(c) is None and c in self.loose)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="seawall-verify") as pool:
            for c, verdict in zip(todo, pool.map(self._read_one, todo), strict=True):
                self.verdicts[c] = verdict
                if progress:
                    progress(1)

    def _read_one(self, chunk_id: str) -> str | None:
        try:
            data = self.chunks.get(chunk_id)
        except SeawallError as exc:
            return exc.message
        self.chunks_read += 1
        self.bytes_read += len(data)
        return None

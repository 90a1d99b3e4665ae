"""Page patches of changed data-directory blocks (`seawall.postgres.pagepatch`): which pages count as
changed, a patch and its base giving the block back, tree lines carrying them, and a reader that
composes a patched block, refusing one that does not match its id."""

from __future__ import annotations

import os
import struct

import pytest

from seawall.crypto import ScryptParams
from seawall.errors import IntegrityError
from seawall.postgres import pagepatch
from seawall.postgres.pagepatch import BLOCK, PAGE, PAGES
from seawall.sources.tree import Entry
from seawall.stream_reader import ChunkReader
from seawall.vault import init_vault


def _block(lsns: list[int]) -> bytearray:
    out = bytearray(os.urandom(BLOCK))
    for i, lsn in enumerate(lsns):
        struct.pack_into("<II", out, i * PAGE, lsn >> 32, lsn & 0xFFFFFFFF)
    return out


def test_changed_pages_are_new_or_at_or_after_the_lsn() -> None:
    lsns = [0x1_0000_0000 + i for i in range(PAGES)]
    lsns[3] = 0  # a new page: no LSN yet
    lsns[7] = 0x2_0000_0000  # after
    lsns[9] = 0x1_8000_0000  # exactly at
    bits = pagepatch.changed_pages(_block(lsns), 0x1_8000_0000)
    assert pagepatch.pages_of(bits) == [3, 7, 9]
    assert pagepatch.changed_pages(_block([5] * PAGES), 6) == 0
    assert pagepatch.changed_pages(_block([5] * PAGES), 5) == (1 << PAGES) - 1


def test_patch_over_base_gives_the_block_back() -> None:
    base, block = bytes(_block([1] * PAGES)), bytearray(_block([1] * PAGES))
    block[:] = base
    for i in (0, 64, 127):
        block[i * PAGE:(i + 1) * PAGE] = os.urandom(PAGE)
    bits = (1 << 0) | (1 << 64) | (1 << 127) | (1 << 5)  # page 5 is in the bitmap unchanged: still right
    patch = pagepatch.make_patch(block, bits)
    assert len(patch) == 4 * PAGE
    assert pagepatch.compose(base, patch, bits) == bytes(block)
    assert pagepatch.decode(pagepatch.encode("b", "p", bits)) == ("b", "p", bits)
    with pytest.raises(ValueError, match="patch of"):
        pagepatch.compose(base, patch[:-1], bits)
    with pytest.raises(ValueError, match="base of"):
        pagepatch.compose(base[:-PAGE], patch, bits)


def test_tree_line_round_trip_and_stored_ids() -> None:
    entry = Entry(path="base/5/16384", type="f", mode=0o600, mtime_ns=1, size=2 * BLOCK,
                  chunks=[("blockid", BLOCK), ("whole", BLOCK)],
                  patches={"blockid": pagepatch.encode("baseid", "patchid", 0b1010)})
    back = Entry.from_line(entry.to_line())
    assert back == entry
    assert list(back.stored_ids()) == ["baseid", "patchid", "whole"]
    plain = Entry(path="f", type="f", mode=0o600, mtime_ns=1, size=1, hash="", chunks=[("c", 1)])
    assert b"patches" not in plain.to_line() and list(plain.stored_ids()) == ["c"]


def test_reader_composes_patched_blocks_and_refuses_a_wrong_one(tmp_path) -> None:
    vault = init_vault(f"file://{tmp_path}/v", "pw", scrypt=ScryptParams(n=2**10))
    base = bytes(_block([1] * PAGES))
    block = bytearray(base)
    block[10 * PAGE:11 * PAGE] = os.urandom(PAGE)
    bits = 1 << 10
    base_id, _ = vault.put_chunk(base)
    patch_id, _ = vault.put_chunk(pagepatch.make_patch(block, bits))
    other = os.urandom(1000)
    other_id, _ = vault.put_chunk(other)
    vault.commit_chunks()
    block_id = vault.keyring.chunk_id(block)
    with ChunkReader(vault, workers=2) as reader:
        reader.add_patches({block_id: pagepatch.encode(base_id, patch_id, bits)})
        got = list(reader.iter_chunks([(other_id, 1000), (block_id, BLOCK), (base_id, BLOCK)]))
    assert got == [other, bytes(block), base]
    with ChunkReader(vault, workers=1) as reader:
        reader.add_patches({block_id: pagepatch.encode(base_id, patch_id, 1 << 11)})  # the wrong page
        with pytest.raises(IntegrityError, match="does not match its id"):
            list(reader.iter_chunks([(block_id, BLOCK)]))


def _backup_with(vault, entry: Entry) -> str:
    import io

    from seawall.manifest import BackupStatus, new_manifest
    from seawall.streams import ChunkWriter

    manifest = new_manifest("db", "postgres-physical", source={"method": "datadir"})
    with ChunkWriter(vault) as writer:
        manifest.streams.append(writer.write(io.BytesIO(entry.to_line()), "pgdata", kind="tree"))
    vault.write_manifest(manifest)
    manifest.status = BackupStatus.DONE
    vault.write_manifest(manifest)
    return manifest.backup_id


def test_verify_read_data_composes_patched_blocks(tmp_path) -> None:
    from seawall.verify import verify_vault

    vault = init_vault(f"file://{tmp_path}/v", "pw", scrypt=ScryptParams(n=2**10))
    base = bytes(_block([1] * PAGES))
    block = bytearray(base)
    block[3 * PAGE:4 * PAGE] = os.urandom(PAGE)
    base_id, _ = vault.put_chunk(base)
    patch_id, _ = vault.put_chunk(pagepatch.make_patch(block, 1 << 3))
    vault.commit_chunks()
    block_id = vault.keyring.chunk_id(block)

    def entry(bits: int) -> Entry:
        return Entry(path="base/5/16384", type="f", mode=0o600, mtime_ns=1, size=BLOCK, chunks=[(block_id, BLOCK)],
                     patches={block_id: pagepatch.encode(base_id, patch_id, bits)})

    good = _backup_with(vault, entry(1 << 3))
    wrong = _backup_with(vault, entry(1 << 4))  # a bitmap that does not make the block: a bug, never a backup
    report = verify_vault(vault, read_data=True)
    verdict = {b.backup_id: b.problems for b in report.backups}
    assert verdict[good] == []
    assert len(verdict[wrong]) == 1 and "does not match its id" in verdict[wrong][0]
    plain = {b.backup_id: b.problems for b in verify_vault(vault).backups}  # without --read-data: not composed
    assert plain == {good: [], wrong: []}

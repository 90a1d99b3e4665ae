"""Page-level increments of a data-directory backup: a changed 1 MiB block stored as the pages that changed.

Why: 1% of the rows of a realistic database changes ~15% of its 1 MiB blocks but only ~10% of its
8 KiB pages (bench/POSTGRES.md): an index leaf here, a tuple's xmax there. Storing each changed
block whole makes an incremental pay compression, encryption and storage for every untouched page
beside a changed one. PostgreSQL 17's incremental backups and pgBackRest's block incremental store
changed blocks for the same reason.

How (the rule is `datadir_read`'s block rule, applied to pages): a page whose LSN is older than the
previous backup's start LSN (and not zero) was not changed since before that backup read it, so that
backup's copy of the page is the current one. A changed block whose previous copy is a whole block
(the *base*) is stored as a *patch*: the pages that differ from the base, concatenated, as an
ordinary chunk. The file's chunk list names the block by its own id (keyed BLAKE3 of the whole
block, as if stored whole, so offsets, sizes and `--delta` comparisons are unchanged), and the
entry's `patches` maps that id to `[base id, patch id, page bitmap]`. A later backup that finds the
block changed again patches the same base with the union of both bitmaps (pages changed since the
base), so a block is never more than base + one patch deep. Above `MAX_PAGES` changed pages, or when
the base is not a whole block, the block is stored whole and becomes a base itself.

Reading composes the block (`compose`) and checks it against its id: a wrong base, patch or bitmap
fails as a corrupt chunk would. Old seawall versions refuse a tree entry with `patches` (an unknown
field) instead of restoring a patch as if it were the block.
"""

from __future__ import annotations

from seawall.postgres.pgpages import PAGE, lsn_list

BLOCK = 1 << 20  # the unit data-directory files are cut into (`seawall.postgres.datadir_read`)
PAGES = BLOCK // PAGE
# Above this (7/8 of the pages) a patch saves too little to be worth a second fetch at restore time.
# Not half: 1% of the rows of the bench's database changes 64-95 pages of most blocks of a table
# whose rows foreign keys lock (KEY SHARE sets xmax), and those blocks are the bulk of what changes.
MAX_PAGES = PAGES * 7 // 8


def changed_pages(block: bytes | bytearray | memoryview, since_lsn: int) -> int:
    """Bitmap (bit i = page i) of the pages of a whole block whose LSN is zero or ≥ `since_lsn`."""
    bits = 0
    for i, lsn in enumerate(lsn_list(block)):
        if lsn == 0 or lsn >= since_lsn:
            bits |= 1 << i
    return bits


def pages_of(bits: int) -> list[int]:
    return [i for i in range(PAGES) if bits >> i & 1]


def make_patch(block: bytes | bytearray | memoryview, bits: int) -> bytes:
    """The pages of `block` named by `bits`, in page order."""
    view = memoryview(block)
    return b"".join(view[i * PAGE:(i + 1) * PAGE] for i in pages_of(bits))


def compose(base: bytes, patch: bytes, bits: int) -> bytes:
    """The block: `base` with the pages of `patch` written over the pages named by `bits`."""
    pages = pages_of(bits)
    if len(base) != BLOCK or len(patch) != len(pages) * PAGE:
        raise ValueError(f"patch of {len(patch)} bytes for {len(pages)} pages over a base of {len(base)} bytes")
    out = bytearray(base)
    for k, i in enumerate(pages):
        out[i * PAGE:(i + 1) * PAGE] = patch[k * PAGE:(k + 1) * PAGE]
    return bytes(out)


def encode(base_id: str, patch_id: str, bits: int) -> list[str]:
    """An entry's `patches` value for one block."""
    return [base_id, patch_id, f"{bits:032x}"]


def decode(value: list[str]) -> tuple[str, str, int]:
    """(base id, patch id, bitmap) of an entry's `patches` value."""
    base_id, patch_id, bits = value
    return base_id, patch_id, int(bits, 16)

/* PostgreSQL data page checks in C: pg_checksum_page (src/include/storage/checksum_impl.h) and the
 * rules of seawall.postgres.pgpages.bad_pages, for a whole block of pages per call; and the
 * incremental backup's block-reuse test (seawall_pages_older), which reads only the page LSNs.
 *
 * Built by scripts/setup.sh into the virtualenv (gcc -O3 -shared -fPIC) and called through ctypes
 * (seawall/postgres/pgpages_native.py), which releases the GIL for the call: the reader threads
 * check their blocks in parallel. Without it seawall uses the numpy port in pgpages.py (same rules,
 * ~1 CPU-s per GB against ~0.05 here). Pages are read as native uint32 words, as the server that
 * wrote them computes the checksum (pgpages_native is used only on little-endian machines, where
 * the numpy port reads the same words).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define BLCKSZ 8192
#define N_SUMS 32
#define ROWS (BLCKSZ / (4 * N_SUMS))
#define FNV_PRIME 16777619u

static const uint32_t base_offsets[N_SUMS] = {
    0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
    0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
    0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
    0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
};

#define COMP(sum, value) do { uint32_t t_ = (sum) ^ (value); (sum) = t_ * FNV_PRIME ^ (t_ >> 17); } while (0)

/* The 32 lanes are independent: gcc vectorises the inner loops (AVX2 where the CPU has it, chosen
 * at load time by target_clones; SSE2 otherwise). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static uint16_t checksum_page(const uint32_t *page, uint32_t blkno)
{
    uint32_t sums[N_SUMS], first[N_SUMS], result = 0;
    memcpy(sums, base_offsets, sizeof sums);
    memcpy(first, page, sizeof first);
    first[2] &= 0xFFFF0000u; /* pd_checksum (the low half of word 2 on little-endian) counts as zero */
    for (int j = 0; j < N_SUMS; j++)
        COMP(sums[j], first[j]);
    for (int i = 1; i < ROWS; i++)
        for (int j = 0; j < N_SUMS; j++)
            COMP(sums[j], page[i * N_SUMS + j]);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < N_SUMS; j++)
            COMP(sums[j], 0);
    for (int j = 0; j < N_SUMS; j++)
        result ^= sums[j];
    result ^= blkno;
    return (uint16_t)((result % 65535) + 1);
}

static int all_zero(const uint32_t *page)
{
    for (int i = 0; i < BLCKSZ / 4; i++)
        if (page[i])
            return 0;
    return 1;
}

int seawall_pgchecksum_abi(void) { return 2; }

/* pg_checksum_page of `n` consecutive pages of `buf`, numbered from `first_block`, into `out`. */
void seawall_page_checksums(const uint8_t *buf, size_t n, uint32_t first_block, uint16_t *out)
{
    for (size_t k = 0; k < n; k++)
        out[k] = checksum_page((const uint32_t *)(buf + k * BLCKSZ), first_block + (uint32_t)k);
}

/* The pages of `buf` (`n` of them, the first numbered `first_block`) that fail the checks of
 * pgpages.bad_pages: with an LSN before `start_lsn`, initialised (pd_upper != 0) and a wrong
 * checksum, or "new" (pd_upper == 0) and not all zeros. Their indexes (from 0) go into `out`
 * (room for `n`); returns how many. `buf` must be 4-byte aligned. */
size_t seawall_bad_pages(const uint8_t *buf, size_t n, uint32_t first_block, uint64_t start_lsn, uint32_t *out)
{
    size_t bad = 0;
    for (size_t k = 0; k < n; k++) {
        const uint32_t *page = (const uint32_t *)(buf + k * BLCKSZ);
        uint64_t lsn = ((uint64_t)page[0] << 32) | page[1];
        if (lsn >= start_lsn)
            continue; /* written since the backup started: WAL replay rewrites it */
        if ((page[3] >> 16) == 0) { /* pd_upper == 0: never initialised, must be all zeros */
            if (!all_zero(page))
                out[bad++] = (uint32_t)k;
            continue;
        }
        if (checksum_page(page, first_block + (uint32_t)k) != (uint16_t)(page[2] & 0xFFFFu))
            out[bad++] = (uint32_t)k;
    }
    return bad;
}

/* The block-reuse test of an incremental backup (seawall.postgres.datadir_read, rule 2), reading
 * only each page's pd_lsn (8 bytes per 8 KiB page, pread from the page cache) instead of the whole
 * block: ~0.17 ms per MiB against ~0.35 ms to copy it (page cache, one core; then ~12 us of
 * testing in Python, holding the GIL), and most blocks of a changed relation file are unchanged. 1
 * when the `len` bytes of `fd` at `offset` are whole pages (len > 0, a multiple of 8 KiB, the last
 * byte present) whose pd_lsn are all in (0, before), and, when `at_end`, the file ends right after
 * them (the previous backup's copy of the block was the file's short last one: a longer block now
 * is not the same block). 0 otherwise, a short or failed read included: the caller then reads the
 * block whole, as it does without this library, and that read reports any error. Any page may
 * change right after its LSN was read here; a page written after the backup started is replayed
 * from the WAL, as for a block read whole (the same rule, the same window). */
int seawall_pages_older(int fd, int64_t offset, size_t len, uint64_t before, int at_end)
{
    uint32_t w[2];
    unsigned char c;
    if (len == 0 || len % BLCKSZ)
        return 0;
    for (size_t k = 0; k < len / BLCKSZ; k++) {
        if (pread(fd, w, sizeof w, (off_t)(offset + (int64_t)(k * BLCKSZ))) != (ssize_t)sizeof w)
            return 0;
        uint64_t lsn = ((uint64_t)w[0] << 32) | w[1];
        if (lsn == 0 || lsn >= before)
            return 0; /* a new page, or changed since the previous backup started */
    }
    if (pread(fd, &c, 1, (off_t)(offset + (int64_t)len - 1)) != 1)
        return 0; /* the last page is not whole (the file shrank meanwhile) */
    if (at_end && pread(fd, &c, 1, (off_t)(offset + (int64_t)len)) != 0)
        return 0;
    return 1;
}

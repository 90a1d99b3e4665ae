"""Page-level increments (`seawall.postgres.pagepatch`) on a real PostgreSQL 15 cluster, through the CLI.

A table whose rows are updated in place (HOT updates, fillfactor 50) changes a few pages of each
1 MiB block. The incrementals after it store those pages as patches over the full backup's blocks,
the second one patching the same bases with the union of both changes (never a chain) and keeping
the first one's patches of the blocks it did not change. Every
restore of them, into an empty directory and `--delta` into the older copy, dumps what the primary
held and passes `pg_amcheck --heapallindexed`; the full backup deleted and garbage collected, the
bases it shares with the incrementals stay and restores still work; `verify --read-data` passes;
the second incremental copied alone to another vault takes its bases along and restores there.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from seawall.gc.collect import collect_garbage, delete_manifests
from seawall.postgres import binaries, pagepatch
from seawall.postgres.cluster import LocalCluster, free_port
from seawall.postgres.datadir import tree_name
from seawall.sources.tree import iter_entries
from seawall.stream_reader import ChunkReader
from seawall.vault import open_vault
from tests.fixtures.postgres import PASSPHRASE, SEAWALL_BIN, ArchivedCluster

TABLE = '"wide ☃ table"'


def cli(pg: ArchivedCluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SEAWALL_BIN, *args, "--vault", pg.vault_url, "--passphrase-file", str(pg.passphrase_file)],
                          capture_output=True, text=True, timeout=300)


def backup(pg: ArchivedCluster, *extra: str) -> dict:
    done = cli(pg, "backup", "postgres", "--dsn", pg.conninfo, "--mode", "physical", "--dataset", "db", "--json",
               *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def restore(pg: ArchivedCluster, backup_id: str, datadir: Path, *extra: str) -> LocalCluster:
    done = cli(pg, "restore", backup_id, "--to-datadir", str(datadir), "--port", str(free_port()), "--target",
               "immediate", "--no-archive", "--json", *extra)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    return LocalCluster(info["datadir"], info["port"], socket_dir=info["socket_dir"])


def dump(cluster: LocalCluster) -> bytes:
    return subprocess.run([binaries.tool("pg_dumpall"), "-d", cluster.conninfo(), "--data-only",
                           "--restrict-key=seawalltest"], capture_output=True, check=True).stdout


def amcheck_clean(cluster: LocalCluster) -> None:
    done = subprocess.run([binaries.tool("pg_amcheck"), "-h", str(cluster.socket_dir), "-p", str(cluster.port),
                           "-U", "postgres", "--all", "--heapallindexed", "--install-missing"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def table_entry(pg: ArchivedCluster, backup_id: str, table: str = TABLE):
    vault = open_vault(pg.vault_url, PASSPHRASE)
    manifest = vault.find_backup(backup_id, "db")
    path = pg.cluster.execute(f"SELECT pg_relation_filepath('{table}')")[0][0]
    with ChunkReader(vault, workers=1) as reader:
        for entry in iter_entries(reader.iter_stream(manifest.stream(tree_name(None)))):
            if entry.path == path:
                return entry
    raise AssertionError(f"{path} not in {backup_id}")


def test_incrementals_store_changed_pages_as_patches_and_restore_identical(pg_archived: ArchivedCluster,
                                                                             pg_workdir: Path) -> None:
    pg = pg_archived.cluster
    pg.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, v text) WITH (fillfactor = 50)")
    pg.execute(f"INSERT INTO {TABLE} SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 40000) g")  # ~6 MB
    pg.execute(f"VACUUM (FREEZE) {TABLE}")
    pg.execute("CHECKPOINT")
    full = backup(pg_archived)

    pg.execute(f"UPDATE {TABLE} SET v = 'first ' || v WHERE id % 997 = 0")  # ~40 rows: a few pages a block
    pg.execute(f"VACUUM {TABLE}")  # hint bits set now: a later read must not change these pages again
    first = backup(pg_archived)
    entry1 = table_entry(pg_archived, first["backup_id"])
    assert entry1.patches, "changed blocks of the table stored as page patches"
    full_entry = table_entry(pg_archived, full["backup_id"])
    full_ids = {c[0] for c in full_entry.chunks}
    for base_id, _, bits in map(pagepatch.decode, entry1.patches.values()):
        assert base_id in full_ids and 0 < bits.bit_count() <= pagepatch.MAX_PAGES
    # the patched pages are what is new: well under the changed blocks' size
    assert first["stored_bytes_new"] < len(entry1.patches) * pagepatch.BLOCK // 4
    expected1 = dump(pg)

    pg.execute(f"UPDATE {TABLE} SET v = 'second ' || v WHERE id % 991 = 0 AND id <= 20000")  # first half
    second = backup(pg_archived)
    entry2 = table_entry(pg_archived, second["backup_id"])
    old = {c[0]: pagepatch.decode(entry1.patches[c[0]]) for c in entry1.chunks if c[0] in entry1.patches}
    merged = carried = 0
    for k, ref in enumerate(entry2.chunks):
        if ref[0] not in (entry2.patches or {}):
            continue
        if ref == entry1.chunks[k]:  # unchanged since the first incremental: its patch record carried over
            assert entry2.patches[ref[0]] == entry1.patches[ref[0]]
            carried += 1
            continue
        base_id, _, bits = pagepatch.decode(entry2.patches[ref[0]])
        assert base_id == full_entry.chunks[k][0]  # the full's block: one level deep, never a chain
        before = entry1.chunks[k][0]
        if before in old:
            assert bits & old[before][2] == old[before][2]  # the union of both changes
            merged += 1
    assert merged and carried
    expected2 = dump(pg)

    copy = restore(pg_archived, first["backup_id"], pg_workdir / "copy" / "data", "-j", "3")
    try:
        assert dump(copy) == expected1
    finally:
        copy.stop("immediate")
    copy = restore(pg_archived, second["backup_id"], Path(copy.datadir), "--delta")
    try:
        assert dump(copy) == expected2
        amcheck_clean(copy)
    finally:
        copy.stop("immediate")

    # Copied alone to another vault, the second incremental brings its bases along (it restores there).
    dest = f"file://{pg_workdir / 'dr-vault'}"
    copied = subprocess.run([SEAWALL_BIN, "copy", "--from", pg_archived.vault_url, "--to", dest, "--init-dest",
                             "--backups", second["backup_id"], "--passphrase-file", str(pg_archived.passphrase_file),
                             "--dest-passphrase-file", str(pg_archived.passphrase_file)],
                            capture_output=True, text=True, timeout=300)
    assert copied.returncode == 0, copied.stdout + copied.stderr
    there = subprocess.run([SEAWALL_BIN, "restore", second["backup_id"], "--to-datadir", str(pg_workdir / "dr"),
                            "--port", str(free_port()), "--target", "immediate", "--no-archive", "--json",
                            "--vault", dest, "--passphrase-file", str(pg_archived.passphrase_file)],
                           capture_output=True, text=True, timeout=300)
    assert there.returncode == 0, there.stderr
    info = json.loads(there.stdout)
    dr = LocalCluster(info["datadir"], info["port"], socket_dir=info["socket_dir"])
    try:
        assert dump(dr) == expected2
    finally:
        dr.stop("immediate")

    # The full backup goes; the blocks its chunks gave the patches as bases stay.
    vault = open_vault(pg_archived.vault_url, PASSPHRASE)
    deleted, _ = delete_manifests(vault, [full["object"]])
    assert deleted == [full["object"]]
    report = collect_garbage(vault)
    assert report.chunks_unreferenced > 0  # the full's own blocks of files rewritten since did go
    verified = cli(pg_archived, "verify", "--read-data", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    fresh = restore(pg_archived, second["backup_id"], pg_workdir / "fresh" / "data")
    try:
        assert dump(fresh) == expected2
        amcheck_clean(fresh)
    finally:
        fresh.stop("immediate")


def test_patches_taken_while_pages_change_restore_consistent(pg_archived: ArchivedCluster, pg_workdir: Path) -> None:
    """Three incrementals, each while another session keeps updating rows all over a table: pages
    change under the read (torn copies WAL replay must repair) and between the LSN test and the read.
    The last one restores with the quiet table's rows exact, the churned table's row count kept, and
    `pg_amcheck --heapallindexed` clean."""
    pg = pg_archived.cluster
    pg.execute("CREATE TABLE quiet (id int PRIMARY KEY, v text) WITH (fillfactor = 50)")
    pg.execute("INSERT INTO quiet SELECT g, md5(g::text) FROM generate_series(1, 30000) g")
    pg.execute("CREATE TABLE churn (id int PRIMARY KEY, n int, v text) WITH (fillfactor = 50)")
    pg.execute("INSERT INTO churn SELECT g, 0, repeat(md5(g::text), 2) FROM generate_series(1, 40000) g")
    pg.execute("VACUUM (FREEZE)")
    pg.execute("CHECKPOINT")
    backup(pg_archived)
    sums = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM quiet"
    patched, updates = 0, []
    for round_ in range(3):
        pg.execute(f"UPDATE quiet SET v = v || '{round_}' WHERE id % 613 = {round_}")
        expected = pg.execute(sums)
        stop = threading.Event()

        def writer(stop: threading.Event = stop) -> None:
            while not stop.is_set():
                pg.execute("UPDATE churn SET n = n + 1 WHERE id IN (SELECT (random() * 39999)::int + 1 "
                           "FROM generate_series(1, 200))")
                updates.append(1)

        churn = threading.Thread(target=writer)
        churn.start()
        try:
            done = backup(pg_archived)
        finally:
            stop.set()
            churn.join()
        patched += table_entry(pg_archived, done["backup_id"], "quiet").patches is not None
    assert patched == 3 and len(updates) >= 3
    copy = restore(pg_archived, done["backup_id"], pg_workdir / "churned" / "data")
    try:
        assert copy.execute(sums) == expected
        assert copy.execute("SELECT count(*) FROM churn") == [(40000,)]
        amcheck_clean(copy)
    finally:
        copy.stop("immediate")

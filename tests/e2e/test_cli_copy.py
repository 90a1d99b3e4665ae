"""`seawall copy` end to end: the real script, a real Prefect server, two moto servers as two regions.

- A physical PostgreSQL backup and its WAL copied to the second region restore there to a named
  restore point, with the source vault moved out of reach and only the destination's URL and
  passphrase.
- A copy SIGKILLed midway leaves no backup listed at the destination; the rerun sends only the
  objects still missing, and the destination verifies.
- A corrupt chunk fails the copy of the backups that reference it (exit 3, the chunk named).
- Bad input: same vault, uninitialised destination, half-given lock options: one line, exit 2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import boto3

from seawall.errors import ExitCode
from seawall.postgres.binaries import chown_to_server_user
from seawall.postgres.cluster import LocalCluster, free_port
from seawall.stores.s3 import parse_s3_url
from tests.e2e.conftest import SEAWALL
from tests.fixtures.postgres import ArchivedCluster, switch_and_archive

MiB = 1 << 20


def _secret_file(path: Path, text: str) -> Path:
    path.write_text(text)
    chown_to_server_user(path)
    path.chmod(0o600)
    return path


def _dest_keys(url: str, under: str = "data/") -> dict[str, int]:
    args = parse_s3_url(url)
    client = boto3.client("s3", endpoint_url=args["endpoint"], region_name=args["region"])
    prefix = f"{args['prefix'].strip('/')}/{under}"
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=args["bucket"], Prefix=prefix)
    try:
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", ())}
    except client.exceptions.NoSuchBucket:  # the copy has not created it yet
        return {}


def _local_chunks(vault_dir: Path) -> dict[str, int]:
    """Chunk id -> stored size of every chunk of the local vault (read through its index)."""
    from seawall.vault import open_vault

    vault = open_vault(f"file://{vault_dir}", "correct horse")
    return {c: loc[2] for c, loc in vault.chunks.index.locations.items()}


# ---- acceptance 1: PostgreSQL physical + WAL, PITR in the second region --------------------------------
def _insert(cluster: LocalCluster, tag: str, n: int = 200) -> None:
    cluster.execute("INSERT INTO t (tag, payload) SELECT %s, md5(g::text) FROM generate_series(1, %s) g",
                    (tag, n), dbname="app")


def test_pg_backup_and_wal_copied_restore_pitr_in_the_second_region(s3_vault_url_b, cli,
                                                                    pg_archived: ArchivedCluster, pg_workdir):
    pg, src = pg_archived.cluster, pg_archived.vault_url
    src_args = ("--passphrase-file", str(pg_archived.passphrase_file))
    pg.execute("CREATE DATABASE app")
    pg.execute("CREATE TABLE t (id bigserial PRIMARY KEY, tag text, payload text)", dbname="app")
    _insert(pg, "A")
    backup = cli("backup", "postgres", "--dsn", pg.conninfo(), "--vault", src, "--mode", "physical", "--json",
                 *src_args)
    assert backup.code == 0, backup.err
    backup_id = backup.json()["backup_id"]
    _insert(pg, "B")
    pg.execute("SELECT pg_create_restore_point('p1')")
    time.sleep(1.1)
    _insert(pg, "C")
    switch_and_archive(pg)
    switch_and_archive(pg)

    dr_pass = _secret_file(pg_workdir / "dr-passphrase", "the DR region's own passphrase")
    copy = cli("copy", "--from", src, "--to", s3_vault_url_b, "--init-dest", "--dest-passphrase-file", str(dr_pass),
               "--json", *src_args)
    assert copy.code == 0, copy.err
    report = copy.json()
    assert [b["status"] for b in report["backups"]] == ["copied"] and report["wal"]["copied"] >= 4

    # The source region is gone: only the destination's URL and key material from here on.
    pg.stop()
    src_dir = Path(src.removeprefix("file://"))
    src_dir.rename(src_dir.with_name(src_dir.name + "-unreachable"))
    port = free_port()
    restored = cli("restore", backup_id, "--vault", s3_vault_url_b, "--to-datadir", str(pg_workdir / "dr-p1"),
                   "--port", str(port), "--target-name", "p1", "--json", "--passphrase-file", str(dr_pass))
    assert restored.code == 0, restored.err
    info = restored.json()
    cluster = LocalCluster(info["datadir"], info["port"], socket_dir=info.get("socket_dir"))
    try:
        tags = dict(cluster.execute("SELECT tag, count(*)::int FROM t GROUP BY tag ORDER BY tag", dbname="app"))
    finally:
        cluster.stop("immediate")
    assert tags == {"A": 200, "B": 200}


# ---- acceptance 3: SIGKILL midway, then resume ------------------------------------------------------------
def test_killed_copy_resumes_with_only_the_remainder(s3_vault_url_b, cli, prefect_server, tmp_path):
    src_dir, data = tmp_path / "src", tmp_path / "data"
    src = f"file://{src_dir}"
    data.mkdir()
    for i in range(16):
        (data / f"f{i}").write_bytes(os.urandom(MiB))
    assert cli("init", src).code == 0
    backup = cli("backup", "files", str(data), "--vault", src, "--json")
    assert backup.code == 0, backup.err
    dr_pass = _secret_file(tmp_path / "dr-pass", "dr passphrase")
    args = ["copy", "--from", src, "--to", s3_vault_url_b, "--dest-passphrase-file", str(dr_pass)]

    small_packs = {"SEAWALL_PACK_SIZE": str(2 * MiB)}  # 16 MiB in 8 packs: a kill lands between packs
    env = dict(os.environ, PREFECT_API_URL=prefect_server["url"], PREFECT_HOME=prefect_server["home"],
               SEAWALL_PASSPHRASE="correct horse", **small_packs)
    slow = subprocess.Popen([SEAWALL, *args, "--init-dest", "--bwlimit", str(MiB), "--workers", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while len(_dest_keys(s3_vault_url_b, "index/")) < 2 and slow.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    assert slow.returncode == -signal.SIGKILL, slow.stderr.read()

    source_chunks = _local_chunks(src_dir)
    from seawall.vault import open_vault

    at_dest = set(open_vault(s3_vault_url_b, "dr passphrase").chunks.index.locations)  # indexed: verified there
    assert 2 <= len(at_dest) < len(source_chunks)
    listed = cli("list", "--vault", s3_vault_url_b, "--json", "--passphrase-file", str(dr_pass))
    assert listed.code == 0, listed.err
    assert listed.json()["backups"] == []  # chunks arrived, but no manifest: not a backup there

    rerun = cli(*args, "--json", env=small_packs)
    assert rerun.code == 0, rerun.err
    report = rerun.json()
    remainder = {k: v for k, v in source_chunks.items() if k not in at_dest}
    assert report["backups"][0]["chunks_copied"] == len(remainder)  # only the rest moved
    packs = report["objects_copied"] - 1  # and the manifest
    assert 1 <= packs <= len(remainder)
    assert 0 <= report["bytes_copied"] - sum(remainder.values()) < packs * (64 << 10) + (64 << 10)
    verified = cli("verify", "--vault", s3_vault_url_b, "--read-data", "--json", "--passphrase-file", str(dr_pass))
    assert verified.code == 0, verified.err
    assert verified.json()["ok"] and [b["status"] for b in verified.json()["backups"]] == ["DONE"]


# ---- acceptance 4 through the CLI, and bad input -----------------------------------------------------------
def test_corrupt_chunk_fails_the_backups_that_reference_it(cli, tmp_path):
    src_dir = tmp_path / "src"
    src, dst = f"file://{src_dir}", f"file://{tmp_path / 'dst'}"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "blob").write_bytes(os.urandom(300_000))
    assert cli("init", src).code == 0
    ids = {"a": cli("backup", "files", str(tmp_path / "a"), "--vault", src, "--json").json()["backup_id"]}
    chunks_of_a = _local_chunks(src_dir)
    ids["b"] = cli("backup", "files", str(tmp_path / "b"), "--vault", src, "--json").json()["backup_id"]
    (tmp_path / "a" / "blob2").write_bytes(os.urandom(300_000))
    later = cli("backup", "files", str(tmp_path / "a"), "--vault", src, "--json").json()["backup_id"]
    name = max(chunks_of_a, key=chunks_of_a.get)  # a's data chunk (the tree index is tiny)
    from seawall.vault import open_vault
    from tests.unit.builders import flip_chunk_byte

    pack = flip_chunk_byte(open_vault(src, "correct horse"), name)

    result = cli("copy", "--from", src, "--to", dst, "--init-dest")
    assert result.code == ExitCode.INTEGRITY, result.out + result.err
    assert name in result.err and pack in result.err and len(result.err.strip().splitlines()) == 1
    assert f"copied b/{ids['b']}" in result.out
    assert f"failed a/{ids['a']}" in result.out and f"failed a/{later}" in result.out
    assert name not in _local_chunks(tmp_path / "dst")
    listed = cli("list", "--vault", dst, "--json").json()["backups"]
    assert [b["backup_id"] for b in listed] == [ids["b"]]


def test_bad_input_is_one_line(cli, tmp_path):
    src, dst = f"file://{tmp_path / 'src'}", f"file://{tmp_path / 'dst'}"
    assert cli("init", src).code == 0
    same = cli("copy", "--from", src, "--to", src + "/")
    assert same.code == ExitCode.USAGE and "same vault" in same.err
    missing = cli("copy", "--from", src, "--to", dst)
    assert missing.code == ExitCode.USAGE and "--init-dest" in missing.err
    assert len(missing.err.strip().splitlines()) == 1
    half = cli("copy", "--from", src, "--to", dst, "--object-lock-days", "3")
    assert half.code == ExitCode.USAGE and "--object-lock-mode" in half.err
    not_s3 = cli("copy", "--from", src, "--to", dst, "--init-dest", "--object-lock-mode", "compliance",
                 "--object-lock-days", "3")
    assert not_s3.code == ExitCode.USAGE and "s3://" in not_s3.err

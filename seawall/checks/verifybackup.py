"""`pg_verifybackup` on a physical backup: every file against the backup's own `backup_manifest`.

pg_basebackup writes `backup_manifest` (SHA-256 per file) as the last member of `base.tar`; for a
data-directory backup one is written from the backup's trees, with sizes only (its contents are
checked against their keyed chunk ids while being written: `datadir_restore.write_backup_manifest`).
`pg_verifybackup -n` (no WAL parsing: the WAL lives in the archive, which recovery already proved)
checks that every listed file exists with its size and checksum, and that nothing is extra.

It must see the files as extracted, before the server starts: recovery rewrites them. Because
`restore_physical` extracts and starts in one call, the check extracts `base.tar` once more into a
private temporary directory (streaming from the vault, as the restore does) and removes it after.
PostgreSQL 15's pg_verifybackup reads plain directories only (tar support came in 18). Tablespaces
are extracted beside it and linked from `pg_tblspc`, as PostgreSQL would link them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from seawall.checks import CheckResult, clip, result
from seawall.manifest import Manifest
from seawall.postgres import binaries
from seawall.postgres.cluster import make_private_dir
from seawall.postgres.datadir_restore import is_datadir_backup, write_backup_manifest
from seawall.postgres.recovery import extract_base
from seawall.postgres.tablespaces import prepare_locations
from seawall.vault import Vault

NAME = "pg_verifybackup"


def verify_datadir(datadir: Path) -> CheckResult:
    """Run `pg_verifybackup -n` on an extracted, not yet started, base backup."""
    start = time.monotonic()
    if not (datadir / "backup_manifest").exists():
        return result(NAME, None, False, f"no backup_manifest in {datadir}: the base backup cannot be verified")
    argv = [binaries.tool("pg_verifybackup"), "--no-parse-wal", str(datadir)]
    proc = binaries.run(argv, check=False)
    seconds = time.monotonic() - start
    if proc.returncode == 0:
        what = "sizes, SHA-256" if _has_checksums(datadir) else "sizes; contents checked against the chunk ids"
        return result(NAME, None, True, f"every file matches backup_manifest ({what})", seconds)
    lines = [ln.removeprefix("pg_verifybackup: error: ") for ln in (proc.stderr or proc.stdout).splitlines()]
    return result(NAME, None, False, clip("; ".join(ln for ln in lines if ln.strip())), seconds)


def _has_checksums(datadir: Path) -> bool:
    with open(datadir / "backup_manifest", "rb") as fh:
        return b'"Checksum-Algorithm"' in fh.read(1 << 16)


def verify_base_backup(vault: Vault, manifest: Manifest, *, workdir: str | None = None) -> list[CheckResult]:
    """Extract a physical backup's `base.tar` into a temporary directory and verify it there.

    Example:
        >>> verify_base_backup(vault, manifest)[0].status  # doctest: +SKIP
        'pass'
    """
    root = make_private_dir("seawall-verifybackup-", workdir)
    try:
        datadir = root / "data"
        datadir.mkdir(mode=0o700)
        binaries.chown_to_server_user(datadir)
        plan = [(t, root / f"tablespace-{t['oid']}") for t in manifest.source.get("tablespaces") or []]
        prepare_locations(plan)
        extract_base(vault, manifest, datadir, tablespaces=plan, rewrite_map=False)
        if is_datadir_backup(manifest):  # no pg_basebackup manifest: one from the backup's trees (sizes)
            write_backup_manifest(vault, manifest, datadir)
        for ts, location in plan:  # what PostgreSQL would make from tablespace_map: pg_verifybackup follows it
            (datadir / "pg_tblspc" / str(ts["oid"])).symlink_to(location)
        return [verify_datadir(datadir)]
    finally:
        shutil.rmtree(root, ignore_errors=True)

"""The children of `bench.pg_bench`: each seawall operation in its own process, writing one JSON report.

`python -m bench.pg_bench --child OP ARGS-JSON --out FILE` (`pg_common.run_child`) runs one of them,
so its wall time (interpreter start, imports and key unwrapping included) and peak RSS are its own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.pg_common import DB, PASSPHRASE, vm_hwm


def _open(url: str):
    from seawall.vault import open_vault

    return open_vault(url, PASSPHRASE)


def child_logical(a: dict[str, Any]) -> dict[str, Any]:
    from seawall.postgres.conn import PgConn
    from seawall.postgres.logical import backup_logical

    t0 = time.perf_counter()
    vault = _open(a["vault"])
    parent = vault.find_backup(a["parent"]) if a.get("parent") else None
    t1 = time.perf_counter()
    m = backup_logical(vault, PgConn(a["conninfo"]), a["dataset"], jobs=a["jobs"], parent=parent)
    t2 = time.perf_counter()
    return {"backup_id": m.backup_id, "open_s": t1 - t0, "op_s": t2 - t1, "stats": m.stats.model_dump(),
            "spool": m.source.get("spool"), "tables": len(m.source.get("tables", {}))}


def child_physical(a: dict[str, Any]) -> dict[str, Any]:
    from seawall.postgres.conn import PgConn
    from seawall.postgres.physical import backup_physical

    t0 = time.perf_counter()
    vault = _open(a["vault"])
    t1 = time.perf_counter()
    m = backup_physical(vault, PgConn(a["conninfo"]), a["dataset"])
    t2 = time.perf_counter()
    src = m.source
    return {"backup_id": m.backup_id, "open_s": t1 - t0, "op_s": t2 - t1, "stats": m.stats.model_dump(),
            "start_lsn": src.get("start_lsn"), "stop_lsn": src.get("stop_lsn"),
            "start_wal_file": src.get("start_wal_file"), "stop_wal_file": src.get("stop_wal_file")}


def child_restore(a: dict[str, Any]) -> dict[str, Any]:
    from seawall.postgres.recovery import RecoveryTarget, restore_physical

    t0 = time.perf_counter()
    vault = _open(a["vault"])
    manifest = vault.find_backup(a["backup_id"])
    t1 = time.perf_counter()
    summary = restore_physical(vault, manifest, a["datadir"], port=a["port"], target=RecoveryTarget.parse("latest"),
                               vault_url=a["vault"], passphrase_file=a["passphrase_file"], leave_running=True)
    t2 = time.perf_counter()
    marker = write_check(summary["conninfo"])
    t3 = time.perf_counter()
    return {"open_s": t1 - t0, "restore_s": t2 - t1, "write_s": t3 - t2, "marker": marker,
            "last_restored_wal": summary.get("last_restored_wal"), "timeline": summary.get("timeline")}


def write_check(conninfo: str) -> str | None:
    """Prove the copy accepts writes; return the markers the primary wrote (the last one ends the WAL)."""
    import psycopg

    with psycopg.connect(conninfo.replace("dbname=postgres", f"dbname={DB}"), autocommit=True) as pg:
        pg.execute("CREATE TABLE benchwrite_check (x int); INSERT INTO benchwrite_check VALUES (1)")
        row = pg.execute("SELECT string_agg(tag, ',' ORDER BY tag) FROM bench_marker").fetchone()
    return row[0] if row else None


CHILDREN = {"logical": child_logical, "physical": child_physical, "restore": child_restore}


def child_main(op: str, args_json: str, out: str) -> None:
    report = CHILDREN[op](json.loads(args_json))
    report["vm_hwm"] = vm_hwm()
    Path(out).write_text(json.dumps(report, default=str))

"""Which checks apply to a restored copy, and running one by name (each becomes its own task).

| backup kind | checks |
|---|---|
| postgres-logical | rows-checksum, schema, amcheck, gx:builtin, [gx:user], [pitr-target] |
| postgres-physical | pg_verifybackup, amcheck, gx:builtin, [gx:user], [pitr-target] |
| files | file-tree |

`gx:user` runs when a suites folder is given; `pitr-target` when the restore aimed at a time
(it needs the heartbeat table, and reports a failure if the copy holds any row newer than the
target). `run_check` never raises: see `seawall.checks.guarded`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from seawall import heartbeat
from seawall.checks import CheckResult, guarded, gx, result, sources, tables, tree, verifybackup
from seawall.checks import amcheck as amcheck_mod
from seawall.checks.restore import Restored
from seawall.checks.scratch import FILES, LOGICAL
from seawall.errors import ConfigError
from seawall.manifest import Manifest
from seawall.postgres.tablestats import schema_facts
from seawall.vault import Vault

PITR_TARGET = "pitr-target"
GX_USER = "gx:user"


@dataclass
class CheckTarget:
    """Everything a check needs about the restored copy."""

    manifest: Manifest
    restored: Restored
    suites: str | None = None
    target_time: datetime | None = None

    @property
    def kind(self) -> str:
        return self.manifest.kind

    def prefix(self, db: str) -> str:
        """Result labels carry the database when a copy has several (physical)."""
        return f"{db}/" if self.kind != LOGICAL and len(self.restored.databases) > 1 else ""


def check_names(target: CheckTarget) -> list[str]:
    """The checks that apply to `target`, in the order they are reported."""
    if target.kind == FILES:
        return [tree.NAME]
    if target.kind in sources.KINDS:
        return sources.check_names(target.manifest, target.suites)
    first = [tables.ROWS, tables.SCHEMA] if target.kind == LOGICAL else [verifybackup.NAME]
    names = [*first, amcheck_mod.NAME, gx.BUILTIN]
    names += [GX_USER] if target.suites else []
    names += [PITR_TARGET] if target.target_time is not None else []
    return names


def _each_db(target: CheckTarget, fn: Callable[[str], list[CheckResult]]) -> list[CheckResult]:
    return [r for db in target.restored.databases for r in fn(db)]


def _amcheck(target: CheckTarget, vault: Vault) -> list[CheckResult]:
    return _each_db(target, lambda db: amcheck_mod.check_btree_indexes(target.restored.conn_for(db),
                                                                       prefix=target.prefix(db)))


def _catalog_tables(conn) -> tuple[dict, dict]:
    with conn.connect() as pg:
        columns, indexes = schema_facts(pg)
    tables_ = {t: {"columns": cols} for t, cols in columns.items() if not t.endswith("." + heartbeat.TABLE)}
    return tables_, indexes


def _gx_builtin(target: CheckTarget, vault: Vault) -> list[CheckResult]:
    if target.kind == LOGICAL:
        src = target.manifest.source
        # rows-checksum compares every row with the backup: no null/unique scans (see seawall.checks.gx)
        return gx.check_builtin(target.restored.conn, src.get("tables") or {}, src.get("indexes") or {},
                                data_scans=False)

    def one(db: str) -> list[CheckResult]:
        conn = target.restored.conn_for(db)
        return gx.check_builtin(conn, *_catalog_tables(conn), prefix=target.prefix(db))

    return _each_db(target, one)


def _gx_user(target: CheckTarget, vault: Vault) -> list[CheckResult]:
    conns = {db: target.restored.conn_for(db) for db in target.restored.databases}
    default = target.restored.databases[0] if target.kind == LOGICAL else _default_db(target.restored.databases)
    return gx.check_user_suites(conns, target.suites, default)


def _default_db(databases: list[str]) -> str:
    """A physical copy's default database for user suites: the first one that is not `postgres`."""
    return next((d for d in databases if d != "postgres"), "postgres")


def _pitr_target(target: CheckTarget, vault: Vault) -> list[CheckResult]:
    for db in target.restored.databases:
        facts = heartbeat.read_facts(target.restored.conn_for(db), target.target_time)
        if facts is None:
            continue
        when = target.target_time.isoformat()
        if facts.newer_than_target:
            return [result(PITR_TARGET, f"{db}/public.{heartbeat.TABLE}", False,
                           f"{facts.newer_than_target} heartbeat row(s) newer than the target {when}: "
                           f"recovery went past its target (newest {facts.newest})")]
        return [result(PITR_TARGET, f"{db}/public.{heartbeat.TABLE}", True,
                       f"nothing newer than {when}; newest heartbeat {facts.newest}")]
    raise ConfigError(f"no {heartbeat.TABLE} table in the restored copy: target accuracy cannot be checked",
                      hint="write heartbeats on the source (seawall.heartbeat.beat / the write-heartbeat task)")


_CHECKS: dict[str, Callable[[CheckTarget, Vault | None], list[CheckResult]]] = {
    tables.ROWS: lambda t, v: tables.check_rows_checksums(t.restored.conn, t.manifest),
    tables.SCHEMA: lambda t, v: tables.check_schema(t.restored.conn, t.manifest),
    verifybackup.NAME: lambda t, v: verifybackup.verify_base_backup(v, t.manifest),
    amcheck_mod.NAME: _amcheck,
    gx.BUILTIN: _gx_builtin,
    GX_USER: _gx_user,
    PITR_TARGET: _pitr_target,
    tree.NAME: lambda t, v: tree.check_tree(v, t.manifest, t.restored.tree),
}


#: Checks that read the backup itself; the others only read the restored copy, so their tasks skip
#: unlocking the vault (a scrypt key derivation per task, CPU the other checks need).
NEEDS_VAULT = frozenset({verifybackup.NAME, tree.NAME})


def needs_vault(name: str) -> bool:
    """Whether check `name` reads the vault (see `NEEDS_VAULT`)."""
    return name in NEEDS_VAULT


def run_check(name: str, target: CheckTarget, vault: Vault | None) -> list[CheckResult]:
    """Run check `name` on the copy; problems become `fail`/`error` results, never exceptions.

    `vault` may be None for checks that do not read it (`needs_vault`).

    Example:
        >>> [r.status for r in run_check("amcheck", target, vault)]  # doctest: +SKIP
        ['pass', 'pass']
    """
    if target.kind in sources.KINDS:
        return sources.run(name, target.manifest, target.restored.copy, target.suites)
    if name not in _CHECKS:
        return [CheckResult(name=name, status="error", detail=f"unknown check {name!r}")]
    if vault is None and needs_vault(name):
        return [CheckResult(name=name, status="error", detail=f"check {name} needs the vault")]
    results = guarded(name, lambda: _CHECKS[name](target, vault))
    return results or [result(name, None, True, "nothing to check")]

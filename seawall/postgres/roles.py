"""The cluster-wide objects a database needs (roles and memberships), saved with a logical backup
and recreated before its restore.

pg_dump writes no roles, yet a dump names them: owners, grants, `CREATE POLICY ... TO role`, default
privileges. Restoring into a cluster that lacks them fails (`role "app_reader" does not exist`).

Which roles a database needs comes from the catalog, never from parsing SQL: every role that
`pg_shdepend` ties to an object of the database (owner, ACL entry, policy), the database's owner
and the grantees of its own ACL; then, through `pg_auth_members`, the roles they are members of
(privileges they inherit) and the roles that are members of them (the logins that use them).
Predefined `pg_*` roles exist everywhere and are never created; memberships in them are kept.
Passwords (the server's stored verifiers, from `pg_authid`, superuser only) are saved only when
asked. Everything is stored as the backup's `globals.json` stream: encrypted like any data, never in
the manifest's plain facts, logs or reports.

Restore options (`RoleOptions`):

- `create` (default): create the roles the target lacks, with their attributes, settings and
  memberships. A role that exists with other attributes (login, superuser, ...) is a collision:
  refused before anything is restored, unless `use_existing` (verification scratch targets: a
  verification never fails for want of a role).
- `skip`: create nothing; ownership and grants are not restored (`--no-owner --no-acl`); a policy
  naming a role the target lacks is refused before anything is restored.
- `role_map` OLD=NEW: the backup's role OLD is restored as NEW. It is created as OLD for the
  restore and renamed afterwards (references are by oid, so every owner, grant and policy follows
  the rename). Neither OLD nor NEW may exist in the target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from seawall.errors import ConfigError

STREAM = "globals.json"
_ATTRS = ("rolsuper", "rolinherit", "rolcreaterole", "rolcreatedb", "rolcanlogin", "rolreplication",
          "rolbypassrls")
_KEYWORDS = {"rolsuper": "SUPERUSER", "rolinherit": "INHERIT", "rolcreaterole": "CREATEROLE",
             "rolcreatedb": "CREATEDB", "rolcanlogin": "LOGIN", "rolreplication": "REPLICATION",
             "rolbypassrls": "BYPASSRLS"}
_NEEDED_SQL = """
WITH RECURSIVE db AS (SELECT oid, datdba, datacl FROM pg_database WHERE datname = current_database()),
direct AS (
    SELECT refobjid AS oid FROM pg_shdepend, db
    WHERE refclassid = 'pg_authid'::regclass
      AND (dbid = db.oid OR (dbid = 0 AND classid = 'pg_database'::regclass AND objid = db.oid))
    UNION SELECT datdba FROM db
    UNION SELECT (aclexplode(datacl)).grantee FROM db WHERE datacl IS NOT NULL
),
up AS (SELECT oid FROM direct UNION SELECT m.roleid FROM pg_auth_members m JOIN up ON m.member = up.oid),
down AS (SELECT oid FROM direct UNION SELECT m.member FROM pg_auth_members m JOIN down ON m.roleid = down.oid)
SELECT oid FROM up UNION SELECT oid FROM down
"""
_ROLES_SQL = """
SELECT r.oid, r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil::text, r.rolconfig
FROM pg_roles r WHERE r.oid = ANY(%s) AND r.rolname NOT LIKE 'pg\\_%%' AND r.oid > 0
ORDER BY r.rolname
"""
_MEMBERS_SQL = """
SELECT r.rolname, m.rolname, a.admin_option FROM pg_auth_members a
JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
WHERE a.member = ANY(%s) AND (a.roleid = ANY(%s) OR r.rolname LIKE 'pg\\_%%')
ORDER BY 1, 2
"""
_POLICY_ROLES_SQL = """
SELECT DISTINCT r.rolname FROM pg_policy p, unnest(p.polroles) AS pr(oid) JOIN pg_roles r ON r.oid = pr.oid
ORDER BY 1
"""


def read_globals(pg, *, passwords: bool = False) -> dict[str, Any]:
    """The roles (attributes, settings, optionally password verifiers) and memberships `pg`'s database needs."""
    oids = [r[0] for r in pg.execute(_NEEDED_SQL).fetchall()]
    roles = []
    for row in pg.execute(_ROLES_SQL, (oids,)).fetchall():
        role = {"name": row[1], **{a: bool(v) for a, v in zip(_ATTRS, row[2:9], strict=True)},
                "connlimit": row[9], "valid_until": row[10], "config": list(row[11] or [])}
        roles.append(role)
    if passwords:
        _add_passwords(pg, roles)
    members = [{"role": r, "member": m, "admin": bool(a)} for r, m, a in pg.execute(_MEMBERS_SQL, (oids, oids))]
    policy_roles = [r[0] for r in pg.execute(_POLICY_ROLES_SQL).fetchall()]
    return {"roles": roles, "memberships": members, "policy_roles": policy_roles, "passwords": passwords}


def _add_passwords(pg, roles: list[dict[str, Any]]) -> None:
    import psycopg

    try:
        with pg.transaction():
            rows = dict(pg.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
                                   ([r["name"] for r in roles],)).fetchall())
    except psycopg.errors.InsufficientPrivilege:
        raise ConfigError("saving role passwords needs a superuser connection (pg_authid)",
                          hint="back up as a superuser, or without passwords") from None
    for role in roles:
        role["password"] = rows.get(role["name"])


def encode(globals_: dict[str, Any]) -> bytes:
    return json.dumps(globals_, sort_keys=True).encode()


def decode(data: bytes) -> dict[str, Any]:
    return json.loads(data)


# ---- restore ------------------------------------------------------------------------------------
@dataclass
class RoleOptions:
    """How a restore treats the backup's roles (see the module docstring).

    Example:
        >>> RoleOptions(mode="create", role_map={"app_owner": "staging_owner"})  # doctest: +SKIP
    """

    mode: str = "create"  # create | skip
    role_map: dict[str, str] = field(default_factory=dict)
    use_existing: bool = False
    created: list[str] = field(default_factory=list)  # filled in: roles this restore created

    def __post_init__(self) -> None:
        if self.mode not in ("create", "skip"):
            raise ConfigError(f"unknown roles mode {self.mode!r}", hint="use create or skip")
        if self.mode == "skip" and self.role_map:
            raise ConfigError("--role-map needs --roles create", hint="roles are only mapped when created")

    @staticmethod
    def parse_map(pairs: list[str] | None) -> dict[str, str]:
        """`["old=new", ...]` → dict; a role name may hold anything but `=` before the first one."""
        out = {}
        for pair in pairs or []:
            old, sep, new = pair.partition("=")
            if not sep or not old or not new:
                raise ConfigError(f"invalid role mapping {pair!r}", hint="write it as OLD=NEW")
            out[old] = new
        return out


def _existing(pg, names: list[str]) -> dict[str, dict[str, Any]]:
    rows = pg.execute(f"SELECT rolname, {', '.join(_ATTRS)} FROM pg_roles WHERE rolname = ANY(%s)",
                      (names,)).fetchall()
    return {r[0]: dict(zip(_ATTRS, map(bool, r[1:]), strict=True)) for r in rows}


def plan(pg, globals_: dict[str, Any], options: RoleOptions, where: str) -> list[dict[str, Any]]:
    """The roles to create (as the backup names them); ConfigError for a collision, before any change."""
    roles = {r["name"]: r for r in globals_.get("roles", [])}
    for old in options.role_map:
        if old not in roles:
            raise ConfigError(f"--role-map names role {old!r}, which backup's roles do not include",
                              hint="roles in the backup: " + ", ".join(sorted(roles)) or "none")
    existing = _existing(pg, [*roles, *options.role_map.values()])
    if options.mode == "skip":
        missing = [r for r in globals_.get("policy_roles", []) if r not in existing]
        if missing:
            raise ConfigError(f"a row-level security policy names role {missing[0]!r}, which {where} lacks",
                              hint="restore with --roles create, or create the role first")
        return []
    for old, new in options.role_map.items():
        for name in (old, new):
            if name in existing:
                raise ConfigError(f"role {name!r} already exists in {where}: --role-map {old}={new} "
                                  "needs both names free", hint="map to a name the target does not use")
    out = []
    for name, role in roles.items():
        have = existing.get(name)
        if have is None:
            out.append(role)
        elif not options.use_existing and any(have[a] != role[a] for a in _ATTRS):
            diff = next(a for a in _ATTRS if have[a] != role[a])
            raise ConfigError(f"role {name!r} exists in {where} with other attributes "
                              f"({_KEYWORDS[diff]} is {'on' if have[diff] else 'off'} there, "
                              f"{'on' if role[diff] else 'off'} in the backup)",
                              hint=f"restore it under another name with --role-map {name}=NEW, "
                                   "or use --roles skip")
    return out


def create(pg, to_create: list[dict[str, Any]], globals_: dict[str, Any], options: RoleOptions) -> None:
    """CREATE ROLE each missing role, then the memberships the target lacks; records `options.created`."""
    from psycopg import sql

    for role in to_create:
        words = [_KEYWORDS[a] if role[a] else "NO" + _KEYWORDS[a] for a in _ATTRS]
        stmt = sql.SQL("CREATE ROLE {} " + " ".join(words)).format(sql.Identifier(role["name"]))
        if role.get("connlimit", -1) != -1:
            stmt += sql.SQL(" CONNECTION LIMIT {}").format(sql.Literal(role["connlimit"]))
        if role.get("valid_until"):
            stmt += sql.SQL(" VALID UNTIL {}").format(sql.Literal(role["valid_until"]))
        if role.get("password"):
            stmt += sql.SQL(" PASSWORD {}").format(sql.Literal(role["password"]))
        pg.execute(stmt)
        options.created.append(role["name"])
        for setting in role.get("config") or []:
            name, _, value = setting.partition("=")
            pg.execute(sql.SQL("ALTER ROLE {} SET {} TO {}").format(
                sql.Identifier(role["name"]), sql.Identifier(name), sql.Literal(value)))
    _grant_memberships(pg, globals_.get("memberships", []))


def _grant_memberships(pg, memberships: list[dict[str, Any]]) -> None:
    from psycopg import sql

    for m in memberships:
        present = pg.execute("SELECT 1 FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
                             "JOIN pg_roles u ON u.oid = a.member WHERE r.rolname = %s AND u.rolname = %s",
                             (m["role"], m["member"])).fetchone()
        known = pg.execute("SELECT count(*) FROM pg_roles WHERE rolname IN (%s, %s)",
                           (m["role"], m["member"])).fetchone()[0]
        if present or known < 2:
            continue
        stmt = sql.SQL("GRANT {} TO {}").format(sql.Identifier(m["role"]), sql.Identifier(m["member"]))
        pg.execute(stmt + (sql.SQL(" WITH ADMIN OPTION") if m["admin"] else sql.SQL("")))


def rename_mapped(pg, options: RoleOptions) -> None:
    """After the restore: each mapped role takes its new name (everything refers to it by oid)."""
    from psycopg import sql

    for old, new in options.role_map.items():
        pg.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new)))
        options.created[options.created.index(old)] = new


def drop_created(pg, options: RoleOptions) -> None:
    """Undo `create` after a failed restore (the restored database is dropped first)."""
    from psycopg import sql

    for name in reversed(options.created):
        pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    options.created.clear()

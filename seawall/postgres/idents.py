"""PostgreSQL identifiers: table keys as PostgreSQL quotes them, and parsing them back.

A table is keyed everywhere (manifests, checks, reports) as `quote_ident(schema).quote_ident(table)`,
computed by the server itself (`QUALIFIED_SQL`): `public.orders` for plain names, and
`"a b"."c.d"` or `"Sales"."Ünïcode"` for any other legal identifier. Plain names look as they did
before quoting was introduced, so older manifests keep their meaning. Names are never split on
whitespace or on a bare dot: `split_qualified` follows PostgreSQL's quoting rules (a doubled `""` is
one quote inside a quoted identifier). Unquoted parts are taken as written (not folded to lower
case), so a key written by an older seawall with a raw mixed-case name still resolves.
"""

from __future__ import annotations

#: SQL for the key of relation `c` in namespace `n` (the aliases the queries here use).
QUALIFIED_SQL = "quote_ident(n.nspname) || '.' || quote_ident(c.relname)"


def split_identifiers(text: str) -> list[str]:
    """`'"a b"."c""d".e'` → `['a b', 'c"d', 'e']`; ValueError on an unterminated quote or empty part."""
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            buf, i = [], i + 1
            while True:
                j = text.find('"', i)
                if j < 0:
                    raise ValueError(f"unterminated quoted identifier in {text!r}")
                buf.append(text[i:j])
                if j + 1 < n and text[j + 1] == '"':
                    buf.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            part = "".join(buf)
        else:
            j = text.find(".", i)
            j = n if j < 0 else j
            part, i = text[i:j], j
        if not part:
            raise ValueError(f"empty identifier in {text!r}")
        parts.append(part)
        if i == n:
            return parts
        if text[i] != ".":
            raise ValueError(f"unexpected {text[i]!r} after an identifier in {text!r}")
        i += 1


def split_qualified(name: str, default_schema: str = "public") -> tuple[str, str]:
    """`(schema, table)` of a table key; a bare name is in `default_schema`."""
    parts = split_identifiers(name)
    if len(parts) == 1:
        return default_schema, parts[0]
    if len(parts) != 2:
        raise ValueError(f"{name!r} is not a schema-qualified table name")
    return parts[0], parts[1]


def quote_ident(name: str) -> str:
    """Always-quoted form of an identifier (safe anywhere; the server's `quote_ident` may omit quotes)."""
    return '"' + name.replace('"', '""') + '"'

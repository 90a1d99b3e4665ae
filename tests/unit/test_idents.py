"""PostgreSQL identifier keys: parsed with PostgreSQL's quoting rules, never split on spaces."""

from __future__ import annotations

import pytest

from seawall.checks.gx import suite_table
from seawall.errors import ConfigError
from seawall.postgres.idents import quote_ident, split_identifiers, split_qualified
from seawall.postgres.roles import RoleOptions


@pytest.mark.parametrize(("key", "parts"), [
    ("public.orders", ("public", "orders")),
    ('"a b"."c d"', ("a b", "c d")),
    ('"Sales.EU"."Orders"', ("Sales.EU", "Orders")),
    ('"we""ird"."x.y ""z"""', ('we"ird', 'x.y "z"')),
    ('"Ünï"."Événements 2024"', ("Ünï", "Événements 2024")),
    ('public."select"', ("public", "select")),
    ("orders", ("public", "orders")),
    ("public.Orders", ("public", "Orders")),  # an older manifest's raw mixed-case name resolves as written
])
def test_split_qualified_follows_postgres_quoting(key: str, parts: tuple[str, str]) -> None:
    assert split_qualified(key) == parts


@pytest.mark.parametrize("bad", ['"a b', "a..b", '"a"x', "", 'a."b'])
def test_malformed_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        split_identifiers(bad)


@pytest.mark.parametrize("name", ["a", 'x"y', "a.b c", "Ü", '""'])
def test_quote_ident_round_trips(name: str) -> None:
    assert split_identifiers(quote_ident(name) + "." + quote_ident(name)) == [name, name]


def test_user_suite_names_become_table_keys(tmp_path) -> None:
    assert suite_table(tmp_path / "orders.json", {}) == (None, "public.orders")
    assert suite_table(tmp_path / "x.json", {"meta": {"table": '"a b"."c d"'}}) == (None, '"a b"."c d"')
    assert suite_table(tmp_path / "x.json", {"meta": {"table": "Sales.Orders"}}) == (None, '"Sales"."Orders"')


def test_role_map_parsing() -> None:
    assert RoleOptions.parse_map(["a=b", "x y=z=w"]) == {"a": "b", "x y": "z=w"}
    with pytest.raises(ConfigError, match="OLD=NEW"):
        RoleOptions.parse_map(["nomap"])
    with pytest.raises(ConfigError, match="--role-map needs --roles create"):
        RoleOptions("skip", role_map={"a": "b"})

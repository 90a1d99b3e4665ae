"""`PostgresConfig`: how to reach a PostgreSQL server (the fields of the `PostgresSource` block)."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field, SecretStr, model_validator

from seawall.errors import ConfigError
from seawall.postgres.conn import PgConn


def split_password(dsn: str) -> tuple[str, str | None]:
    """A conninfo/URI without its password, and the password (None when it has none)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        return dsn, None
    if "password" not in params:
        return dsn, None
    secret = params.pop("password")
    return make_conninfo(**params), secret


class PostgresConfig(BaseModel):
    """A PostgreSQL server (and database) to back up or restore into.

    Give either `dsn` (a libpq conninfo string or postgresql:// URI) or the separate fields; the
    password is kept apart as a secret and handed to libpq tools through PGPASSWORD. Empty fields
    fall back to libpq's environment (PGHOST, PGUSER ...) and ~/.pgpass.

    Example:
        ```python
        from seawall.configs.postgres import PostgresConfig

        with PostgresConfig(dsn="host=db1 dbname=app").get_connection() as conn:
            conn.execute("SELECT 1")
        ```
    """

    dsn: str | None = Field(default=None, description="libpq conninfo or URI; overrides the separate fields.")
    host: str | None = Field(default=None, description="Host name, IP address or Unix socket directory.")
    port: int | None = Field(default=None, description="TCP port (default 5432).")
    dbname: str | None = Field(default=None, description="Database name.")
    user: str | None = Field(default=None, description="Role to connect as.")
    password: SecretStr | None = Field(default=None, description="Password (empty: .pgpass or PGPASSWORD).")
    sslmode: str | None = Field(default=None, description="libpq sslmode, e.g. require or verify-full.")

    @model_validator(mode="after")
    def _password_out_of_dsn(self) -> PostgresConfig:
        """A password written into the DSN moves into the secret field, so repr/logs never show it."""
        if self.dsn:
            self.dsn, secret = split_password(self.dsn)
            if secret is not None and self.password is None:
                self.password = SecretStr(secret)
        return self

    def get_pgconn(self) -> PgConn:
        """The connection description used by seawall's core (password kept out of the string)."""
        from psycopg.conninfo import make_conninfo

        fields = {"host": self.host, "port": self.port, "dbname": self.dbname, "user": self.user,
                  "sslmode": self.sslmode}
        conninfo = make_conninfo(self.dsn or "", **{k: v for k, v in fields.items() if v is not None})
        return PgConn(conninfo, self.password)

    def get_connection(self, *, autocommit: bool = True):
        """A new psycopg connection (errors translated to seawall's families)."""
        return self.get_pgconn().connect(autocommit=autocommit)

    def display(self) -> str:
        return self.get_pgconn().display()


def as_postgres_source(source: PostgresConfig | str) -> PostgresConfig:
    """Accept a block, a `PostgresConfig`, a bare DSN, or `env:NAME` (the DSN is in that environment
    variable, so a deployment's parameters never hold it)."""
    if isinstance(source, PostgresConfig):
        return source
    if source.startswith("env:"):
        name = source[4:]
        if not os.environ.get(name):
            raise ConfigError(f"environment variable {name} is not set", hint="set it to the server's DSN")
        return PostgresConfig(dsn=os.environ[name])
    return PostgresConfig(dsn=source)

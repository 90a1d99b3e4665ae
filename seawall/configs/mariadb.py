"""`MariaDBConfig`: how to reach a MariaDB/MySQL server (the fields of the `MariaDBSource` block)."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field, SecretStr, model_validator

from seawall.errors import ConfigError
from seawall.mariadb.conn import MyConn


class MariaDBConfig(BaseModel):
    """A MariaDB or MySQL server (and database) to back up or restore into.

    Give `dsn` (`mysql://user@host:port/database`, `?socket=/path` for a Unix socket); a password
    written into it moves into the `password` secret. Tools get it through a private option file.

    Example:
        ```python
        from seawall.configs.mariadb import MariaDBConfig

        with MariaDBConfig(dsn="mysql://backup@db1/shop").get_connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        ```
    """

    dsn: str = Field(default="mysql://root@localhost/", description="mysql://user@host:port/database URL.")
    password: SecretStr | None = Field(default=None, description="Password (kept out of the DSN).")

    @model_validator(mode="after")
    def _password_out_of_dsn(self) -> MariaDBConfig:
        """A password written into the DSN moves into the secret field, so repr/logs never show it."""
        try:
            conn = MyConn.parse(self.dsn)
        except ConfigError:
            return self  # reported when a connection is attempted
        if conn.password is not None:
            self.password = self.password or conn.password
            self.dsn = conn.dsn()
        return self

    def get_myconn(self) -> MyConn:
        """The connection description used by seawall's core (password kept apart)."""
        return MyConn.parse(self.dsn, self.password)

    def get_connection(self):
        """A new PyMySQL connection (errors translated to seawall's families)."""
        return self.get_myconn().connect()

    def display(self) -> str:
        return self.get_myconn().display()


def as_mariadb_source(source: MariaDBConfig | str) -> MariaDBConfig:
    """Accept a block, a config, a bare DSN, or `env:NAME` (the DSN is in that environment variable)."""
    if isinstance(source, MariaDBConfig):
        return source
    if source.startswith("env:"):
        name = source[4:]
        if not os.environ.get(name):
            raise ConfigError(f"environment variable {name} is not set", hint="set it to the server's DSN")
        return MariaDBConfig(dsn=os.environ[name])
    return MariaDBConfig(dsn=source)

"""Connecting to MariaDB/MySQL: one connection description for PyMySQL and the command-line tools,
and the single place where PyMySQL errors become seawall errors.

A DSN is `mysql://user[:password]@host[:port]/database[?socket=/path]` (`mariadb://` too). The
password is kept apart as a secret: tools read it from a private option file
(`--defaults-extra-file`, mode 0600, deleted afterwards), never from their command line.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pydantic import SecretStr

from seawall.errors import AuthError, ConfigError, PermanentError, RetryableError
from seawall.reach import first_contact

SCHEMES = ("mysql", "mariadb")


@dataclass(frozen=True)
class MyConn:
    """Where a MariaDB server is and who connects; the password is never part of `display()`."""

    host: str = "localhost"
    port: int = 3306
    user: str = "root"
    database: str = ""
    socket: str | None = None
    password: SecretStr | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, dsn: str, password: SecretStr | None = None) -> MyConn:
        """Parse a `mysql://` DSN; a password in it moves into the secret field."""
        parts = urlsplit(dsn or "")
        if parts.scheme not in SCHEMES:
            raise ConfigError(f"invalid MariaDB DSN {_redact(dsn)!r}",
                              hint="use mysql://user[:password]@host[:port]/database[?socket=/path]")
        try:
            port = parts.port or 3306
        except ValueError:
            raise ConfigError(f"invalid port in MariaDB DSN {_redact(dsn)!r}") from None
        query = parse_qs(parts.query)
        secret = password or (SecretStr(unquote(parts.password)) if parts.password is not None else None)
        return cls(host=parts.hostname or "localhost", port=port, user=unquote(parts.username or "root"),
                   database=unquote(parts.path.lstrip("/")), socket=(query.get("socket") or [None])[0],
                   password=secret)

    def __repr__(self) -> str:
        return f"MyConn({self.display()!r})"

    def display(self) -> str:
        """`mysql://user@host:port/db` (no password: safe for logs and errors)."""
        where = f"localhost?socket={self.socket}" if self.socket else f"{self.host}:{self.port}"
        base, _, query = where.partition("?")
        return f"mysql://{quote(self.user, safe='')}@{base}/{self.database}" + (f"?{query}" if query else "")

    def dsn(self) -> str:
        """The DSN without the password (the secret travels separately)."""
        return self.display()

    def with_database(self, database: str) -> MyConn:
        return replace(self, database=database)

    def connect(self, *, database: str | None = None, autocommit: bool = True, **kwargs: Any):
        """A PyMySQL connection (utf8mb4, UTC session); errors translated."""
        import pymysql

        args: dict[str, Any] = dict(user=self.user, charset="utf8mb4", autocommit=autocommit, connect_timeout=10,
                                    init_command="SET time_zone = '+00:00'")
        args |= {"unix_socket": self.socket} if self.socket else {"host": self.host, "port": self.port}
        db = self.database if database is None else database
        if db:
            args["database"] = db
        if self.password is not None:
            # UTF-8 bytes, as the mariadb tools send them (PyMySQL would encode a str as latin-1,
            # so a password with é or ö set through SQL would never match).
            args["password"] = self.password.get_secret_value().encode("utf-8")
        endpoint = f"mariadb:{self.socket or f'{self.host}:{self.port}'}"
        with translate_pymysql_errors(f"connecting to {self.display()}", endpoint=endpoint):
            return pymysql.connect(**args, **kwargs)

    @contextlib.contextmanager
    def option_file(self) -> Iterator[str]:
        """A private `[client]` option file for the tools (pass it first: `--defaults-extra-file=`)."""
        lines = ["[client]", f"user={_opt(self.user)}"]
        lines += [f"socket={_opt(self.socket)}"] if self.socket else [f"host={_opt(self.host)}", f"port={self.port}",
                                                                          "protocol=TCP"]
        if self.password is not None:
            lines.append(f"password={_opt(self.password.get_secret_value())}")
        fd, path = tempfile.mkstemp(prefix="seawall-my-", suffix=".cnf")
        try:
            with os.fdopen(fd, "w") as fh:  # mkstemp: mode 0600, only we can read the password
                fh.write("\n".join(lines) + "\n")
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _opt(value: str) -> str:
    """An option-file value, quoted so `#`, spaces and quotes survive."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _redact(dsn: str) -> str:
    parts = urlsplit(dsn or "")
    if parts.password is None:
        return dsn
    return dsn.replace(f":{parts.password}@", ":***@", 1)


# ---- errors -------------------------------------------------------------------------------------
_AUTH = {1044, 1045, 1698, 1227}  # access denied (db, user/password, plugin), privilege missing
_UNKNOWN_DB = 1049
_RETRYABLE = {1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013, 2055}  # too many conns, shutdown, lock/deadlock, lost


def classify_pymysql(exc: BaseException, what: str) -> Exception:
    """The seawall error for a PyMySQL exception (by MySQL error number)."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    message = f"{what}: {text.strip().splitlines()[0] if text.strip() else type(exc).__name__}"
    if code in _AUTH:
        return AuthError(message, hint="check the user, password and the account's privileges")
    if code == _UNKNOWN_DB:
        return ConfigError(message, hint="check the database name")
    if code in _RETRYABLE:
        return RetryableError(message)
    return PermanentError(message)


def translate_pymysql_errors(what: str, *, endpoint: str | None = None) -> contextlib.AbstractContextManager[None]:
    """Map PyMySQL exceptions to seawall's families, naming `what`.

    Args:
        what: What was being done, naming the server (never the password).
        endpoint: Set when connecting: a refused connection or unknown host before this server
            ever answered is a ConfigError (exit 2 at once, `seawall.reach`), later a RetryableError.
    """
    import pymysql

    def classify(exc: BaseException) -> Exception:
        if isinstance(exc, pymysql.err.Error):
            return classify_pymysql(exc, what)
        return RetryableError(f"{what}: {exc}")  # a socket error below PyMySQL: the link dropped

    return first_contact(what, endpoint, (pymysql.err.Error, ConnectionError, TimeoutError), classify,
                         hint="check the host and port in the DSN, and that MariaDB runs there")

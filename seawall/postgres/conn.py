"""Connecting to PostgreSQL: one connection description for psycopg and the libpq tools, and
the single place where psycopg errors become seawall errors.

Passwords never go on a command line: tools get them through PGPASSWORD in their environment.
libpq's own environment (PGHOST, PGUSER...) and ~/.pgpass keep working.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from seawall.errors import AuthError, ConfigError, PermanentError, RetryableError
from seawall.reach import first_contact
from seawall.redact import add_conninfo_secret, add_secret


@dataclass(frozen=True)
class PgConn:
    """A libpq conninfo string or URI, plus an optional password kept out of it."""

    conninfo: str = ""
    password: SecretStr | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        add_secret(self.password)
        add_conninfo_secret(self.conninfo)

    def __repr__(self) -> str:
        return f"PgConn({self.display()!r})"

    def display(self) -> str:
        """The conninfo with any password removed (safe for logs and errors)."""
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        try:
            params = conninfo_to_dict(self.conninfo)
        except Exception:  # unparseable: show nothing of it
            return "<invalid conninfo>"
        params.pop("password", None)
        return make_conninfo(**params)

    def params(self) -> dict[str, Any]:
        from psycopg.conninfo import conninfo_to_dict

        try:
            return conninfo_to_dict(self.conninfo)
        except Exception as exc:
            raise ConfigError(f"invalid PostgreSQL connection string: {str(exc).splitlines()[0]}") from None

    def with_dbname(self, dbname: str) -> PgConn:
        from psycopg.conninfo import make_conninfo

        return PgConn(make_conninfo(self.conninfo, dbname=dbname), self.password)

    def tool_env(self) -> dict[str, str]:
        """Environment for pg_dump/pg_basebackup/psql: PGPASSWORD when we hold a password."""
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password.get_secret_value()
        return env

    def connect(self, *, autocommit: bool = True, **kwargs: Any):
        """A psycopg connection; errors translated."""
        import psycopg

        extra = {"password": self.password.get_secret_value()} if self.password is not None else {}
        with translate_psycopg_errors(f"connecting to {self.display()}", endpoint=self.display()):
            return psycopg.connect(self.conninfo, autocommit=autocommit, connect_timeout=10, **extra, **kwargs)


_RETRYABLE_CLASSES = ("08", "53", "57P0")  # connection exceptions, insufficient resources, shutdowns
_RETRYABLE_STATES = {"40001", "40P01", "55P03", "57014"}
_AUTH_CLASSES = ("28",)
_PERMANENT_CLASSES = ("42", "3D", "3F", "22", "23", "0A")


def classify_psycopg(exc: BaseException, what: str) -> Exception:
    """The seawall error for a psycopg exception (by SQLSTATE, then by type)."""
    import psycopg

    state = getattr(exc, "sqlstate", None) or ""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    message = f"{what}: {first}"
    if state.startswith(_AUTH_CLASSES):
        return AuthError(message, hint="check the user, password, .pgpass and pg_hba.conf")
    if state == "3D000":
        return ConfigError(message, hint="check the database name")
    if state in _RETRYABLE_STATES or state.startswith(_RETRYABLE_CLASSES):
        return RetryableError(message)
    if state.startswith(_PERMANENT_CLASSES):
        return PermanentError(message)
    if isinstance(exc, psycopg.OperationalError) and not state:
        # libpq connection failures carry no SQLSTATE: refused/timeouts are transient,
        # but authentication failures are reported the same way and must not be retried.
        lowered = first.lower()
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            return AuthError(message, hint="check the user, password, .pgpass and pg_hba.conf")
        if "does not exist" in lowered and "database" in lowered:
            return ConfigError(message, hint="check the database name")
        if "invalid" in lowered and ("connection option" in lowered or "uri" in lowered):
            return ConfigError(message)
        return RetryableError(message)
    if isinstance(exc, psycopg.ProgrammingError | psycopg.DataError | psycopg.IntegrityError):
        return PermanentError(message)
    if isinstance(exc, psycopg.InterfaceError):
        return RetryableError(message)
    return PermanentError(message)


def translate_psycopg_errors(what: str, *, endpoint: str | None = None) -> contextlib.AbstractContextManager[None]:
    """Map psycopg exceptions to RetryableError / PermanentError families, naming `what`.

    Args:
        what: What was being done, naming the server (never the password).
        endpoint: Set when connecting: a refused connection or unknown host before this server
            ever answered is a ConfigError (exit 2 at once, `seawall.reach`), later a RetryableError.
            An error with an SQLSTATE means the server answered, if only to refuse.
    """
    import psycopg

    return first_contact(what, endpoint, (psycopg.Error,), lambda exc: classify_psycopg(exc, what),
                         hint="check the host and port in the DSN, and that PostgreSQL runs there",
                         answered=lambda exc: bool(getattr(exc, "sqlstate", None)))

"""The psycopg → seawall error table (SQLSTATE first, then libpq's connection messages).

Exceptions are real psycopg classes, built the way psycopg raises them (`errors.lookup(sqlstate)`,
an OperationalError without SQLSTATE for libpq connection failures), like the S3 and SSH tables.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pe

from seawall.errors import AuthError, ConfigError, PermanentError, RetryableError
from seawall.postgres.conn import classify_psycopg, translate_psycopg_errors
from seawall.reach import mark_reached

WHAT = "connecting to host=db port=5432 user=backup"


def _state(sqlstate: str, text: str = "server said no") -> psycopg.Error:
    return pe.lookup(sqlstate)(text)


TABLE = [
    # connection exceptions, resources, shutdowns, serialization: transient
    (_state("08006", "connection failure"), RetryableError),
    (_state("08001"), RetryableError),
    (_state("40001", "could not serialize access"), RetryableError),
    (_state("40P01", "deadlock detected"), RetryableError),
    (_state("53300", "too many connections"), RetryableError),
    (_state("53100", "disk full"), RetryableError),
    (_state("57P01", "terminating connection due to administrator command"), RetryableError),
    (_state("57P03", "the database system is starting up"), RetryableError),
    (_state("55P03", "lock not available"), RetryableError),
    (_state("57014", "canceling statement due to statement timeout"), RetryableError),
    # auth, missing database, syntax and privileges: permanent
    (_state("28P01", "password authentication failed for user backup"), AuthError),
    (_state("28000", "no pg_hba.conf entry"), AuthError),
    (_state("3D000", 'database "shop" does not exist'), ConfigError),
    (_state("42501", "permission denied for table t"), PermanentError),
    (_state("42P01", 'relation "t" does not exist'), PermanentError),
    (_state("22P02", "invalid input syntax"), PermanentError),
    (_state("23505", "duplicate key"), PermanentError),
    # libpq connection failures carry no SQLSTATE: told apart by their text
    (psycopg.OperationalError('connection to server at "db" failed: FATAL:  password authentication failed'),
     AuthError),
    (psycopg.OperationalError('connection to server failed: FATAL:  database "x" does not exist'), ConfigError),
    (psycopg.OperationalError('invalid connection option "colour"'), ConfigError),
    (psycopg.OperationalError("server closed the connection unexpectedly"), RetryableError),
    (psycopg.InterfaceError("the connection is closed"), RetryableError),
    (psycopg.ProgrammingError("no results to fetch"), PermanentError),
    (psycopg.DataError("bad data"), PermanentError),
]


@pytest.mark.parametrize(("exc", "expected"), TABLE, ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "")
def test_table(exc: Exception, expected: type) -> None:
    got = classify_psycopg(exc, WHAT)
    assert type(got) is expected, (exc, got)
    assert got.message.startswith(WHAT) and "\n" not in got.message


REFUSED = psycopg.OperationalError('connection failed: connection to server at "127.0.0.1", port 1 failed: '
                                   "Connection refused\n\tIs the server running on that host?")
UNKNOWN = psycopg.OperationalError('could not translate host name "dbb" to address: Name or service not known')


@pytest.mark.parametrize("exc", [REFUSED, UNKNOWN])
def test_unreachable_on_first_contact_is_configuration_then_retryable(exc: Exception) -> None:
    endpoint = f"test-endpoint-{id(exc)}"
    with pytest.raises(ConfigError), translate_psycopg_errors(WHAT, endpoint=endpoint):
        raise exc
    mark_reached(endpoint)  # it answered once: the same failure now is an outage
    with pytest.raises(RetryableError), translate_psycopg_errors(WHAT, endpoint=endpoint):
        raise exc
    with pytest.raises(RetryableError), translate_psycopg_errors(WHAT):  # not a connect: the table decides
        raise REFUSED

"""One redaction for every outgoing string: patterns (URL userinfo, conninfo, secret query values)
and registered secret values, in errors, log records and the CLI's streams."""

from __future__ import annotations

import io
import logging

import pytest

from seawall import redact as r
from seawall.errors import ConfigError, RetryableError

CANARY = "Cny-9b1e-quote'space here"


@pytest.mark.parametrize(("text", "expected"), [
    ('Could not connect to the endpoint URL: "http://bob:pw@127.0.0.1:9/b"',
     'Could not connect to the endpoint URL: "http://bob:***@127.0.0.1:9/b"'),
    ("s3://b/p?region=x&endpoint=https://u:p%40ss@h:9", "s3://b/p?region=x&endpoint=https://u:***@h:9"),
    ("postgresql://app:hunter22@db:5432/shop", "postgresql://app:***@db:5432/shop"),
    ("host=db password=hunter22 user=app", "host=db password=*** user=app"),
    ("host=db password='hun ter' user=app", "host=db password=*** user=app"),
    ("s3://b/p?secret_access_key=abc&region=x", "s3://b/p?secret_access_key=***&region=x"),
    ("sftp://user@host:22/path and file:///srv/x", "sftp://user@host:22/path and file:///srv/x"),
])
def test_patterns(text: str, expected: str) -> None:
    assert r.redact(text) == expected


def test_registered_values_are_masked_in_any_form() -> None:
    r.add_secret(CANARY)
    for form in (CANARY, "Cny-9b1e-quote%27space%20here"):
        assert CANARY[:8] not in r.redact(f"library said: {form}!")
    r.add_url_secret("s3://b/p?endpoint=http://u:Url-Canary-1@h:1")
    r.add_conninfo_secret("host=h password='Pg Canary 2' dbname=d")
    assert r.redact("x Url-Canary-1 y Pg Canary 2 z") == "x *** y *** z"


def test_error_messages_and_hints_are_redacted_at_creation() -> None:
    r.add_secret("Err-Canary-3")
    exc = RetryableError('opening s3://b: Could not connect to "http://bob:Err-Canary-3@h:1/b"',
                         hint="token Err-Canary-3")
    assert "Err-Canary-3" not in str(exc) and "Err-Canary-3" not in exc.message + (exc.hint or "")
    assert ConfigError("x", exit_code=5).exit_code == 5 and ConfigError("x").exit_code == 2


def test_log_records_are_redacted_with_arguments_and_tracebacks() -> None:
    r.install_logging()
    r.add_secret("Log-Canary-4")
    stream = io.StringIO()
    logger = logging.getLogger("test-redact")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        logger.warning("url %s dsn %r", "http://u:Log-Canary-4@h", {"password": "Log-Canary-4"})
        try:
            raise ValueError("boom with Log-Canary-4")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert "Log-Canary-4" not in stream.getvalue() and "boom with ***" in stream.getvalue()


def test_streams_redact_what_passes() -> None:
    r.add_secret("Stream-Canary-5")
    out = io.StringIO()
    wrapped = r.RedactingStream(out)
    wrapped.write("a Stream-Canary-5 b\n")
    assert out.getvalue() == "a *** b\n" and wrapped.getvalue() == out.getvalue()


def test_short_values_are_not_registered() -> None:
    r.add_secret("pg")
    assert r.redact("pg_dump on pgbench") == "pg_dump on pgbench"

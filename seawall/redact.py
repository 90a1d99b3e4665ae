"""One redaction for every string that leaves the process (restic's StripPassword, made global).

Two layers, because a secret reaches output in forms we do not write ourselves (a botocore error
quotes the endpoint URL with its userinfo; a traceback quotes a connection string):

- patterns: a URL's userinfo password (`scheme://user:PW@` → `scheme://user:***@`), a conninfo
  `password=...`, and query values whose name says secret/password/token/key;
- known values: every secret seawall loads (passphrases, DSN and URL passwords, S3 secret keys,
  SSH key passphrases, webhook URLs) is registered with `add_secret` and replaced wherever it
  appears, whatever the text around it.

`redact()` is applied where text leaves: every `SeawallError` message and hint (so Prefect state
messages and events carry the redacted text), log records (`install_logging`, a record factory, so
Prefect's API log handler sends redacted lines), and the CLI's stdout/stderr (`RedactingStream`).
"""

from __future__ import annotations

import functools
import os
import re
import threading
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    import logging

MASK = "***"
#: Shorter values are not registered: masking "pg" or "wrong" everywhere would garble every
#: message (a wrong passphrase "wrong" made the error read "*** passphrase"), not protect much.
MIN_SECRET = 6
#: Environment variables that hold secrets seawall or its SDKs read.
SECRET_ENV = ("SEAWALL_PASSPHRASE", "SEAWALL_DEST_PASSPHRASE", "SEAWALL_SSH_KEY_PASSPHRASE", "PGPASSWORD",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """(URL userinfo, conninfo password, secret query value), compiled on first use: wal-push
    starts without paying for them unless something fails."""
    return (re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s\"'<>]*):[^@/\s\"'<>]*@"),
            re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s'\"&]+)", re.IGNORECASE),
            re.compile(r"(?P<head>[?&][A-Za-z0-9_.-]*(?:secret|password|passwd|token|key)[A-Za-z0-9_.-]*=)"
                       r"[^&\s\"'<>#]+", re.IGNORECASE))

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def add_secret(value: Any) -> None:
    """Mask `value` (str, bytes or a pydantic SecretStr) in everything redacted from now on."""
    if value is None:
        return
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    global _pattern
    forms = {value, value.strip(), quote(value, safe=""), unquote(value)}
    forms = {f for f in forms if len(f) >= MIN_SECRET} - _secrets
    if forms:
        with _lock:
            _secrets.update(forms)
            _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))


def forget_secrets() -> None:
    """Forget every registered secret (tests: one test's secrets must not mask another's text)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def add_secrets_from_env(environ: dict[str, str] | os._Environ[str] | None = None) -> None:
    env = os.environ if environ is None else environ
    for name in SECRET_ENV:
        add_secret(env.get(name))


def add_url_secret(url: str | None) -> None:
    """Register the password in a URL's userinfo and its secret-named query values."""
    if not url:
        return
    for match in re.finditer(r"://[^:/?#@\s]*:([^@/\s]*)@", url):
        add_secret(match.group(1))
    for match in re.finditer(r"[?&][A-Za-z0-9_.-]*(?:secret|password|passwd|token|key)[A-Za-z0-9_.-]*=([^&\s#]+)",
                             url, re.IGNORECASE):
        add_secret(match.group(1))


def add_conninfo_secret(conninfo: str | None) -> None:
    """Register the password of a libpq conninfo string or URI."""
    if not conninfo:
        return
    add_url_secret(conninfo)
    for match in re.finditer(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)", conninfo, re.IGNORECASE):
        value = match.group(1)
        add_secret(value[1:-1].replace("\\'", "'").replace("\\\\", "\\") if value.startswith("'") else value)


def redact(text: str) -> str:
    """`text` with URL passwords, conninfo passwords, secret query values and known secrets masked."""
    if not text:
        return text
    if "://" in text or "=" in text:
        userinfo, conninfo_pw, query_secret = _patterns()
        text = userinfo.sub(lambda m: f"{m['head']}:{MASK}@", text)
        text = conninfo_pw.sub(lambda m: f"{m['head']}{MASK}", text)
        text = query_secret.sub(lambda m: f"{m['head']}{MASK}", text)
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return text


class RedactingStream:
    """A text stream that redacts what is written to it (the CLI's stdout and stderr)."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, flush, encoding, buffer...
        return getattr(self._stream, name)


def _redact_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(redact(a) if isinstance(a, str) else a for a in args)
    return args


_installed = False


def install_logging() -> None:
    """Redact every log record at creation, message, arguments and traceback (idempotent).

    A record factory rather than a handler filter: handlers added later (Prefect's API log
    handler, which ships records to the server) see the redacted record too.
    """
    import logging

    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            try:  # the whole line: an argument's str() may carry a secret as much as the format does
                record.msg, record.args = redact(record.getMessage()), ()
            except (TypeError, ValueError):  # a malformed format: the logging module reports it later
                record.msg = redact(record.msg) if isinstance(record.msg, str) else record.msg
                record.args = _redact_args(record.args)
            if record.exc_info and not record.exc_text:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        except Exception:  # never lose a log line to redaction trouble; mask the whole message
            record.msg, record.args = "<log message withheld: redaction failed>", ()
        return record

    logging.setLogRecordFactory(factory)


def install_streams() -> None:
    """Wrap sys.stdout and sys.stderr (CLI processes), idempotent."""
    import sys

    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]

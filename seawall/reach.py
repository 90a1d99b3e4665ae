"""First contact: a service unreachable before it was ever reached is a configuration error.

A refused connection or a host name that does not resolve, on the first attempt to reach an
endpoint in this process, almost always means a wrong URL, port or host name: retrying for minutes
hides the typo, so it is a `ConfigError` (exit 2 at once). Once the endpoint answered, the same
failure is an outage (a server restarting, a network blip) and stays a `RetryableError` under the
retry policy. Translators (S3, PostgreSQL, SSH) call `mark_reached` after a successful call and
`unreachable` to classify a failed connection; the database ones (PostgreSQL, MariaDB, Redis) share
`first_contact`, which does both.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

from seawall.errors import ConfigError, RetryableError, SeawallError

_reached: set[str] = set()
_lock = threading.Lock()
_REFUSED = ("connection refused", "errno 111", "actively refused")
_UNKNOWN_HOST = ("could not translate host name", "name or service not known", "temporary failure in name resolution",
                 "nodename nor servname", "no address associated", "failed to resolve", "name resolution",
                 "getaddrinfo failed")


def mark_reached(endpoint: str) -> None:
    """Record that `endpoint` (host:port, or any stable name) answered once in this process."""
    if endpoint not in _reached:
        with _lock:
            _reached.add(endpoint)


def was_reached(endpoint: str) -> bool:
    return endpoint in _reached


def _chain(exc: BaseException):
    """The exception, its causes and contexts, and botocore's wrapped `error` (cycles cut)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        wrapped = [item.__cause__, item.__context__]
        kwargs, errors = getattr(item, "kwargs", None), getattr(item, "errors", None)
        if isinstance(kwargs, dict):  # botocore: EndpointConnectionError(error=<urllib3 error>)
            wrapped.append(kwargs.get("error"))
        if isinstance(errors, dict):  # paramiko: NoValidConnectionsError({addr: OSError})
            wrapped.extend(errors.values())
        todo.extend(e for e in wrapped if isinstance(e, BaseException))


def never_connected(exc: BaseException) -> str | None:
    """"connection refused" / "unknown host" when `exc` says the server was never reached, else None."""
    for item in _chain(exc):
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, socket.gaierror):
            return "unknown host"
    text = " ".join(str(item).lower() for item in _chain(exc))
    if any(word in text for word in _REFUSED):
        return "connection refused"
    if "socket" in text and "no such file or directory" in text:  # libpq: no server on that Unix socket
        return "no server listens on that socket"
    if any(word in text for word in _UNKNOWN_HOST):
        return "unknown host"
    return None


def unreachable(endpoint: str, exc: BaseException, message: str, *, hint: str) -> SeawallError | None:
    """A ConfigError if `exc` is a refused connection / unknown host on first contact, else None.

    Args:
        endpoint: The key `mark_reached` uses for this service.
        exc: The SDK exception.
        message: What was being done (names the service, redacted), then what happened.
        hint: What to check (the port, the host name ...).
    """
    why = never_connected(exc)
    if why is None:
        return None
    if was_reached(endpoint):
        return RetryableError(f"{message}: {why} (it answered before: retrying)",
                              hint="transient; Prefect tasks retry this automatically")
    return ConfigError(f"{message}: {why}", hint=hint)


def _never_answered(exc: BaseException) -> bool:
    return False


@contextlib.contextmanager
def first_contact(what: str, endpoint: str | None, errors: tuple[type[BaseException], ...],
                  classify: Callable[[BaseException], Exception], *, hint: str,
                  answered: Callable[[BaseException], bool] = _never_answered) -> Iterator[None]:
    """The shape every database translator shares: `errors` raised in the block become `classify(exc)`.

    With `endpoint` (a connection attempt), a failure that shows the server was never reached is
    `unreachable`'s ConfigError instead; one that shows it `answered` (e.g. an SQLSTATE: it spoke,
    if only to refuse) counts as reached, as does a block that ends without error.

    Args:
        what: What was being done, naming the server (never the password).
        endpoint: The `mark_reached` key, or None when this is not a connection attempt.
        errors: The SDK's exception types to translate (the SDK is imported by the caller, late).
        classify: The seawall error for one of them.
        hint: What to check when the server was never reached.
        answered: Whether an exception proves the server answered.
    """
    try:
        yield
    except errors as exc:
        if endpoint is not None:
            if answered(exc):
                mark_reached(endpoint)
            elif (first := unreachable(endpoint, exc, what, hint=hint)) is not None:
                raise first from exc
        raise classify(exc) from exc
    if endpoint is not None:
        mark_reached(endpoint)

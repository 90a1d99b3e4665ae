"""Connecting to Redis: one description for redis-py and redis-cli, and error translation.

A URL is `redis://[user[:password]@]host[:port][/db]` or `unix:///path/to/socket`. The password is
kept apart as a secret: redis-cli gets it through `REDISCLI_AUTH` in its environment, never on its
command line.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from pydantic import SecretStr

from seawall.errors import AuthError, ConfigError, PermanentError, RetryableError
from seawall.reach import first_contact


@dataclass(frozen=True)
class RedisConn:
    """Where a Redis server is and who connects; the password never appears in `display()`."""

    host: str = "127.0.0.1"
    port: int = 6379
    socket: str | None = None
    user: str | None = None
    db: int = 0
    password: SecretStr | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str, password: SecretStr | None = None) -> RedisConn:
        parts = urlsplit(url or "")
        if parts.scheme not in ("redis", "unix"):
            raise ConfigError("invalid Redis URL", hint="use redis://[user[:password]@]host[:port][/db] "
                              "or unix:///path/to/socket")
        try:
            port = parts.port or 6379
            db = int(parts.path.strip("/") or 0) if parts.scheme == "redis" else 0
        except ValueError:
            raise ConfigError("invalid port or database number in the Redis URL") from None
        secret = password or (SecretStr(unquote(parts.password)) if parts.password is not None else None)
        user = unquote(parts.username) if parts.username else None
        if parts.scheme == "unix":
            return cls(socket=parts.path, user=user, password=secret)
        return cls(host=parts.hostname or "127.0.0.1", port=port, user=user, db=db, password=secret)

    def __repr__(self) -> str:
        return f"RedisConn({self.display()!r})"

    def display(self) -> str:
        user = f"{quote(self.user, safe='')}@" if self.user else ""
        if self.socket:
            return f"unix://{user}{self.socket}"
        return f"redis://{user}{self.host}:{self.port}/{self.db}"

    def endpoint(self) -> str:
        """The key `seawall.reach` knows this server by (no user, no password)."""
        return f"redis:{self.socket or f'{self.host}:{self.port}'}"

    def client(self, db: int | None = None, **kwargs: Any):
        """A redis-py client (bytes in, bytes out); connecting errors surface on first use."""
        import redis

        args: dict[str, Any] = dict(db=self.db if db is None else db, username=self.user, socket_timeout=60,
                                    socket_connect_timeout=10)
        if self.password is not None:
            args["password"] = self.password.get_secret_value()
        if self.socket:
            return redis.Redis(unix_socket_path=self.socket, **args, **kwargs)
        return redis.Redis(host=self.host, port=self.port, **args, **kwargs)

    def cli_argv(self) -> list[str]:
        """redis-cli's connection options (no password: see `cli_env`)."""
        argv = ["-s", self.socket] if self.socket else ["-h", self.host, "-p", str(self.port)]
        return argv + (["--user", self.user] if self.user else [])

    def cli_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("REDISCLI_AUTH", None)
        if self.password is not None:
            env["REDISCLI_AUTH"] = self.password.get_secret_value()
        return env


def classify_redis(exc: BaseException, what: str) -> Exception:
    import redis

    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    message = f"{what}: {text}"
    lowered = text.lower()
    if isinstance(exc, redis.AuthenticationError) or "wrongpass" in lowered or "noauth" in lowered \
            or "invalid password" in lowered or "noperm" in lowered or "must be called with the client already" \
            in lowered:
        why = "permission denied" if "noperm" in lowered else "authentication refused (no or wrong password)"
        return AuthError(f"{what}: {why}", hint=f"check the user and password (SEAWALL_REDIS_PASSWORD) and the "
                         f"ACL's permissions; the server said: {text[:100]}")
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError) or "loading" in lowered or "busy" in lowered:
        return RetryableError(message)
    return PermanentError(message)


def translate_redis_errors(what: str, *, endpoint: str | None = None) -> contextlib.AbstractContextManager[None]:
    """Map redis-py exceptions to seawall's families, naming `what`.

    Args:
        what: What was being done, naming the server (never the password).
        endpoint: Set on a command's first contact with a server: a refused connection or unknown
            host before it ever answered is a ConfigError (exit 2 at once, `seawall.reach`).
    """
    import redis

    return first_contact(what, endpoint, (redis.RedisError,), lambda exc: classify_redis(exc, what),
                         hint="check the host and port in the URL, and that Redis runs there")

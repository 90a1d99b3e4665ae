"""`RedisConfig`: how to reach a Redis server (the fields of the `RedisSource` block)."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field, SecretStr, model_validator

from seawall.errors import ConfigError
from seawall.redis.conn import RedisConn


class RedisConfig(BaseModel):
    """A Redis server to snapshot or restore into.

    Give `url` (`redis://[user@]host:port/db` or `unix:///path/to/socket`); a password written into
    it moves into the `password` secret. redis-cli gets it through REDISCLI_AUTH.

    Example:
        ```python
        from seawall.configs.redis import RedisConfig

        RedisConfig(url="redis://cache1:6379/0").get_client().ping()
        ```
    """

    url: str = Field(default="redis://127.0.0.1:6379/0", description="redis:// or unix:// URL of the server.")
    password: SecretStr | None = Field(default=None, description="Password (kept out of the URL).")

    @model_validator(mode="after")
    def _password_out_of_url(self) -> RedisConfig:
        """A password written into the URL moves into the secret field."""
        try:
            conn = RedisConn.parse(self.url)
        except ConfigError:
            return self
        if conn.password is not None:
            self.password = self.password or conn.password
            self.url = conn.display()
        return self

    def get_redisconn(self) -> RedisConn:
        return RedisConn.parse(self.url, self.password)

    def get_client(self):
        """A redis-py client."""
        return self.get_redisconn().client()

    def display(self) -> str:
        return self.get_redisconn().display()


def as_redis_source(source: RedisConfig | str) -> RedisConfig:
    """Accept a block, a config, a bare URL, or `env:NAME` (the URL is in that environment variable)."""
    if isinstance(source, RedisConfig):
        return source
    if source.startswith("env:"):
        name = source[4:]
        if not os.environ.get(name):
            raise ConfigError(f"environment variable {name} is not set", hint="set it to the server's URL")
        return RedisConfig(url=os.environ[name])
    return RedisConfig(url=source)

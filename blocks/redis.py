"""The `RedisSource` block: how to reach a Redis server, with the password as a secret.

Fields and factories are `seawall.configs.redis.RedisConfig`'s; the block adds Prefect's storage
and UI.
"""

from __future__ import annotations

from prefect.blocks.core import Block

from seawall.configs.redis import RedisConfig, as_redis_source

__all__ = ["RedisSource", "as_redis_source"]


class RedisSource(RedisConfig, Block):
    """A Redis server to snapshot or restore into.

    Give `url` (`redis://[user@]host:port/db` or `unix:///path/to/socket`); a password written into
    it moves into the `password` secret. redis-cli gets it through REDISCLI_AUTH.

    Example:
        ```python
        from blocks.redis import RedisSource

        source = RedisSource.load("BLOCK_NAME")
        source.get_client().ping()
        ```
    """

    _block_type_name = "Seawall Redis Source"
    _block_type_slug = "seawall-redis-source"
    _description = "A Redis server seawall snapshots (RDB) or restores into."

"""The `MariaDBSource` block: how to reach a MariaDB/MySQL server, with the password as a secret.

Fields and factories are `seawall.configs.mariadb.MariaDBConfig`'s; the block adds Prefect's
storage and UI.
"""

from __future__ import annotations

from prefect.blocks.core import Block

from seawall.configs.mariadb import MariaDBConfig, as_mariadb_source

__all__ = ["MariaDBSource", "as_mariadb_source"]


class MariaDBSource(MariaDBConfig, Block):
    """A MariaDB or MySQL server (and database) to back up or restore into.

    Give `dsn` (`mysql://user@host:port/database`, `?socket=/path` for a Unix socket); a password
    written into it moves into the `password` secret. Tools get it through a private option file.

    Example:
        ```python
        from blocks.mariadb import MariaDBSource

        source = MariaDBSource.load("BLOCK_NAME")
        with source.get_connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        ```
    """

    _block_type_name = "Seawall MariaDB Source"
    _block_type_slug = "seawall-mariadb-source"
    _description = "A MariaDB/MySQL server seawall backs up, archives binlogs from, or restores into."

"""The `PostgresSource` block: how to reach a PostgreSQL server, with the password as a secret.

Fields and factories are `seawall.configs.postgres.PostgresConfig`'s; the block adds Prefect's
storage and UI.
"""

from __future__ import annotations

from prefect.blocks.core import Block

from seawall.configs.postgres import PostgresConfig, as_postgres_source

__all__ = ["PostgresSource", "as_postgres_source"]


class PostgresSource(PostgresConfig, Block):
    """A PostgreSQL server (and database) to back up or restore into.

    Give either `dsn` (a libpq conninfo string or postgresql:// URI) or the separate fields; the
    password is kept apart as a secret and handed to libpq tools through PGPASSWORD. Empty fields
    fall back to libpq's environment (PGHOST, PGUSER ...) and ~/.pgpass.

    Example:
        ```python
        from blocks.postgres import PostgresSource

        source = PostgresSource.load("BLOCK_NAME")
        with source.get_connection() as conn:
            conn.execute("SELECT 1")
        ```
    """

    _block_type_name = "Seawall PostgreSQL Source"
    _block_type_slug = "seawall-postgres-source"
    _description = "A PostgreSQL server/database seawall backs up, restores into or drills on."

"""One table of a restored logical backup: its row count and checksum as recorded vs as found.

Shared by the PostgreSQL and MariaDB logical restores, which fill it from their own table statistics
and each raise their own IntegrityError on the first table that differs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableCheck:
    """One table's figures: recorded in the manifest vs found in the restored database."""

    table: str
    rows_expected: int
    rows_actual: int | None
    checksum_expected: str
    checksum_actual: str | None

    @property
    def ok(self) -> bool:
        return self.rows_expected == self.rows_actual and self.checksum_expected == self.checksum_actual

"""Splitting a `mariadb-dump` text stream into its schema and one data stream per table.

seawall runs `mariadb-dump` with one row per line (`--skip-extended-insert`): every data line is
`INSERT INTO `table` VALUES (...);` and string values have their newlines escaped, so a line that
does not start with `INSERT INTO ` ends a table's data. The lines of each table's data go into
their own vault stream, as they come; every other line (DDL, triggers, views, routines, session
settings) goes into the schema stream, where a placeholder line `-- seawall:data <table>` marks the
spot the data came from. The restore replays the schema and streams each table at its placeholder.

Per table: **rows** = the number of data lines, **checksum** = the stream's BLAKE3 (the data lines
byte for byte). Both come from the dump's own consistent snapshot (`--single-transaction`) at no
extra scan; `table_digests` recomputes them on a live database with the same options. One row per
line also deduplicates well across backups: an unchanged row range is the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

import blake3

INSERT = b"INSERT INTO "
PLACEHOLDER = b"-- seawall:data "
EMPTY_CHECKSUM = blake3.blake3(b"").hexdigest()  # a table without rows
#: Options that decide the bytes of the data lines: the backup and `table_digests` must agree.
DATA_OPTIONS = ["--skip-extended-insert", "--order-by-primary", "--hex-blob", "--tz-utc", "--skip-comments",
                "--default-character-set=utf8mb4"]


def table_name(line: bytes) -> str:
    """The table of an `INSERT INTO `name` VALUES ...` line (backticks doubled inside names)."""
    i, out = len(INSERT) + 1, bytearray()
    while i < len(line):
        c = line[i]
        if c == 0x60:  # backtick: doubled means a literal backtick
            if i + 1 < len(line) and line[i + 1] == 0x60:
                out.append(0x60)
                i += 2
                continue
            break
        out.append(c)
        i += 1
    return out.decode("utf-8", "surrogateescape")


class TableReader:
    """Reads one table's consecutive data lines from the dump; stops at the first other line.

    `first` is the table's first line (already read). The line that ended the section, if any, is
    left in `.pushback` for the caller.
    """

    def __init__(self, source: BinaryIO, first: bytes):
        self.source, self.rows = source, 0
        self.pushback: bytes | None = None
        self._pending = first
        self._done = False

    def _next_line(self) -> bytes | None:
        if self._pending:
            line, self._pending = self._pending, b""
            return line
        if self._done:
            return None
        line = self.source.readline()
        if not line or not line.startswith(INSERT):
            self._done, self.pushback = True, line or None
            return None
        return line

    def readinto(self, view: memoryview) -> int:
        n, size = 0, len(view)
        while n < size:
            line = self._next_line()
            if line is None:
                break
            if n + len(line) > size:  # keep what does not fit for the next call
                view[n:size] = line[: size - n]
                self._pending = line[size - n :]
                return size
            view[n : n + len(line)] = line
            n += len(line)
            self.rows += 1
        return n


def split_dump(source: BinaryIO, store_table: Callable[[str, TableReader], None]) -> bytes:
    """Feed each table's data to `store_table(name, reader)`; returns the schema with placeholders."""
    schema: list[bytes] = []
    line = source.readline()
    while line:
        if not line.startswith(INSERT):
            schema.append(line)
            line = source.readline()
            continue
        name = table_name(line)
        schema.append(PLACEHOLDER + name.encode("utf-8", "surrogateescape") + b"\n")
        reader = TableReader(source, line)
        store_table(name, reader)
        line = reader.pushback or source.readline()
    return b"".join(schema)


def digest_tables(source: BinaryIO) -> dict[str, dict]:
    """`{table: {rows, checksum}}` of a dump stream, the way a backup records them."""
    out: dict[str, dict] = {}

    def digest(name: str, reader: TableReader) -> None:
        hasher, buf = blake3.blake3(), bytearray(1 << 20)
        view = memoryview(buf)
        while n := reader.readinto(view):
            hasher.update(view[:n])
        out[name] = {"rows": reader.rows, "checksum": hasher.hexdigest()}

    split_dump(source, digest)
    return out


class Batcher:
    """Turns one-row INSERT lines back into multi-row statements (a restore at bulk speed).

    Lines `INSERT INTO t VALUES (a);` `INSERT INTO t VALUES (b);` become
    `INSERT INTO t VALUES (a),(b);`: the `;\\n<prefix>` between two lines of a group is replaced by
    `,` (no value holds a raw newline, so that byte sequence only occurs between lines).
    """

    def __init__(self, table: str, write: Callable[[bytes], object], max_statement: int = 1 << 20):
        self.write, self.max = write, max_statement
        self._carry = bytearray()
        quoted = table.encode("utf-8", "surrogateescape").replace(b"`", b"``")
        self._prefix = INSERT + b"`" + quoted + b"` VALUES "

    def feed(self, data: bytes) -> None:
        """Take more of the table's lines (any piece size); full statements are written as they fill."""
        self._carry += data
        while len(self._carry) >= self.max:
            cut = self._carry.rfind(b"\n", 0, self.max) + 1 or self._carry.find(b"\n") + 1
            if not cut:  # one unfinished line longer than max_statement: wait for its end
                return
            self._emit(bytes(self._carry[:cut]))
            del self._carry[:cut]

    def _emit(self, block: bytes) -> None:
        self.write(block.replace(b";\n" + self._prefix, b","))

    def close(self) -> None:
        if self._carry:
            self._emit(bytes(self._carry) if self._carry.endswith(b"\n") else bytes(self._carry) + b"\n")
            self._carry = bytearray()

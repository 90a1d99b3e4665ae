"""`backup_wal.read_segment`: the bytes `read()` gives, in memory of its own."""

from __future__ import annotations

import os
from pathlib import Path

from seawall.postgres.backup_wal import read_segment


def test_same_bytes_as_read_and_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "000000010000000000000001"
    data = os.urandom(1 << 20) + bytes(15 << 20)  # a segment: some records, then zeros
    path.write_bytes(data)
    got = read_segment(str(path))
    assert len(got) == len(data) and got == data
    path.write_bytes(b"x" * len(data))  # rewritten afterwards: the copy does not change
    assert got == data


def test_empty_and_small_files(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "small").write_bytes(b"abc")
    assert bytes(read_segment(str(tmp_path / "empty"))) == b""
    assert bytes(read_segment(str(tmp_path / "small"))) == b"abc"

"""Pure parts of tree fidelity: sparse writing plans and getfattr/setfattr dumps."""

from __future__ import annotations

import os

import pytest

from seawall.sources.fidelity import find_holes, sparse_spans, write_sparse
from seawall.sources.tree import Entry
from seawall.sources.xattr_dump import parse_dump, restore_dump


def _content(size: int, data_at: list[tuple[int, bytes]]) -> bytes:
    buf = bytearray(size)
    for offset, data in data_at:
        buf[offset:offset + len(data)] = data
    return bytes(buf)


@pytest.mark.parametrize("piece", [1000, 4096, 9999, 1 << 20])
@pytest.mark.parametrize("mode", ["mapped", "zeros"])
def test_sparse_writes_rebuild_the_content_and_leave_holes(tmp_path, piece: int, mode: str) -> None:
    size = 64 * 4096 + 123
    content = _content(size, [(4096 * 3 + 5, b"x" * 5000), (4096 * 40, b"y" * 4096)])
    holes = [[0, 4096 * 3], [4096 * 5, 4096 * 35], [4096 * 41, size - 4096 * 41]] if mode == "mapped" else []
    pieces = [content[i:i + piece] for i in range(0, size, piece)]
    written = [(o, bytes(d)) for o, d, _ in sparse_spans(pieces, holes) if d]
    assert sum(len(d) for _, d in written) <= 4 * 4096  # only the data blocks
    assert sum(c for _, _, c in sparse_spans(pieces, holes)) == size
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        assert sum(write_sparse(fd, pieces, holes, size)) == size
    finally:
        os.close(fd)
    assert path.read_bytes() == content
    assert os.stat(path).st_blocks * 512 <= 4 * 4096 + 8192
    fd = os.open(path, os.O_RDONLY)
    try:
        found = find_holes(fd, size)
    finally:
        os.close(fd)
    assert found and found[0] == [0, 4096 * 3] and found[-1][0] + found[-1][1] == size


def test_dense_file_has_no_holes(tmp_path) -> None:
    path = tmp_path / "dense"
    path.write_bytes(os.urandom(10_000))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert find_holes(fd, 10_000) is None
    finally:
        os.close(fd)


def test_getfattr_dump_round_trip() -> None:
    dump = (b"# file: /srv/tree\nuser.top=0sAQI=\n\n"
            b"# file: /srv/tree/a b/f\\012new\nsystem.posix_acl_access=0sAgAAAA==\nuser.empty=0s\n\n")
    parsed = parse_dump(dump, "/srv/tree")
    assert parsed == {".": {"user.top": "AQI="},
                      "a b/f\nnew": {"system.posix_acl_access": "AgAAAA==", "user.empty": ""}}
    entries = [Entry(path=p, type="f", mode=0o644, mtime_ns=0, xattrs=x) for p, x in parsed.items()]
    assert parse_dump(restore_dump(entries, "/srv/tree"), "/srv/tree") == parsed
    assert b"f\\012new" in restore_dump(entries, "/srv/tree")  # the newline is escaped, as getfattr does

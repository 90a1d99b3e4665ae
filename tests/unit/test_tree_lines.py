"""The index line of a plain file is built directly (`Entry._file_line`): it must be byte for byte
the generic JSON encoding, or a first backup after the change would not deduplicate its index."""

import json

import pytest

from seawall.sources.tree import Entry

FILES = [
    Entry(path="a.txt", type="f", mode=0o644, mtime_ns=1_700_000_000_123_456_789, size=5, inode=42, uid=1000,
          gid=1000, hash="ab" * 32, chunks=[("cd" * 32, 5)]),
    Entry(path="empty", type="f", mode=0, mtime_ns=0, hash="00" * 32),  # zeros are left out, mode never
    Entry(path="d/ü ñ \"q\" \\ \t\n", type="f", mode=0o600, mtime_ns=-5, size=3, hash="h", chunks=[("x", 1), ("y", 2)]),
    Entry(path="bad\udcff", type="f", mode=0o755, mtime_ns=7, size=9, inode=0, uid=0, gid=5, hash="h",
          chunks=[["list", 9]]),  # undecodable name (surrogateescape); a chunk read back from JSON
    Entry(path="t", type="f", mode=1, mtime_ns=1, hash="h", chunks=()),
]


@pytest.mark.parametrize("entry", FILES)
def test_file_line_is_the_generic_encoding(entry: Entry) -> None:
    assert entry._file_line() == entry._any_line()
    assert entry.to_line() == entry._any_line()
    assert Entry.from_line(entry.to_line()).path == entry.path


def test_other_entries_take_the_generic_path() -> None:
    for entry in (Entry(path="f", type="f", mode=1, mtime_ns=1, hash="h", xattrs={"user.a": "YQ=="}),
                  Entry(path="f", type="f", mode=1, mtime_ns=1, hash="h", holes=[]),
                  Entry(path="f", type="f", mode=1, mtime_ns=1),  # not read: no hash
                  Entry(path="l", type="l", mode=1, mtime_ns=1, target="a"),
                  Entry(path="d", type="d", mode=0o755, mtime_ns=1)):
        assert entry.to_line() == entry._any_line()
        assert json.loads(entry.to_line())["path"] == entry.path

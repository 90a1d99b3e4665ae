"""Base-backup tar extraction: same files as tarfile makes, and nothing outside the data directory."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from seawall.errors import IntegrityError
from seawall.postgres.tarextract import TarExtractor, check_member

LONG = "base/16384/" + "x" * 120  # beyond ustar's 100-byte name field: GNU or pax headers carry it


def make_tar(members: list[tuple[str, bytes, str | bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """`members`: (name, type, content or link target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for i, (name, kind, payload) in enumerate(members):
            info = tarfile.TarInfo(name)
            info.type, info.mtime, info.mode = kind, 1_700_000_000 + i, 0o600 if kind == tarfile.REGTYPE else 0o700
            if kind == tarfile.REGTYPE:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                info.linkname = payload if isinstance(payload, str) else ""
                tar.addfile(info)
    return buf.getvalue()


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


SAMPLE = [("global", tarfile.DIRTYPE, b""), ("global/pg_control", tarfile.REGTYPE, os.urandom(8192)),
          ("base/16384/1259", tarfile.REGTYPE, os.urandom(3 * 8192 + 5)),  # parent dirs not in the tar
          ("base/16384/empty", tarfile.REGTYPE, b""), (LONG, tarfile.REGTYPE, b"long name"),
          ("pg_wal", tarfile.DIRTYPE, b""), ("current", tarfile.SYMTYPE, "global/pg_control"),
          ("hard", tarfile.LNKTYPE, "global/pg_control")]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("size", [1, 511, 512, 513, 4096, 1 << 20])
def test_extracts_what_tarfile_extracts(tmp_path: Path, fmt: int, size: int) -> None:
    data = make_tar(SAMPLE, fmt)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    assert TarExtractor(ours).extract(pieces(data, size)) == len(SAMPLE)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(theirs)
        for member in tar.getmembers():
            mine, ref = ours / member.name, theirs / member.name
            assert mine.is_symlink() == ref.is_symlink() and mine.is_dir() == ref.is_dir(), member.name
            if member.isfile():
                assert mine.read_bytes() == ref.read_bytes()
                assert int(mine.stat().st_mtime) == member.mtime and mine.stat().st_mode & 0o777 == 0o600
    assert os.readlink(ours / "current") == "global/pg_control"
    assert (ours / "hard").stat().st_ino == (ours / "global/pg_control").stat().st_ino


def test_trailing_stream_after_the_end_marker_is_consumed(tmp_path: Path) -> None:
    """The caller's iterator must run to its end: that is where the stream hash is checked."""
    seen = []

    def chunks():
        for piece in pieces(make_tar(SAMPLE[:2]) + bytes(8192), 1000):
            seen.append(len(piece))
            yield piece

    TarExtractor(tmp_path).extract(chunks())
    assert sum(seen) == len(make_tar(SAMPLE[:2])) + 8192


@pytest.mark.parametrize(("name", "kind", "link", "ok"), [
    ("base/1/1234", tarfile.REGTYPE, "", True),
    ("pg_wal", tarfile.DIRTYPE, "", True),
    ("/etc/passwd", tarfile.REGTYPE, "", False),
    ("../escape", tarfile.REGTYPE, "", False),
    ("a/../../escape", tarfile.REGTYPE, "", False),
    ("a/link", tarfile.SYMTYPE, "../b", True),
    ("a/link", tarfile.SYMTYPE, "../../b", False),
    ("link", tarfile.SYMTYPE, "/etc", False),
    ("hard", tarfile.LNKTYPE, "../x", False),
    ("dev", tarfile.CHRTYPE, "", False),
    ("fifo", tarfile.FIFOTYPE, "", False),
])
def test_unsafe_members_are_refused(name: str, kind: bytes, link: str, ok: bool) -> None:
    if ok:
        check_member(os.path.normpath(name), kind, link)
    else:
        with pytest.raises(IntegrityError, match="unsafe"):
            check_member(os.path.normpath(name), kind, link)


@pytest.mark.parametrize(("members", "match"), [
    ([("../outside", tarfile.REGTYPE, b"x")], "unsafe"),
    ([("/tmp/abs", tarfile.REGTYPE, b"x")], "unsafe"),
    ([("l", tarfile.SYMTYPE, "/"), ("l/etc/x", tarfile.REGTYPE, b"x")], "unsafe"),
    ([("d", tarfile.DIRTYPE, b""), ("l", tarfile.SYMTYPE, "d"), ("l/f", tarfile.REGTYPE, b"x")], "under the symbolic"),
    ([("d", tarfile.DIRTYPE, b""), ("l", tarfile.SYMTYPE, "d"), ("h", tarfile.LNKTYPE, "l/f")], "under a symbolic"),
    ([("f", tarfile.REGTYPE, b"1"), ("f", tarfile.REGTYPE, b"2")], "twice"),
])
def test_nothing_is_written_outside_or_through_links(tmp_path: Path, members: list, match: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(IntegrityError, match=match):
        TarExtractor(root).extract(pieces(make_tar(members), 700))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert not (root / "d" / "f").exists()


def test_truncated_or_corrupt_tar_is_an_integrity_error(tmp_path: Path) -> None:
    data = make_tar(SAMPLE[:3])
    (tmp_path / "a").mkdir()
    with pytest.raises(IntegrityError, match="middle of a member"):
        TarExtractor(tmp_path / "a").extract([data[:1500]])
    bad = bytearray(data)
    bad[0] ^= 0xFF  # the first header's checksum no longer matches
    (tmp_path / "b").mkdir()
    with pytest.raises(IntegrityError, match="bad header"):
        TarExtractor(tmp_path / "b").extract([bytes(bad)])

"""Restore hints (`seawall.sources.delta_hints`): a file is known only while the kernel says it is
untouched (inode, size, mtime and ctime), the hints are ignored when changed without the vault key,
and a recorded restore waits until a later write cannot share the newest recorded ctime."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from seawall.crypto import ScryptParams
from seawall.sources import delta_hints
from seawall.vault import init_vault


@pytest.fixture
def vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SEAWALL_CACHE_DIR", str(tmp_path / "cache"))
    return init_vault(f"file://{tmp_path / 'v'}", "pw", scrypt=ScryptParams(n=2**10))


def _record(vault, root: Path, files: dict[str, list]) -> None:
    recorder = delta_hints.Recorder()
    for rel, chunks in files.items():
        recorder.add(rel, chunks)
    assert recorder.save(vault, root)


def test_a_file_is_known_until_anything_touches_it_even_with_its_mtime_put_back(vault, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "a").write_bytes(b"x" * 100)
    (root / "b").write_bytes(b"y" * 100)
    before = time.time_ns()
    _record(vault, root, {"a": [["id-a", 100]], "b": [["id-b", 100]]})
    newest = max(os.lstat(root / n).st_ctime_ns for n in "ab")
    assert time.time_ns() > newest + delta_hints.MARGIN_NS >= before  # waited past the racing window
    hints = delta_hints.load(vault, root)
    assert hints.content("a", os.lstat(root / "a")) == [("id-a", 100)]
    st = os.lstat(root / "b")
    with open(root / "b", "r+b") as fh:  # same size, mtime put back: what --delta-trust-mtime misses
        fh.write(b"z")
    os.utime(root / "b", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.lstat(root / "b").st_mtime_ns == st.st_mtime_ns
    assert hints.content("b", os.lstat(root / "b")) is None
    assert hints.content("c", os.lstat(root / "a")) is None  # not recorded


def test_hints_changed_without_the_key_or_for_another_folder_are_ignored(vault, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "a").write_bytes(b"x")
    _record(vault, root, {"a": [["id-a", 1]]})
    path = delta_hints.hints_path(vault, root)
    good = path.read_bytes()
    path.write_bytes(good.replace(b"id-a", b"id-z"))
    assert delta_hints.load(vault, root) is None
    path.write_bytes(good[: len(good) // 2])
    assert delta_hints.load(vault, root) is None
    path.write_bytes(good)
    assert delta_hints.load(vault, root) is not None
    assert delta_hints.load(vault, tmp_path / "other") is None
    delta_hints.forget(vault, root)
    assert not path.exists() and delta_hints.load(vault, root) is None


def test_too_many_chunks_keep_no_hints_and_the_cache_can_be_off(vault, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delta_hints, "MAX_CHUNKS", 3)
    recorder = delta_hints.Recorder()
    for n in range(4):
        recorder.add(f"f{n}", [[f"id{n}", 1]])
    assert not recorder.save(vault, tmp_path) and recorder.files == []
    monkeypatch.setenv("SEAWALL_CACHE_DIR", "off")
    assert delta_hints.hints_path(vault, tmp_path) is None and delta_hints.load(vault, tmp_path) is None


def test_chunks_missing_at_their_offsets() -> None:
    from seawall.sources.delta import _not_at_offsets

    known = [("a", 4), ("b", 4), ("c", 2)]
    assert _not_at_offsets(known, [("a", 4), ("b", 4), ("c", 2)]) == []
    assert _not_at_offsets(known, [("a", 4), ("x", 4), ("c", 2), ("d", 4)]) == [(4, ("x", 4)), (10, ("d", 4))]
    assert _not_at_offsets(known, [("b", 4), ("a", 4)]) == [(0, ("b", 4)), (4, ("a", 4))]  # same ids, moved

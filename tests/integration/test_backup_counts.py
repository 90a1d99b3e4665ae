"""A file that vanishes between the walk and its read is listed in `skipped`, not counted in
`files` or `bytes_total`; `tree_size` gives the progress bar its total."""

from __future__ import annotations

import io
from pathlib import Path

from seawall.manifest import BackupStats
from seawall.sources.fidelity import Fidelity
from seawall.sources.files import _entry, _OrderedReads, tree_size, walk
from seawall.sources.tree import PreviousIndex, Tally, count_and_reuse
from seawall.streams import ChunkWriter
from seawall.vault import init_vault
from tests.unit.builders import FAST_SCRYPT


def test_vanished_file_is_skipped_not_counted(tmp_path: Path) -> None:
    vault = init_vault(f"file://{tmp_path / 'vault'}", "pass phrase", scrypt=FAST_SCRYPT)
    src = tmp_path / "src"
    src.mkdir()
    (src / "stays.txt").write_bytes(b"s" * 1000)
    (src / "goes away.txt").write_bytes(b"g" * 5000)
    stats, tally, index = BackupStats(), Tally(), io.BytesIO()
    with ChunkWriter(vault) as writer, _OrderedReads(writer, 2, stats, tally, index, None) as reads:
        links = Fidelity()
        for item in walk(src, stats.skipped):
            entry = _entry(item, links, stats.skipped)
            if item.path == "goes away.txt":
                Path(item.full).unlink()  # gone after the walk saw it, before it is read
            if entry.type == "f" and not count_and_reuse(entry, PreviousIndex(iter(())), set(), tally, None):
                reads.add(entry, item)
            else:
                reads.add(entry, None)
        reads.drain()
    tally.add_to(stats)
    assert stats.files == 1 and stats.bytes_total == 1000
    assert [s.split(":")[0] for s in stats.skipped] == ["goes away.txt"]


def test_tree_size_counts_regular_files_only(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"1" * 300)
    (tmp_path / "y z").write_bytes(b"2" * 700)
    (tmp_path / "link").symlink_to(tmp_path / "y z")
    assert tree_size(tmp_path) == 1000

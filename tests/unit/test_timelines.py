"""The timeline path a restore follows, and the windows wal-check reports (pure)."""

from __future__ import annotations

import pytest

from seawall.postgres.timelines import Archived, BackupPoint, PathError, choose_timeline, plan_path, windows
from seawall.postgres.walnames import segment_name

SEG = 16 << 20


def seg(tli: int, no: int) -> str:
    return segment_name(tli, no, SEG)


def archived(names: list[str], histories: dict[int, str]) -> Archived:
    return Archived.from_names(names, histories, SEG)


# Backup on TL1 from segment 2, consistent at 0/3000100 (segment 3). TL2 branched at 0/5000100
# (segment 5), TL3 branched off TL1 at 0/4000100 (segment 4).
POINT = BackupPoint(1, 2, 0x3000100)
HIST = {2: "1\t0/5000100\tbranch\n", 3: "1\t0/4000100\tother\n"}
NAMES = [seg(1, n) for n in range(2, 9)] + [seg(2, n) for n in range(5, 9)] + [seg(3, n) for n in range(4, 7)] + \
    ["00000002.history", "00000003.history", seg(1, 5) + ".partial"]


def test_latest_is_the_newest_reachable_timeline_and_current_is_the_backups() -> None:
    a = archived(NAMES, HIST)
    assert choose_timeline("latest", POINT, a) == 3
    assert choose_timeline("current", POINT, a) == 1
    assert choose_timeline("2", POINT, a) == 2
    late = BackupPoint(1, 4, 0x4800000)  # consistent after TL3 branched off: TL3 is out of its reach
    assert choose_timeline("latest", late, a) == 2


def test_the_path_switches_timeline_in_the_segment_of_the_branch_point() -> None:
    path = plan_path(POINT, 2, archived(NAMES, HIST))
    assert path.segments == [seg(1, 2), seg(1, 3), seg(1, 4), seg(2, 5), seg(2, 6), seg(2, 7), seg(2, 8)]
    assert not path.lost and not path.after_newest and path.newest == seg(2, 8)
    assert plan_path(POINT, 3, archived(NAMES, HIST), end_segno=5).segments[-2:] == [seg(3, 4), seg(3, 5)]


def test_a_missing_segment_of_the_path_is_lost_even_if_an_older_timeline_has_that_number() -> None:
    names = [n for n in NAMES if n != seg(2, 6)]  # PostgreSQL would silently read 000000010...06 instead
    path = plan_path(POINT, 2, archived(names, HIST))
    assert path.lost == [seg(2, 6)]
    tl1 = plan_path(POINT, 1, archived(names, HIST))
    assert not tl1.lost  # timeline 1 itself is whole
    ws = {w.timeline: w for w in windows(POINT, archived(names, HIST))}
    assert ws[1].ok and ws[3].ok
    assert not ws[2].ok and ws[2].first_missing == seg(2, 6) and ws[2].until == seg(2, 5)


def test_past_the_newest_archived_segment_is_not_lost() -> None:
    path = plan_path(POINT, 1, archived(NAMES, HIST), end_segno=10)
    assert path.after_newest == [seg(1, 9), seg(1, 10)] and not path.lost


@pytest.mark.parametrize(("timeline", "kind", "message"), [
    (7, "config", "timeline 7 is not in the archive"),
    (4, "integrity", "00000004.history is missing"),
])
def test_unknown_timelines_and_missing_history(timeline: int, kind: str, message: str) -> None:
    names = [*NAMES, seg(4, 8)]
    with pytest.raises(PathError, match=message) as info:
        plan_path(POINT, timeline, archived(names, HIST))
    assert info.value.kind == kind


def test_a_branch_before_the_backups_end_cannot_be_followed() -> None:
    late = BackupPoint(1, 4, 0x4800000)  # consistent after TL3 branched at 0/4000100
    with pytest.raises(PathError, match="branched off timeline 1 at 0/4000100, before this backup"):
        plan_path(late, 3, archived(NAMES, HIST))
    assert {w.timeline for w in windows(late, archived(NAMES, HIST))} == {1, 2}


def test_the_backups_own_wal_missing_breaks_every_window() -> None:
    names = [n for n in NAMES if n != seg(1, 2)]
    assert all(not w.ok and w.first_missing == seg(1, 2) for w in windows(POINT, archived(names, HIST)))


def test_two_branches_pushing_different_partials_keep_the_first() -> None:
    from seawall.errors import ConflictError
    from seawall.postgres.wal import WalArchive
    from tests.unit.builders import memory_vault

    archive = WalArchive(memory_vault())
    archive.bind("7")
    name = seg(1, 5) + ".partial"
    assert archive.put(name, b"branch A", "7") == "archived"
    assert archive.put(name, b"branch B", "7").startswith("kept the archived copy")
    assert archive.read(name) == b"branch A"
    archive.put(seg(1, 5), b"segment", "7")
    with pytest.raises(ConflictError, match="different content"):  # a whole segment still may not differ
        archive.put(seg(1, 5), b"other", "7")

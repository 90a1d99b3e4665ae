"""Which timeline a restore follows, and every WAL file it needs on the way (pure, no I/O).

PostgreSQL reads each segment from the newest timeline of the target's history that may hold it,
and silently falls back to an *older* timeline's file of the same number when the newer one is
missing (`XLogFileReadAnyTLI`). After a branch, that older file holds another history: a restore
"succeeds" with the wrong data. So before recovery starts, a restore computes the whole path from
the backup's start segment to its target on the chosen timeline and refuses unless every history
file and segment on it is archived.

- `choose_timeline`: `latest` (the newest archived timeline the backup can reach), `current` (the
  backup's own), or a number.
- `plan_path`: the history of that timeline, a check that it branched off the backup's timeline
  after the backup's end (else PostgreSQL says "requested timeline N is not a child of this
  server's history"), and the segment names in replay order up to the target's segment (an LSN
  target, `immediate`), or up to the newest archived segment of the path (any other target: where
  a time, xid or restore point lies is not known before replay).
- `windows`: for `wal-check`, the recoverable window of a backup on each timeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from seawall.postgres import walnames
from seawall.postgres.walnames import HistoryEntry


class PathError(Exception):
    """The timeline cannot be followed from this backup; `kind` is `config` or `integrity`."""

    def __init__(self, kind: str, message: str, hint: str = ""):
        super().__init__(message)
        self.kind, self.message, self.hint = kind, message, hint


@dataclass(frozen=True)
class BackupPoint:
    """Where a base backup starts and becomes consistent."""

    timeline: int
    start_segno: int
    stop_lsn: int

    @classmethod
    def from_source(cls, source: dict, seg_size: int) -> BackupPoint:
        start = source.get("start_wal_file") or walnames.segment_for_lsn(source["start_lsn"], int(source["timeline"]),
                                                                         seg_size)
        tli, segno = walnames.parse_segment(start, seg_size)
        return cls(tli, segno, walnames.parse_lsn(source["stop_lsn"]))

    def stop_segno(self, seg_size: int) -> int:
        return (self.stop_lsn - 1) // seg_size


@dataclass
class Archived:
    """What the archive holds: segment numbers per timeline, parsed histories per timeline."""

    segments: dict[int, set[int]]
    histories: dict[int, list[HistoryEntry]]
    seg_size: int = walnames.DEFAULT_SEG_SIZE

    @classmethod
    def from_names(cls, names: Iterable[str], histories: dict[int, str],
                   seg_size: int = walnames.DEFAULT_SEG_SIZE) -> Archived:
        segments: dict[int, set[int]] = {}
        for name in names:
            if walnames.is_segment(name):
                tli, segno = walnames.parse_segment(name, seg_size)
                segments.setdefault(tli, set()).add(segno)
        parsed = {}
        for tli, text in histories.items():
            try:
                parsed[tli] = walnames.parse_history(text)
            except ValueError:
                continue  # an unreadable history file counts as missing
        return cls(segments, parsed, seg_size)

    def has(self, tli: int, segno: int) -> bool:
        return segno in self.segments.get(tli, ())

    def timelines(self) -> list[int]:
        return sorted(set(self.segments) | set(self.histories) | {1})


@dataclass
class TimelinePath:
    """The WAL a restore on `timeline` reads, in order, and what of it the archive lacks."""

    timeline: int
    history: list[HistoryEntry]
    segments: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # missing, with a later file of the path archived
    after_newest: list[str] = field(default_factory=list)  # missing past the newest archived one
    newest: str | None = None


def choose_timeline(spec: str, point: BackupPoint, archived: Archived) -> int:
    """`latest`, `current` or a number → the timeline recovery follows.

    `latest` is the newest archived timeline that this backup can reach: it descends from the
    backup's timeline and left it after the backup's end. (PostgreSQL's own `latest` takes the
    newest history file, and refuses to start when that one branched off elsewhere.)
    """
    if spec == "current":
        return point.timeline
    if spec != "latest":
        return int(spec)
    for tli in sorted(set(archived.histories) | {point.timeline}, reverse=True):
        if tli < point.timeline:
            break
        try:
            _check_branch(tli, _history_of(tli, point, archived), point)
        except PathError:
            continue
        return tli
    return point.timeline


def _history_of(timeline: int, point: BackupPoint, archived: Archived) -> list[HistoryEntry]:
    if timeline == point.timeline:
        return archived.histories.get(timeline, [])
    if timeline < point.timeline:
        raise PathError("config", f"timeline {timeline} is older than timeline {point.timeline} of this backup",
                        "pick the backup's timeline or a later one, or an older backup")
    known = timeline in archived.histories or timeline in archived.segments
    if not known:
        raise PathError("config", f"timeline {timeline} is not in the archive "
                        f"(timelines there: {', '.join(map(str, archived.timelines()))})",
                        "pick one of those with --target-timeline")
    if timeline not in archived.histories:
        raise PathError("integrity", f"{walnames.history_name(timeline)} is missing from the archive",
                        "the timeline cannot be followed without its history file")
    return archived.histories[timeline]


def _check_branch(timeline: int, history: list[HistoryEntry], point: BackupPoint) -> None:
    """The backup's timeline must be an ancestor, left after the backup's end."""
    if timeline == point.timeline:
        return
    entry = next((e for e in history if e.tli == point.timeline), None)
    if entry is None:
        raise PathError("config", f"timeline {timeline} does not descend from timeline {point.timeline} "
                        "of this backup", "pick a timeline that branched from it, or another backup")
    if entry.switch_lsn < point.stop_lsn:
        raise PathError("config", f"timeline {timeline} branched off timeline {point.timeline} at "
                        f"{walnames.format_lsn(entry.switch_lsn)}, before this backup became consistent "
                        f"({walnames.format_lsn(point.stop_lsn)})",
                        "restore it from an older backup, or pick another --target-timeline")


def plan_path(point: BackupPoint, timeline: int, archived: Archived, end_segno: int | None = None) -> TimelinePath:
    """Every segment from the backup's start to `end_segno` (default: the newest archived on the path).

    Raises:
        PathError: the timeline is unknown, its history file is missing, or it does not descend
            from the backup (see the module docstring).
    """
    seg = archived.seg_size
    history = _history_of(timeline, point, archived)
    _check_branch(timeline, history, point)
    path = TimelinePath(timeline, history)

    def tli_of(segno: int) -> int:
        return walnames.timeline_for_segno(segno, timeline, history, seg)

    wanted = set(walnames.lineage(timeline, history))
    on_path = [s for t, nos in archived.segments.items() if t in wanted for s in nos
               if s >= point.start_segno and tli_of(s) == t]
    newest = max(on_path, default=None)
    last = end_segno if end_segno is not None else max(newest or point.start_segno, point.stop_segno(seg))
    for segno in range(point.start_segno, last + 1):
        name = walnames.segment_name(tli_of(segno), segno, seg)
        path.segments.append(name)
        if not archived.has(tli_of(segno), segno):
            (path.lost if newest is not None and segno < newest else path.after_newest).append(name)
    path.newest = walnames.segment_name(tli_of(newest), newest, seg) if newest is not None else None
    return path


# ---- wal-check -----------------------------------------------------------------------------------
@dataclass
class Window:
    """How far one backup can be recovered on one timeline."""

    timeline: int
    ok: bool
    until: str | None  # the last segment of the unbroken path (None: not even the backup's own WAL)
    first_missing: str | None = None
    problem: str = ""


def windows(point: BackupPoint, archived: Archived) -> list[Window]:
    """The recoverable window of a backup on every archived timeline that descends from it."""
    out = []
    for tli in archived.timelines():
        try:
            path = plan_path(point, tli, archived)
        except PathError as exc:
            if exc.kind == "integrity":
                out.append(Window(tli, False, None, walnames.history_name(tli), exc.message))
            continue
        stop = point.stop_segno(archived.seg_size) - point.start_segno
        needed = path.segments[: stop + 1]
        missing_own = [n for n in needed if n in path.lost or n in path.after_newest]
        if missing_own:
            out.append(Window(tli, False, None, missing_own[0],
                              f"{missing_own[0]}, which the backup itself needs, is missing"))
            continue
        if path.lost:
            index = path.segments.index(path.lost[0])
            until = path.segments[index - 1]
            out.append(Window(tli, False, until, path.lost[0],
                              f"recoverable only up to {until}: {path.lost[0]} is missing"))
            continue
        out.append(Window(tli, True, path.newest))
    return out

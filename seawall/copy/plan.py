"""Planning a cross-region copy: what the destination lacks, from one listing per side.

The plan reads the source's manifests (DONE backups only, filtered by dataset and selection), reads
the index (and lists loose v1 `chunks/`), `manifests/` and `wal/` once on each side, and works out,
for every selected backup the destination does not hold yet, the chunks and WAL segments it needs
and which of them are missing there. Nothing is written. A chunk the destination's index lists sits
in a pack that was durable and verified before the index was written, so presence in the index is
enough to skip it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from seawall.errors import BackupNotFound, ConfigError, IntegrityError, SeawallError
from seawall.manifest import BackupStatus, Manifest, is_backup_id
from seawall.postgres import walnames
from seawall.postgres.wal import CLUSTER_KEY
from seawall.streams import ChunkReader
from seawall.vault import Vault
from seawall.verify import referenced_chunks

PHYSICAL = "postgres-physical"
Selection = str | list[str]  # "all" | "latest" | [backup ids]


@dataclass
class BackupItem:
    """One selected backup the destination lacks, and what it needs there."""

    key: str
    dataset: str
    backup_id: str
    kind: str
    finished_at: datetime | None
    chunks: list[str]  # every chunk id it references (unique)
    missing: list[str]  # the subset the destination lacks
    wal: list[str] = field(default_factory=list)  # WAL keys a restore needs (physical backups)
    problem: str | None = None  # found while planning (e.g. a chunk missing at the source)


@dataclass
class CopyPlan:
    """What to copy from `source` to `dest` (see `plan_copy`)."""

    source: str
    dest: str
    items: list[BackupItem]
    present: list[str]  # keys of selected backups already at the destination
    dest_chunks: set[str]
    source_sizes: dict[str, int]  # chunk id → stored size at the source
    wal_missing: list[str] = field(default_factory=list)  # `wal/cluster` first
    wal_present: set[str] = field(default_factory=set)
    wal_sizes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    newest: dict[str, dict[str, datetime | None]] = field(default_factory=dict)
    include_wal: bool = True

    @property
    def chunks_to_copy(self) -> int:
        return len({c for item in self.items for c in item.missing})

    @property
    def bytes_to_copy(self) -> int:
        unique = {c for item in self.items for c in item.missing}
        return sum(self.source_sizes.get(c, 0) for c in unique) + sum(self.wal_sizes.get(k, 0)
                                                                       for k in self.wal_missing)

    def summary(self) -> dict:
        return {"backups_to_copy": len(self.items), "backups_present": len(self.present),
                "chunks_to_copy": self.chunks_to_copy, "chunks_present": len(self.dest_chunks),
                "wal_to_copy": len(self.wal_missing), "bytes_to_copy": self.bytes_to_copy}


# ---- selection ------------------------------------------------------------------------------------
def parse_selection(backups: Selection | None) -> Selection:
    """Normalise `all` / `latest` / a list or comma-separated string of backup ids."""
    if backups is None or backups == "all":
        return "all"
    if backups == "latest":
        return "latest"
    ids = [b.strip() for b in (backups.split(",") if isinstance(backups, str) else backups) if b.strip()]
    bad = [b for b in ids if not is_backup_id(b)]
    if bad or not ids:
        raise ConfigError(f"invalid backup selection {backups!r}",
                          hint="use all, latest, or backup ids like 20260101T000000Z-abcdef (comma-separated)")
    return ids


def select_backups(done: list[Manifest], selection: Selection) -> list[Manifest]:
    """The DONE manifests to copy, oldest first."""
    done = sorted(done, key=lambda m: m.started_at)
    if selection == "all":
        return done
    if selection == "latest":
        newest: dict[str, Manifest] = {}
        for m in done:
            newest[m.dataset] = m
        return sorted(newest.values(), key=lambda m: m.started_at)
    by_id = {m.backup_id: m for m in done}
    unknown = [b for b in selection if b not in by_id]
    if unknown:
        raise BackupNotFound(f"no complete backup {unknown[0]} at the source",
                             hint="pick DONE backups from `seawall list` on the source vault")
    return [by_id[b] for b in sorted(selection, key=lambda b: by_id[b].started_at)]


def source_manifests(vault: Vault, datasets: Iterable[str] | None) -> tuple[list[Manifest], list[str]]:
    """(every DONE manifest in the datasets, problems with unreadable ones)."""
    wanted = list(datasets or [None])
    done: list[Manifest] = []
    problems: list[str] = []
    for dataset in wanted:
        entries = list(vault.iter_manifests(dataset))
        if dataset is not None and not entries:
            raise ConfigError(f"no backups of dataset {dataset!r} at the source {vault.url}",
                              hint="check the name with `seawall list` on the source vault")
        for key, item in entries:
            if isinstance(item, IntegrityError):
                problems.append(f"manifest {key} at the source: {item.message}")
            elif item.status == BackupStatus.DONE:
                done.append(item)
    return done, problems


# ---- WAL ------------------------------------------------------------------------------------------
def wal_needed(manifest: Manifest) -> list[str]:
    """Keys of the WAL segments from a physical backup's start to its stop segment."""
    src = manifest.source
    start, stop, sysid = src.get("start_wal_file"), src.get("stop_wal_file"), src.get("system_identifier")
    if manifest.kind != PHYSICAL or not (start and stop and sysid):
        return []
    seg_size = int(src.get("wal_segment_size") or walnames.DEFAULT_SEG_SIZE)
    names, name = [start], start
    while name != stop and len(names) < 1_000_000:
        name = walnames.next_segment(name, seg_size)
        names.append(name)
    return [f"wal/{sysid}/{n}" for n in names]


def plan_wal(plan: CopyPlan, source: Vault, dest: Vault) -> None:
    """Fill in the WAL objects the destination lacks (the cluster binding first)."""
    src = {i.key: i.size for i in source.store.list("wal/")}
    plan.wal_present = {i.key for i in dest.store.list("wal/")}
    missing = sorted(k for k in src if k not in plan.wal_present)
    if CLUSTER_KEY in missing:
        missing.remove(CLUSTER_KEY)
        missing.insert(0, CLUSTER_KEY)
    plan.wal_missing, plan.wal_sizes = missing, src


# ---- the plan -------------------------------------------------------------------------------------
def plan_copy(source: Vault, dest: Vault, *, datasets: Iterable[str] | None = None,
              backups: Selection | None = "all", include_wal: bool = True) -> CopyPlan:
    """Work out what `dest` lacks of the selected backups of `source` (reads only).

    Args:
        source: The opened source vault.
        dest: The opened destination vault (same master key).
        datasets: Only these datasets (None: all).
        backups: "all", "latest" (per dataset) or a list of backup ids.
        include_wal: Plan the WAL archive too, and require physical backups' WAL at the destination.

    Raises:
        ConfigError: A dataset without backups, or an invalid selection.
        BackupNotFound: A selected backup id that is not a DONE backup at the source.
    """
    selection = parse_selection(backups)
    done, problems = source_manifests(source, datasets)
    chosen = select_backups(done, selection)
    dest_keys = set(dest.manifest_keys())
    plan = CopyPlan(source.url, dest.url, [], [], set(dest.known_chunks(refresh=True)), stored_sizes(source),
                    problems=problems, include_wal=include_wal)
    if include_wal:
        plan_wal(plan, source, dest)
    with ChunkReader(source) as reader:
        for manifest in chosen:
            if manifest.key in dest_keys:
                plan.present.append(manifest.key)
            else:
                plan.items.append(_item(plan, source, manifest, reader, include_wal))
    plan.newest = newest_backups(done, dest_keys)
    return plan


def stored_sizes(vault: Vault) -> dict[str, int]:
    """Chunk id → stored (sealed) size of every chunk in the vault, packed or loose."""
    vault.known_chunks(refresh=True)
    sizes = dict(vault.chunks.loose())
    sizes.update((c, loc[2]) for c, loc in vault.chunks.index.locations.items())
    return sizes


def _item(plan: CopyPlan, source: Vault, manifest: Manifest, reader: ChunkReader, include_wal: bool) -> BackupItem:
    item = BackupItem(manifest.key, manifest.dataset, manifest.backup_id, manifest.kind, manifest.finished_at,
                      [], [], wal_needed(manifest) if include_wal else [])
    try:
        item.chunks = list(dict.fromkeys(referenced_chunks(source, manifest, reader)))
    except SeawallError as exc:  # a tree index that cannot be read: this backup cannot be copied
        item.problem = f"index of backup {manifest.backup_id} at the source: {exc.message}"
        return item
    item.missing = [c for c in item.chunks if c not in plan.dest_chunks]
    return item


def newest_backups(done: list[Manifest], dest_keys: set[str]) -> dict[str, dict[str, datetime | None]]:
    """Per dataset: finish time of the newest DONE backup at the source and at the destination."""
    out: dict[str, dict[str, datetime | None]] = {}
    for m in sorted(done, key=lambda m: m.started_at):
        row = out.setdefault(m.dataset, {"source": None, "dest": None})
        row["source"] = m.finished_at
        if m.key in dest_keys:
            row["dest"] = m.finished_at
    return out


def replication_lag(newest: dict[str, dict[str, datetime | None]], copied: Iterable[Manifest | BackupItem],
                    now: datetime | None = None) -> list[dict]:
    """Per dataset: age of the newest backup at the source and at the destination, and the lag.

    `lag_s` is how far the destination's newest backup trails the source's (0 when caught up,
    None when the destination holds none of this dataset's backups).
    """
    now = now or datetime.now(UTC)
    newest = {d: dict(v) for d, v in newest.items()}
    for item in copied:
        row = newest.setdefault(item.dataset, {"source": item.finished_at, "dest": None})
        if item.finished_at and (row["dest"] is None or item.finished_at > row["dest"]):
            row["dest"] = item.finished_at
    rows = []
    for dataset, row in sorted(newest.items()):
        src, dst = row["source"], row["dest"]
        rows.append({"dataset": dataset,
                     "source_newest": src.isoformat() if src else None,
                     "dest_newest": dst.isoformat() if dst else None,
                     "source_age_s": round((now - src).total_seconds(), 1) if src else None,
                     "dest_age_s": round((now - dst).total_seconds(), 1) if dst else None,
                     "lag_s": round(max(0.0, (src - dst).total_seconds()), 1) if src and dst else None})
    return rows

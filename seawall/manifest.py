"""Backup manifests: the typed record of one backup and its status lifecycle.

A manifest lists every stream of a backup (its chunk ids, sizes and plaintext hash) and the source
facts needed to verify it later. It is written at the start (STARTED), may be rewritten while the
backup runs, and is always written at the end: DONE on success, FAILED with the first error line
otherwise (Barman `BackupInfo`). A backup exists only when its DONE manifest exists.
"""

from __future__ import annotations

import re
import secrets
import socket
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from seawall import __version__
from seawall.errors import ConfigError, SeawallError

SCHEMA_VERSION = 1
_DATASET = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}\Z")
_BACKUP_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}\Z")


class BackupStatus(StrEnum):
    STARTED = "STARTED"
    UPLOADING = "UPLOADING"
    VERIFYING = "VERIFYING"
    DONE = "DONE"
    FAILED = "FAILED"


_ALLOWED: dict[BackupStatus, set[BackupStatus]] = {
    BackupStatus.STARTED: {BackupStatus.UPLOADING, BackupStatus.VERIFYING, BackupStatus.DONE, BackupStatus.FAILED},
    BackupStatus.UPLOADING: {BackupStatus.VERIFYING, BackupStatus.DONE, BackupStatus.FAILED},
    BackupStatus.VERIFYING: {BackupStatus.DONE, BackupStatus.FAILED},
    BackupStatus.DONE: set(),
    BackupStatus.FAILED: set(),
}


def check_transition(current: BackupStatus, new: BackupStatus) -> None:
    """Raise if a manifest may not move from `current` to `new` (DONE and FAILED are final)."""
    if new not in _ALLOWED[current]:
        raise SeawallError(f"backup status cannot change from {current} to {new}")


ChunkRef = tuple[str, int]  # (chunk id, plaintext size)


class StreamRef(BaseModel):
    """One byte stream of a backup, in order of its chunks."""

    name: str
    kind: Literal["data", "tree"] = "data"
    size: int = 0
    hash: str = Field("", description="BLAKE3 of the whole plaintext stream (hex).")
    chunks: list[ChunkRef] = Field(default_factory=list)


class ChangeStats(BaseModel):
    """How a backup differs from its parent: what the anomaly detector reads (`seawall.readiness.anomaly`).

    Added after schema 1 was in use, as an optional field: manifests written before it open with
    `changes=None` (nothing to compare), and older readers ignore it.
    """

    files_new: int = Field(0, description="Files absent from the parent backup.")
    files_changed: int = Field(0, description="Files whose size, mtime or inode changed since the parent.")
    files_deleted: int = Field(0, description="Files of the parent backup no longer present.")
    compression_ratio: float | None = Field(None, description="Plain bytes of new chunks / their stored bytes.")
    entropy_bits: float | None = Field(None, description="Shannon entropy of a sample of new data, bits per byte.")
    entropy_sample_bytes: int = Field(0, description="Bytes the entropy was measured on (a sample).")


class BackupStats(BaseModel):
    files: int = 0
    bytes_read: int = 0
    bytes_total: int = 0
    bytes_new: int = 0
    stored_bytes_new: int = 0
    chunks_total: int = 0
    chunks_new: int = 0
    files_unchanged: int = 0
    skipped: list[str] = Field(default_factory=list, description="Items not backed up, with the reason.")
    changes: ChangeStats | None = Field(None, description="Change statistics (None: not measured).")

    def change_stats(self) -> ChangeStats:
        """The change statistics, created empty on first use (by the backup that measures them)."""
        if self.changes is None:
            self.changes = ChangeStats()
        return self.changes


class Manifest(BaseModel):
    """The record of one backup."""

    schema_version: int = SCHEMA_VERSION
    backup_id: str
    dataset: str
    kind: str = Field(description="files | postgres-logical | postgres-physical")
    status: BackupStatus = BackupStatus.STARTED
    started_at: datetime
    finished_at: datetime | None = None
    host: str = Field(default_factory=socket.gethostname)
    tool_version: str = __version__
    parent: str | None = Field(None, description="The backup this one is incremental against.")
    source: dict[str, Any] = Field(default_factory=dict)
    streams: list[StreamRef] = Field(default_factory=list)
    stats: BackupStats = Field(default_factory=BackupStats)
    error: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return manifest_key(self.dataset, self.backup_id)

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def transition(self, new: BackupStatus, *, error: str | None = None) -> None:
        check_transition(self.status, new)
        self.status = new
        if new in (BackupStatus.DONE, BackupStatus.FAILED):
            self.finished_at = datetime.now(UTC)
        if error:
            self.error = error

    def stream(self, name: str) -> StreamRef:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(name)


def validate_dataset(name: str) -> str:
    if not _DATASET.match(name or ""):
        raise ConfigError(
            f"invalid dataset name {name!r}", hint="use lowercase letters, digits, '.', '_' or '-' (max 100)"
        )
    return name


def is_backup_id(text: str) -> bool:
    return bool(_BACKUP_ID.match(text))


def new_backup_id(now: datetime | None = None) -> str:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def manifest_key(dataset: str, backup_id: str) -> str:
    return f"manifests/{dataset}/{backup_id}"


def new_manifest(dataset: str, kind: str, **fields: Any) -> Manifest:
    now = datetime.now(UTC)
    return Manifest(
        backup_id=new_backup_id(now), dataset=validate_dataset(dataset), kind=kind, started_at=now, **fields
    )

"""Recovery targets and the recovery settings a point-in-time restore writes.

`RecoveryTarget` parses and validates where recovery stops (`latest`, or `time:`, `lsn:`, `xid:`,
`name:`) and renders it as PostgreSQL's `recovery_target_*` setting. `recovery_settings` adds
everything else a restored copy needs (the `seawall wal-get` restore_command, promote at the end,
archiving and replication off), and `check_target` refuses a target the backup cannot reach. Pure
functions: nothing here touches a server or a data directory.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from seawall.errors import ConfigError
from seawall.manifest import Manifest
from seawall.postgres import walnames

TARGET_KINDS = ("latest", "immediate", "time", "lsn", "xid", "name")
TARGET_ACTIONS = ("promote", "pause", "shutdown")
_TARGET_SETTING = {"time": "recovery_target_time", "lsn": "recovery_target_lsn",
                   "xid": "recovery_target_xid", "name": "recovery_target_name"}
_XID_RE = re.compile(r"^[0-9]{1,20}$")
# The copied settings `recovery_settings` replaces (see `recovery.drop_settings`).
REPLACED_SETTINGS = re.compile(r"^\s*(recovery_target\w*|restore_command|archive_\w+|primary_\w+|port)\s*=", re.I)
# What only recovery needs: removed once a copy is promoted (nothing dangling in postgresql.auto.conf).
RECOVERY_ONLY = re.compile(r"^\s*(recovery_target\w*|restore_command)\s*=", re.I)
_TIMELINE_RE = re.compile(r"^(latest|current|[1-9][0-9]{0,9})$")


@dataclass(frozen=True)
class RecoveryTarget:
    """Where recovery stops: `latest` (all archived WAL), a time, an LSN, an xid or a restore point.

    Example:
        >>> RecoveryTarget.parse("time:2026-11-22T01:00:00Z").settings()
        {'recovery_target_time': '2026-11-22 01:00:00+00:00'}
    """

    kind: str = "latest"
    value: str = ""
    timeline: str = "latest"  # latest | current | N
    action: str = "promote"  # promote | pause | shutdown
    exclusive: bool = False  # stop just before the target instead of just after it

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ConfigError(f"unknown recovery target kind {self.kind!r}", hint="use " + ", ".join(TARGET_KINDS))
        object.__setattr__(self, "value", _normalise(self.kind, self.value.strip()))
        if not _TIMELINE_RE.match(str(self.timeline)):
            raise ConfigError(f"invalid target timeline {self.timeline!r}", hint="use latest, current or a number")
        object.__setattr__(self, "timeline", str(self.timeline))
        if self.action not in TARGET_ACTIONS:
            raise ConfigError(f"invalid target action {self.action!r}", hint="use " + ", ".join(TARGET_ACTIONS))
        if self.exclusive and self.kind in ("latest", "immediate", "name"):
            raise ConfigError(f"--target-exclusive applies to a time, LSN or xid target, not {self.kind}")

    @classmethod
    def parse(cls, text: str | None, *, timeline: str = "latest", action: str = "promote",
              exclusive: bool = False) -> RecoveryTarget:
        """`latest` (or empty), `immediate`, or `kind:value`: `time:2026-11-22T01:00:00+01:00`,
        `lsn:0/3000060`, `xid:1234`, `name:before-upgrade`."""
        text = (text or "").strip()
        extra = {"timeline": timeline, "action": action, "exclusive": exclusive}
        if text in ("", "latest", "immediate"):
            return cls(text or "latest", **extra)
        kind, sep, value = text.partition(":")
        if not sep:
            raise ConfigError(f"invalid recovery target {text!r}",
                              hint="use latest, immediate, time:ISO-8601, lsn:X/Y, xid:N or name:RESTORE_POINT")
        return cls(kind.strip().lower(), value, **extra)

    def __str__(self) -> str:
        return self.kind if self.kind in ("latest", "immediate") else f"{self.kind}:{self.value}"

    @property
    def time(self) -> datetime | None:
        return datetime.fromisoformat(self.value) if self.kind == "time" else None

    def settings(self) -> dict[str, str]:
        """The `recovery_target_*` setting for this target (nothing for `latest`)."""
        if self.kind == "latest":
            return {}
        if self.kind == "immediate":
            return {"recovery_target": "immediate"}
        inclusive = {"recovery_target_inclusive": "off"} if self.exclusive else {}
        if self.kind == "time":
            return {"recovery_target_time": self.time.isoformat(sep=" "), **inclusive}
        return {_TARGET_SETTING[self.kind]: self.value, **inclusive}


def _normalise(kind: str, value: str) -> str:
    if kind in ("latest", "immediate"):
        if value:
            raise ConfigError(f"recovery target {kind} takes no value (got {value!r})")
        return ""
    if not value:
        raise ConfigError(f"recovery target {kind} needs a value", hint=f"e.g. {kind}:{_EXAMPLES[kind]}")
    if kind == "time":
        return _normalise_time(value)
    if kind == "lsn":
        return _normalise_lsn(value)
    if kind == "xid":
        return _normalise_xid(value)
    if len(value.encode()) > 63 or any(ord(c) < 32 for c in value):
        raise ConfigError(f"invalid restore point name {value!r}", hint="at most 63 bytes, no control characters")
    return value


_EXAMPLES = {"immediate": "", "time": "2026-11-22T01:00:00Z", "lsn": "0/3000060", "xid": "1234", "name": "p1"}


def _normalise_time(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1) if "T" not in value else value)
    except ValueError:
        raise ConfigError(f"invalid target time {value!r}",
                          hint="use ISO 8601 with a timezone, e.g. 2026-11-22T01:00:00+01:00") from None
    if parsed.tzinfo is None:
        raise ConfigError(f"target time {value!r} has no timezone",
                          hint="add one, e.g. Z or +01:00: the restored server must not guess it")
    return parsed.isoformat()


def _normalise_lsn(value: str) -> str:
    try:
        return walnames.format_lsn(walnames.parse_lsn(value))
    except ValueError:
        raise ConfigError(f"invalid target LSN {value!r}", hint="write it as X/Y in hex, e.g. 0/3000060") from None


def _normalise_xid(value: str) -> str:
    if not _XID_RE.match(value) or int(value) < 3 or int(value) >= 1 << 64:
        raise ConfigError(f"invalid target xid {value!r}", hint="a transaction id is a number >= 3")
    return str(int(value))


# ---- settings -------------------------------------------------------------------------------------
def default_seawall_bin() -> str:
    """The `seawall` executable next to this interpreter (the venv), else the one on PATH."""
    sibling = Path(sys.executable).with_name("seawall")
    return str(sibling) if sibling.exists() else (shutil.which("seawall") or "seawall")


def restore_command(vault_url: str, passphrase_file: str | os.PathLike, seawall_bin: str | None = None) -> str:
    argv = [seawall_bin or default_seawall_bin(), "wal-get"]
    tail = ["--vault", vault_url, "--passphrase-file", str(passphrase_file)]
    return " ".join(shlex.quote(a) for a in argv) + " %f %p " + " ".join(shlex.quote(a) for a in tail)


def archive_command(vault_url: str, passphrase_file: str | os.PathLike, seawall_bin: str | None = None) -> str:
    argv = [seawall_bin or default_seawall_bin(), "wal-push"]
    tail = ["--vault", vault_url, "--passphrase-file", str(passphrase_file)]
    return " ".join(shlex.quote(a) for a in argv) + " %p " + " ".join(shlex.quote(a) for a in tail)


def recovery_settings(target: RecoveryTarget, command: str, port: int | None = None, *, timeline: int | None = None,
                      archive: str = "", primary_conninfo: str = "") -> dict[str, Any]:
    """Everything appended to the copy's postgresql.auto.conf (later lines win over the copied ones).

    `timeline` is the one the restore checked the archive for (PostgreSQL must not pick another);
    None follows the latest (a standby follows promotions). `archive` is the archive_command of
    the copy once it is a primary (the vault's `wal-push`), or empty: archiving off. A copy never
    inherits the original's archive_command or standby connection; `primary_conninfo` is only set
    for a streaming standby.
    """
    settings: dict[str, Any] = {"restore_command": command, "recovery_target_action": target.action,
                                "recovery_target_timeline": str(timeline) if timeline else "latest",
                                **target.settings()}
    settings |= {"archive_mode": "on" if archive else "off", "archive_command": archive,
                 "primary_conninfo": primary_conninfo, "primary_slot_name": ""}
    if port:
        settings["port"] = port
    return settings


def check_target(target: RecoveryTarget, manifest: Manifest) -> None:
    """ConfigError when the target lies before the point the backup becomes consistent."""
    src = manifest.source
    hint = "pick a later target, or an older backup (`seawall list`)"
    if target.kind == "time" and src.get("stop_time"):
        stop = datetime.fromisoformat(src["stop_time"])
        if target.time < stop:
            raise ConfigError(f"target time {target.value} is before the oldest point this backup can reach "
                              f"({stop.isoformat()}, backup {manifest.backup_id})", hint=hint)
    stop_lsn = src.get("stop_lsn")
    if target.kind == "lsn" and stop_lsn and walnames.parse_lsn(target.value) < walnames.parse_lsn(stop_lsn):
        raise ConfigError(f"target LSN {target.value} is before the oldest point this backup can reach "
                          f"({stop_lsn}, backup {manifest.backup_id})", hint=hint)

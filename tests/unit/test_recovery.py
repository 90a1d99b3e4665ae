"""Recovery targets, the settings a restore writes, and the pure parts of physical backups.

No server here: target parsing and validation, rendered recovery settings, the checks a restore
makes before touching anything, and the tar tap that reads backup_label / backup_manifest in flight.
"""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from seawall.errors import ConfigError, IntegrityError
from seawall.manifest import BackupStatus
from seawall.postgres.physical import (
    KIND,
    ArchiverState,
    ServerFacts,
    TarTap,
    parse_backup_label,
    parse_wal_ranges,
    preflight,
    stop_facts,
)
from seawall.postgres.recovery import (
    REPLACED_SETTINGS,
    RecoveryLog,
    RecoveryTarget,
    check_target,
    drop_settings,
    recovery_settings,
    restore_command,
    restore_physical,
)
from tests.unit.builders import make_manifest, memory_vault

LABEL = """START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-11-22 00:26:50 UTC
LABEL: seawall
START TIMELINE: 1
"""
MANIFEST_TAIL = """{ "Path": "global/pg_control", "Size": 8192 }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/3000100" }
],
"Manifest-Checksum": "abc"}
"""


# ---- RecoveryTarget ----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "kind", "value"), [
    ("", "latest", ""),
    ("latest", "latest", ""),
    ("time:2026-11-22T01:00:00Z", "time", "2026-11-22T01:00:00+00:00"),
    ("time:2026-11-22 01:00:00.5+01:00", "time", "2026-11-22T01:00:00.500000+01:00"),
    ("lsn:0/3000060", "lsn", "0/3000060"),
    ("lsn:16/b374d848", "lsn", "16/B374D848"),
    ("xid:1234", "xid", "1234"),
    ("name:before-upgrade", "name", "before-upgrade"),
    ("NAME:p1", "name", "p1"),
])
def test_parse_valid_targets(text: str, kind: str, value: str) -> None:
    target = RecoveryTarget.parse(text)
    assert (target.kind, target.value) == (kind, value)
    assert RecoveryTarget.parse(str(target)) == target  # round trip


@pytest.mark.parametrize(("text", "match"), [
    ("time:2026-11-22T01:00:00", "no timezone"),
    ("time:yesterday", "invalid target time"),
    ("lsn:3000060", "invalid target LSN"),
    ("lsn:0/XYZ", "invalid target LSN"),
    ("xid:-5", "invalid target xid"),
    ("xid:abc", "invalid target xid"),
    ("xid:1", "invalid target xid"),
    ("name:", "needs a value"),
    ("name:" + "x" * 64, "at most 63 bytes"),
    ("name:a\nb", "no control characters"),
    ("when:now", "unknown recovery target kind"),
    ("p1", "invalid recovery target"),
])
def test_parse_rejects_bad_targets(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RecoveryTarget.parse(text)


def test_latest_takes_no_value() -> None:
    with pytest.raises(ConfigError, match="takes no value"):
        RecoveryTarget("latest", "x")


def test_target_settings_render_one_target() -> None:
    assert RecoveryTarget.parse("latest").settings() == {}
    assert RecoveryTarget.parse("time:2026-11-22T01:00:00Z").settings() == {
        "recovery_target_time": "2026-11-22 01:00:00+00:00"}
    assert RecoveryTarget.parse("lsn:0/3000060").settings() == {"recovery_target_lsn": "0/3000060"}
    assert RecoveryTarget.parse("xid:42").settings() == {"recovery_target_xid": "42"}
    assert RecoveryTarget.parse("name:p1").settings() == {"recovery_target_name": "p1"}


# ---- settings ----------------------------------------------------------------------------------
def test_recovery_settings_disable_archiving_and_promote() -> None:
    settings = recovery_settings(RecoveryTarget.parse("name:p1"), "wal-get %f %p", port=5440)
    assert settings["restore_command"] == "wal-get %f %p"
    assert settings["recovery_target_name"] == "p1"
    assert settings["recovery_target_action"] == "promote"
    assert settings["recovery_target_timeline"] == "latest"
    assert settings["archive_mode"] == "off" and settings["archive_command"] == ""
    assert settings["primary_conninfo"] == "" and settings["port"] == 5440
    # PostgreSQL refuses a second recovery_target_* line even when it is empty
    assert [k for k in settings if k.startswith("recovery_target") and k not in (
        "recovery_target_action", "recovery_target_timeline")] == ["recovery_target_name"]


def test_restore_command_quotes_paths() -> None:
    cmd = restore_command("file:///srv/my vault", "/etc/seawall/pass phrase", "/opt/venv/bin/seawall")
    assert cmd == ("/opt/venv/bin/seawall wal-get %f %p --vault 'file:///srv/my vault' "
                   "--passphrase-file '/etc/seawall/pass phrase'")


def test_drop_settings_removes_copied_recovery_and_archive_lines(tmp_path: Path) -> None:
    conf = tmp_path / "postgresql.auto.conf"
    conf.write_text("# header\nshared_buffers = '128MB'\narchive_command = 'x'\nrecovery_target_name = 'old'\n"
                    "restore_command = 'y'\nprimary_conninfo = 'host=a'\nport = 5432\nwal_level = 'replica'\n")
    drop_settings(conf, REPLACED_SETTINGS)
    assert conf.read_text() == "# header\nshared_buffers = '128MB'\nwal_level = 'replica'\n"


# ---- checks before anything is written ---------------------------------------------------------
def _physical_manifest(**source):
    return make_manifest(kind=KIND, status=BackupStatus.DONE, source={
        "stop_time": "2026-11-22T01:00:00+00:00", "stop_lsn": "0/3000100", **source})


def test_check_target_refuses_points_before_the_backup() -> None:
    manifest = _physical_manifest()
    with pytest.raises(ConfigError, match="before the oldest point this backup can reach"):
        check_target(RecoveryTarget.parse("time:2026-11-22T00:59:59Z"), manifest)
    with pytest.raises(ConfigError, match="before the oldest point"):
        check_target(RecoveryTarget.parse("lsn:0/2000000"), manifest)
    check_target(RecoveryTarget.parse("time:2026-11-22T02:00:00+01:00"), manifest)  # same instant: fine
    check_target(RecoveryTarget.parse("lsn:0/3000100"), manifest)
    check_target(RecoveryTarget.parse("name:p1"), manifest)


def test_restore_refuses_non_empty_dir_and_wrong_backups(tmp_path: Path) -> None:
    vault = memory_vault()
    target = tmp_path / "data"
    target.mkdir()
    (target / "PG_VERSION").write_text("15\n")
    with pytest.raises(ConfigError, match="not empty"):
        restore_physical(vault, _physical_manifest(), target, passphrase="x")
    assert (target / "PG_VERSION").read_text() == "15\n"
    with pytest.raises(ConfigError, match="not a physical one"):
        restore_physical(vault, make_manifest(kind="files", status=BackupStatus.DONE), tmp_path / "n", passphrase="x")
    with pytest.raises(ConfigError, match="not complete"):
        restore_physical(vault, make_manifest(kind=KIND, status=BackupStatus.FAILED), tmp_path / "n", passphrase="x")
    assert not (tmp_path / "n").exists()


def test_recovery_log_reads_last_restored_segment() -> None:
    log = RecoveryLog('LOG:  restored log file "000000010000000000000002" from archive\n'
                      'LOG:  restored log file "000000010000000000000003" from archive\n'
                      'LOG:  recovery stopping at restore point "p1", time 2026-11-22 00:30:13\n')
    assert log.last_restored == "000000010000000000000003"
    assert log.line("recovery stopping") == 'recovery stopping at restore point "p1", time 2026-11-22 00:30:13'


# ---- physical backup pure parts ----------------------------------------------------------------
def _facts(**overrides) -> ServerFacts:
    base = dict(wal_level="replica", archive_mode="on", archive_command="seawall wal-push %p", archive_library="",
                server_version="15.18", server_version_num=150018, data_checksums=True,
                wal_segment_size=16 << 20, system_identifier="7", extra_tablespaces=0, in_recovery=False)
    return ServerFacts(**(base | overrides))


@pytest.mark.parametrize(("overrides", "match"), [
    ({"wal_level": "minimal"}, r"wal_level = replica \(is minimal"),
    ({"archive_mode": "off"}, r"archive_mode = on \(is off"),
    ({"archive_command": ""}, r"archive_command = 'seawall wal-push %p"),
    ({"archive_command": "(disabled)"}, r"archive_command = "),
    ({"in_recovery": True}, r"archive_mode = always"),
])
def test_preflight_says_what_to_set(overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        preflight(_facts(**overrides), "host=db")


def test_preflight_accepts_archiving_primary() -> None:
    preflight(_facts(), "host=db")
    preflight(_facts(in_recovery=True, archive_mode="always"), "host=db")


def test_archiver_state_failing_and_archived() -> None:
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    ok = ArchiverState(3, "000000010000000000000002.00000028.backup", t1, 1, "000000010000000000000001", t0, t1)
    assert not ok.failing
    assert ok.has_archived("000000010000000000000002") and not ok.has_archived("000000010000000000000003")
    stuck = ArchiverState(3, "000000010000000000000002", t0, 5, "000000010000000000000003", t1, t1)
    assert stuck.failing
    assert ArchiverState(0, None, None, 1, "000000010000000000000001", t0, t1).failing


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Dribble(io.RawIOBase):
    """Returns at most `step` bytes per read: headers and contents split across reads."""

    def __init__(self, data: bytes, step: int):
        self._data, self._pos, self._step = data, 0, step

    def readinto(self, b) -> int:
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


@pytest.mark.parametrize("step", [1, 7, 512, 4096, 1 << 20])
def test_tar_tap_keeps_label_and_manifest_tail(step: int) -> None:
    manifest = b'{"Files": [' + b'{"Path": "x"},' * 5000 + MANIFEST_TAIL.encode()
    data = _tar({"backup_label": LABEL.encode(), "base/1/1234": b"\x00" * 10000, "backup_manifest": manifest})
    tap = TarTap(_Dribble(data, step), limit=4096)
    out = bytearray()
    buf = bytearray(65536)
    while n := tap.readinto(memoryview(buf)):
        out += buf[:n]
    assert bytes(out) == data and tap.ended
    assert tap.label.decode() == LABEL
    assert tap.manifest_tail.decode().endswith(MANIFEST_TAIL) and len(tap.manifest_tail) == 4096
    facts = stop_facts(tap, 16 << 20)
    assert facts["start_lsn"] == "0/2000028" and facts["start_wal_file"] == "000000010000000000000002"
    assert facts["timeline"] == 1 and facts["stop_lsn"] == "0/3000100"
    assert facts["stop_wal_file"] == "000000010000000000000003"


def test_stop_segment_at_a_boundary_is_the_previous_one() -> None:
    tail = MANIFEST_TAIL.replace("0/3000100", "0/4000000").encode()
    tap = TarTap(io.BytesIO(b""))
    tap.label, tap.manifest_tail = bytearray(LABEL.encode()), bytearray(tail)
    assert stop_facts(tap, 16 << 20)["stop_wal_file"] == "000000010000000000000003"


def test_label_and_ranges_parsers() -> None:
    assert parse_backup_label(LABEL)["checkpoint_lsn"] == "0/2000060"
    assert parse_wal_ranges(MANIFEST_TAIL) == json.loads('[{"Timeline": 1, "Start-LSN": "0/2000028", '
                                                         '"End-LSN": "0/3000100"}]')
    with pytest.raises(IntegrityError, match="no WAL-Ranges"):
        parse_wal_ranges('{"Files": []}')


def test_target_modes_render_their_settings() -> None:
    from seawall.postgres.targets import recovery_settings

    assert RecoveryTarget.parse("immediate").settings() == {"recovery_target": "immediate"}
    excl = RecoveryTarget.parse("xid:1234", exclusive=True, action="pause", timeline="current")
    assert excl.settings() == {"recovery_target_xid": "1234", "recovery_target_inclusive": "off"}
    settings = recovery_settings(excl, "cmd", 5440, timeline=2, archive="seawall wal-push %p")
    assert settings["recovery_target_action"] == "pause" and settings["recovery_target_timeline"] == "2"
    assert settings["archive_mode"] == "on" and settings["archive_command"] == "seawall wal-push %p"
    assert recovery_settings(RecoveryTarget(), "cmd")["archive_mode"] == "off"
    assert recovery_settings(RecoveryTarget(), "cmd")["recovery_target_timeline"] == "latest"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"timeline": "newest"}, "invalid target timeline"),
    ({"action": "explode"}, "invalid target action"),
    ({"text": "name:p1", "exclusive": True}, "--target-exclusive applies to a time, LSN or xid"),
    ({"text": "immediate:x"}, "takes no value"),
])
def test_bad_target_options_are_refused(kwargs: dict, match: str) -> None:
    text = kwargs.pop("text", "latest")
    with pytest.raises(ConfigError, match=match):
        RecoveryTarget.parse(text, **kwargs)

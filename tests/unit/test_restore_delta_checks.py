"""The checks a `--delta` physical restore makes before touching an existing data directory."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from seawall.errors import ConfigError, ExitCode
from seawall.postgres.restore_delta import check_delta_datadir, running_pid, system_identifier
from tests.unit.builders import make_manifest

SYSID = "7312345678901234567"


def _datadir(path: Path, sysid: str = SYSID, pid: int | None = None) -> Path:
    (path / "global").mkdir(parents=True)
    (path / "global" / "pg_control").write_bytes(struct.pack("<Q", int(sysid)) + bytes(100))
    (path / "PG_VERSION").write_text("15\n")
    if pid is not None:
        (path / "postmaster.pid").write_text(f"{pid}\n{path}\n")
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def manifest():
    return make_manifest(kind="postgres-physical", source={"system_identifier": SYSID})


def test_own_cluster_stopped_empty_or_missing_is_accepted(tmp_path: Path, manifest) -> None:
    assert check_delta_datadir(_datadir(tmp_path / "d", pid=_dead_pid()), manifest) == tmp_path / "d"
    assert system_identifier(tmp_path / "d") == SYSID and running_pid(tmp_path / "d") is None
    (tmp_path / "empty").mkdir()
    assert check_delta_datadir(tmp_path / "empty", manifest) == tmp_path / "empty"
    assert check_delta_datadir(tmp_path / "missing", manifest) == tmp_path / "missing"


def test_a_running_cluster_is_refused_even_with_force(tmp_path: Path, manifest) -> None:
    datadir = _datadir(tmp_path / "d", pid=os.getpid())  # a live pid
    for force in (False, True):
        with pytest.raises(ConfigError, match=f"PostgreSQL is running on {datadir} .*pid {os.getpid()}") as err:
            check_delta_datadir(datadir, manifest, force=force)
        assert err.value.exit_code == ExitCode.USAGE and "stale postmaster.pid" in str(err.value)


def test_another_cluster_is_refused_unless_forced(tmp_path: Path, manifest) -> None:
    datadir = _datadir(tmp_path / "d", sysid="7000000000000000001")
    with pytest.raises(ConfigError, match="another cluster .*7000000000000000001.*" + SYSID):
        check_delta_datadir(datadir, manifest)
    assert check_delta_datadir(datadir, manifest, force=True) == datadir


def test_a_folder_that_is_no_data_directory_is_refused_unless_forced(tmp_path: Path, manifest) -> None:
    (tmp_path / "home" / "user").mkdir(parents=True)
    (tmp_path / "home" / "user" / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="not a PostgreSQL data directory"):
        check_delta_datadir(tmp_path / "home", manifest)
    assert check_delta_datadir(tmp_path / "home", manifest, force=True) == tmp_path / "home"

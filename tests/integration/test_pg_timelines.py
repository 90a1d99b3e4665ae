"""Timelines, end to end on real clusters (issue 16, acceptance point 2).

One history is built once for the module (CI cost) and read by every test:

- a primary on timeline 1, archiving into a vault; base backup B1;
- copy C2: PITR from B1 to restore point `branch`, promoted with archiving on → timeline 2;
- copy C3: PITR from B1 to `branch` on timeline 1 (`--target-timeline current`), promoted →
  timeline 3 (PostgreSQL takes the next free number from the archive's history files);
- a base backup B2 of C2, on timeline 2.

Each timeline then gets its own rows and a restore point. Restores to points on each timeline give
that timeline's rows. Deleting one timeline-2 segment (between two others, before B2) makes a
restore to a timeline-2 point fail with exit 3 naming it before anything is written, and `wal-check`
names exactly the broken window (B1 on timeline 2) and backup (B1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seawall.errors import ConfigError, ExitCode, IntegrityError
from seawall.postgres.cluster import LocalCluster, make_private_dir
from seawall.postgres.conn import PgConn
from seawall.postgres.physical import backup_physical
from seawall.postgres.recovery import CopyOptions, RecoveryTarget, restore_physical
from seawall.postgres.wal import WalArchive
from seawall.postgres.windows import wal_check_for_backups
from seawall.vault import open_vault
from tests.fixtures.postgres import PASSPHRASE, SEAWALL_BIN, _private_file, switch_and_archive


@dataclass
class History:
    workdir: Path
    vault_url: str
    pass_file: Path
    primary: LocalCluster
    b1: str = ""
    b2: str = ""
    copies: list[LocalCluster] = field(default_factory=list)
    tl2_segments: list[str] = field(default_factory=list)

    @property
    def vault(self):
        return open_vault(self.vault_url, PASSPHRASE)

    def restore(self, name: str, backup: str, target: str, **kwargs) -> dict:
        vault = self.vault
        opts = {k: kwargs.pop(k) for k in ("timeline", "action", "exclusive") if k in kwargs}
        return restore_physical(vault, vault.require_done(backup), self.workdir / name,
                                target=RecoveryTarget.parse(target, **opts), vault_url=self.vault_url,
                                passphrase_file=self.pass_file, **kwargs)


def _insert(cluster: LocalCluster, tag: str) -> None:
    cluster.execute("INSERT INTO t (tag) SELECT %s FROM generate_series(1, 10)", (tag,))


def _attach(result: dict) -> LocalCluster:
    return LocalCluster(result["datadir"], result["port"], socket_dir=result["socket_dir"])


def _tags(result: dict) -> dict[str, int]:
    cluster = _attach(result)
    try:
        return dict(cluster.execute("SELECT tag, count(*)::int FROM t GROUP BY tag ORDER BY tag"))
    finally:
        cluster.stop("immediate")
        shutil.rmtree(result["datadir"], ignore_errors=True)


@pytest.fixture(scope="module")
def history() -> Iterator[History]:
    from seawall.crypto import ScryptParams
    from seawall.vault import init_vault

    workdir = make_private_dir("seawall-tl-")
    vault_dir = make_private_dir("vault-", str(workdir))
    vault_url = f"file://{vault_dir}"
    pass_file = _private_file(workdir / "passphrase", PASSPHRASE)
    init_vault(vault_url, PASSPHRASE, scrypt=ScryptParams(n=2**12))
    archive = f"{SEAWALL_BIN} wal-push %p --vault {vault_url} --passphrase-file {pass_file}"
    primary = LocalCluster.create(workdir, settings={"archive_mode": "on", "archive_command": archive,
                                                     "wal_level": "replica"})
    primary.start()
    h = History(workdir, vault_url, pass_file, primary)
    try:
        _build(h)
        yield h
    finally:
        for cluster in [primary, *h.copies]:
            cluster.stop("immediate")
        shutil.rmtree(workdir, ignore_errors=True)


def _build(h: History) -> None:
    p = h.primary
    p.execute("CREATE TABLE t (id bigserial PRIMARY KEY, tag text)")
    _insert(p, "A")
    h.b1 = backup_physical(h.vault, PgConn(p.conninfo()), "pg").backup_id
    _insert(p, "B")
    p.execute("SELECT pg_create_restore_point('branch')")
    switch_and_archive(p)

    c2 = _attach(h.restore("c2", h.b1, "name:branch", copy=CopyOptions(archive=True)))
    h.copies.append(c2)
    _insert(c2, "X2")
    c2.execute("SELECT pg_create_restore_point('on_tl2')")
    h.tl2_segments.append(switch_and_archive(c2))
    _insert(c2, "Y2")
    h.tl2_segments.append(switch_and_archive(c2))  # the one deleted later: a TL2 segment with later ones archived
    _insert(c2, "W2")
    c2.execute("SELECT pg_create_restore_point('late_tl2')")
    h.tl2_segments.append(switch_and_archive(c2))
    h.b2 = backup_physical(h.vault, PgConn(c2.conninfo()), "pg").backup_id
    _insert(c2, "V2")
    c2.execute("SELECT pg_create_restore_point('after_b2')")
    switch_and_archive(c2)

    c3 = _attach(h.restore("c3", h.b1, "name:branch", timeline="current", copy=CopyOptions(archive=True)))
    h.copies.append(c3)
    _insert(c3, "Z3")
    c3.execute("SELECT pg_create_restore_point('on_tl3')")
    switch_and_archive(c3)

    _insert(p, "C")
    p.execute("SELECT pg_create_restore_point('on_tl1')")
    switch_and_archive(p)


def test_the_copies_archived_their_timelines(history: History) -> None:
    c2, c3 = history.copies
    assert c2.execute("SELECT timeline_id FROM pg_control_checkpoint()")[0][0] == 2
    assert c3.execute("SELECT timeline_id FROM pg_control_checkpoint()")[0][0] == 3
    names = WalArchive(history.vault).names()
    assert {"00000002.history", "00000003.history"} <= set(names)
    assert all(n.startswith("00000002") for n in history.tl2_segments)
    for copy in (c2, c3):
        conf = (copy.datadir / "postgresql.auto.conf").read_text()
        assert "restore_command" not in conf and "recovery_target" not in conf  # nothing dangling
        assert "archive_mode = 'on'" in conf and "wal-push" in conf


def test_restores_to_points_on_each_timeline_give_its_data(history: History) -> None:
    tl1 = history.restore("r1", history.b1, "name:on_tl1", timeline="current", copy=None)
    assert tl1["timeline_followed"] == 1
    assert _tags(tl1) == {"A": 10, "B": 10, "C": 10}
    tl2 = history.restore("r2", history.b1, "name:on_tl2", timeline="2")
    assert tl2["timeline_followed"] == 2
    assert _tags(tl2) == {"A": 10, "B": 10, "X2": 10}
    tl3 = history.restore("r3", history.b1, "name:on_tl3")  # latest = 3
    assert tl3["timeline_followed"] == 3
    assert _tags(tl3) == {"A": 10, "B": 10, "Z3": 10}
    late = history.restore("r2b", history.b2, "name:after_b2", timeline="current", action="pause")
    paused = _attach(late)
    assert paused.execute("SELECT pg_is_in_recovery(), pg_get_wal_replay_pause_state()")[0] == (True, "paused")
    assert "restore_command" in (Path(late["datadir"]) / "postgresql.auto.conf").read_text()
    assert _tags(late) == {"A": 10, "B": 10, "V2": 10, "W2": 10, "X2": 10, "Y2": 10}


def test_bad_targets_are_refused_before_anything_is_written(history: History) -> None:
    with pytest.raises(ConfigError, match="timeline 7 is not in the archive"):
        history.restore("bad7", history.b1, "latest", timeline="7")
    with pytest.raises(ConfigError, match="before the oldest point this backup can reach"):
        history.restore("bad-early", history.b2, "lsn:0/1000000")
    with pytest.raises(ConfigError, match="timeline 1 is older than timeline 2 of this backup"):
        history.restore("bad-tl1", history.b2, "latest", timeline="1")
    assert not any((history.workdir / n).exists() for n in ("bad7", "bad-early", "bad-tl1"))


def test_a_lost_timeline_2_segment_refuses_the_restore_and_wal_check_names_it(history: History) -> None:
    lost = history.tl2_segments[1]
    vault = history.vault
    key = WalArchive(vault).key(lost)
    saved = vault.store.get(key)
    vault.store.delete(key)
    try:
        with pytest.raises(IntegrityError, match=f"WAL segment {lost} is missing from the archive") as info:
            history.restore("r-lost", history.b1, "name:late_tl2", timeline="2")
        assert info.value.exit_code == ExitCode.INTEGRITY
        assert not (history.workdir / "r-lost").exists()

        report = wal_check_for_backups(history.vault_url, PASSPHRASE)
        assert not report["ok"]
        assert report["backups_broken"] == [history.b1]
        assert report["windows_broken"] == [f"{history.b1}@2"]
        broken = next(w for w in report["windows"] if not w["ok"])
        assert broken["first_missing"] == lost and broken["until"] == history.tl2_segments[0]
        ok = {(w["backup_id"], w["timeline"]) for w in report["windows"] if w["ok"]}
        assert ok == {(history.b1, 1), (history.b1, 3), (history.b2, 2)}

        env = dict(os.environ, SEAWALL_PASSPHRASE=PASSPHRASE)
        cli = subprocess.run([SEAWALL_BIN, "wal-check", "--vault", history.vault_url, "--json"], env=env,
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == ExitCode.INTEGRITY, cli.stderr
        assert json.loads(cli.stdout)["windows_broken"] == [f"{history.b1}@2"]
    finally:
        vault.store.put(key, saved)
    assert wal_check_for_backups(history.vault_url, PASSPHRASE)["ok"]

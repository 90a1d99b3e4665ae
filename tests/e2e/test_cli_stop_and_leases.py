"""Leases left by dead processes and stop signals, with real processes.

- A retention run killed with SIGKILL while it holds the exclusive lease: the next backup on this
  host breaks that lease at once (its PID is gone) instead of waiting out the 30-minute expiry.
- A backup waiting on a live holder says who holds the lease and until when; SIGTERM (or SIGINT)
  ends it within 5 s with exit 143 (130), its own lease object removed.
- SIGTERM in the middle of a backup: exit 143 within 5 s, the backup recorded FAILED "interrupted".
- `seawall unlock` removes a lease from another host after confirmation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from seawall.errors import ExitCode
from tests.e2e.conftest import SEAWALL

STOP_DEADLINE = 5.0


@pytest.fixture
def env(prefect_server) -> dict[str, str]:
    return dict(os.environ, PREFECT_API_URL=prefect_server["url"], PREFECT_HOME=prefect_server["home"],
                SEAWALL_PASSPHRASE="correct horse", COLUMNS="200")


@pytest.fixture
def vault_two_backups(cli, tmp_path: Path) -> tuple[str, Path, Path]:
    """(url, vault folder, tree) with two backups of dataset 'www', the first prunable."""
    url, folder, tree = f"file://{tmp_path / 'vault'}", tmp_path / "vault", tmp_path / "tree é"
    tree.mkdir()
    assert cli("init", url).code == 0
    for _ in range(2):
        for i in range(40):  # distinct chunks per backup, so the prune has garbage to collect
            (tree / f"f{i}.bin").write_bytes(os.urandom(20_000))
        assert cli("backup", "files", str(tree), "--vault", url, "--dataset", "www").code == 0
    return url, folder, tree


def _popen(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([SEAWALL, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _retention_holding_lease(env: dict[str, str], cwd: Path, url: str, lease: Path) -> subprocess.Popen:
    """A real `retention --apply`, frozen (SIGSTOP) while it holds the exclusive lease."""
    proc = _popen(env, cwd, "retention", "--vault", url, "--keep-last", "1", "--apply")
    deadline = time.monotonic() + 120
    while not lease.exists():
        assert proc.poll() is None, f"retention ended before taking the lease: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "retention never took the lease"
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGSTOP)
    held = json.loads(lease.read_text())  # the precondition: the frozen process holds it
    assert held["pid"] == proc.pid and held["purpose"] == "retention", held
    return proc


def _lines_until(stream, needle: str, timeout: float) -> tuple[list[str], threading.Thread]:
    """Read `stream` in a thread until its end; returns once a line contains `needle`."""
    seen: list[str] = []
    found = threading.Event()

    def pump() -> None:
        for line in stream:
            seen.append(line)
            if needle in line:
                found.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    assert found.wait(timeout), "".join(seen)
    return seen, reader


def test_lease_of_killed_retention_is_broken_at_once(cli, env, vault_two_backups, tmp_path):
    url, folder, tree = vault_two_backups
    started = time.monotonic()
    baseline = cli("backup", "files", str(tree), "--vault", url, "--dataset", "other")
    baseline_s = time.monotonic() - started
    assert baseline.code == 0, baseline.err

    frozen = _retention_holding_lease(env, tmp_path, url, folder / "locks" / "lease")
    frozen.kill()  # SIGKILL: no cleanup at all
    frozen.wait(10)
    assert (folder / "locks" / "lease").exists()

    started = time.monotonic()
    after = cli("backup", "files", str(tree), "--vault", url, "--dataset", "www")
    elapsed = time.monotonic() - started
    assert after.code == 0, after.err
    assert f"pid {frozen.pid} on this host) no longer runs" in after.err, after.err
    assert elapsed < baseline_s + STOP_DEADLINE, (elapsed, baseline_s)
    assert not (folder / "locks" / "lease").exists()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_ends_a_backup_waiting_on_a_live_lease(env, vault_two_backups, tmp_path, signum, code):
    url, folder, tree = vault_two_backups
    frozen = _retention_holding_lease(env, tmp_path, url, folder / "locks" / "lease")
    try:
        waiting = _popen(env, tmp_path, "backup", "files", str(tree), "--vault", url, "--dataset", "www")
        lines, reader = _lines_until(waiting.stderr, "is busy", timeout=120)
        said = "".join(lines)
        assert f"retention (exclusive) by {os.uname().nodename} pid {frozen.pid}" in said and "expires" in said
        assert "waits up to 600s" in said, said
        sent = time.monotonic()
        waiting.send_signal(signum)
        assert waiting.wait(10) == code
        assert time.monotonic() - sent < STOP_DEADLINE
        reader.join(5)
        assert f"interrupted by {signum.name}" in "".join(lines), lines
        assert list((folder / "locks" / "shared").glob("*")) == []  # its own lease object is gone
    finally:
        frozen.kill()
        frozen.wait(10)


def test_sigterm_mid_backup_records_failed_interrupted(cli, env, tmp_path):
    url, folder = f"file://{tmp_path / 'vault'}", tmp_path / "vault"
    tree = tmp_path / "big"
    tree.mkdir()
    with open(tree / "sparse.img", "wb") as fh:  # 16 GiB of zeros that cost no disk: a long read
        fh.truncate(16 << 30)
    assert cli("init", url).code == 0
    proc = _popen(env, tmp_path, "backup", "files", str(tree), "--vault", url, "--dataset", "big")
    manifests = folder / "manifests" / "big"
    deadline = time.monotonic() + 120
    while not (manifests.exists() and any(manifests.iterdir())):  # STARTED is written
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == ExitCode.TERMINATED, proc.stderr.read()
    assert time.monotonic() - sent < STOP_DEADLINE
    assert list((folder / "locks" / "shared").glob("*")) == []
    (row,) = cli("list", "--vault", url, "--json").json()["backups"]
    assert row["status"] == "FAILED" and "interrupted by SIGTERM" in row["error"], row


def test_unlock_removes_a_lease_from_another_host_after_confirmation(cli, vault_two_backups):
    url, folder, _ = vault_two_backups
    (folder / "locks").mkdir(exist_ok=True)
    (folder / "locks" / "lease").write_text(json.dumps({
        "owner": "0123", "kind": "exclusive", "purpose": "retention", "host": "db-2.example", "pid": 4242,
        "created": "2026-01-01T00:00:00+00:00", "expires": "2999-01-01T00:00:00+00:00"}))
    refused = cli("unlock", "--vault", url)  # stdin is not a terminal: no silent removal
    assert refused.code == ExitCode.USAGE and "--yes" in refused.err and "db-2.example pid 4242" in refused.out
    assert (folder / "locks" / "lease").exists()
    done = cli("unlock", "--vault", url, "--yes", "--json")
    assert done.code == 0 and [r["host"] for r in done.json()["removed"]] == ["db-2.example"]
    assert not (folder / "locks" / "lease").exists()

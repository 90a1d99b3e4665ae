"""Who holds a lease, and whether that process still exists (PID plus start time, against reuse)."""

from __future__ import annotations

import os
import socket
import subprocess

from seawall.lease import LeaseRecord, exclusive_lease, process_identity
from tests.unit.builders import memory_vault


def _record(pid: int, process: str | None, host: str | None = None) -> LeaseRecord:
    return LeaseRecord("owner1", "exclusive", "retention", host or socket.gethostname(), pid,
                       "2026-01-01T00:00:00+00:00", "2999-01-01T00:00:00+00:00", process)


def test_a_live_holder_is_not_gone_and_a_dead_one_is() -> None:
    child = subprocess.Popen(["sleep", "60"])
    record = _record(child.pid, process_identity(child.pid))
    assert not record.holder_gone()
    child.kill()
    child.wait()
    assert record.holder_gone()


def test_a_reused_pid_is_not_taken_for_the_holder() -> None:
    mine = process_identity(os.getpid())
    boot_ns, ticks = mine.rsplit(":", 1)
    earlier = _record(os.getpid(), f"{boot_ns}:{int(ticks) - 1}")  # same PID, another process start
    assert earlier.holder_gone()
    assert not _record(os.getpid(), mine).holder_gone()


def test_holders_elsewhere_are_never_judged_from_here() -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # gone, but...
    assert not _record(child.pid, "x", host="another-host").holder_gone()
    boot, ns, ticks = process_identity(os.getpid()).split(":")
    other_namespace = f"{boot}:{int(ns) + 1}:{ticks}"  # a container sharing our host name
    assert not _record(child.pid, other_namespace).holder_gone()
    other_boot = f"{boot[::-1]}:{ns}:{ticks}"
    assert not _record(child.pid, other_boot).holder_gone()
    assert _record(child.pid, None).holder_gone()  # an older record: a vanished PID is proof enough


def test_dead_holders_lease_is_broken_at_once_with_a_log_line(caplog) -> None:
    vault = memory_vault()
    child = subprocess.Popen(["true"])
    child.wait()
    record = _record(child.pid, process_identity(os.getpid()).rsplit(":", 1)[0] + ":1")
    vault.store.put("locks/lease", record.to_json())
    with exclusive_lease(vault, "retention"):  # wait=0: it would raise LeaseBusy if the lease stood
        pass
    assert f"pid {child.pid} on this host) no longer runs" in caplog.text

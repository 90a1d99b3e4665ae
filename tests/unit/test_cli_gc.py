"""The CLI's pause of cyclic garbage collection while a hot command starts (`seawall.cli.entry.pause_gc`):
only `restore` and `backup postgres` pause it, and a flow always runs with collection on."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from seawall.cli import common, entry

ENV = {**os.environ, "COLUMNS": "120", "SEAWALL_PASSPHRASE": "x", "SEAWALL_PREFECT": "off"}


@pytest.fixture
def gc_restored():
    yield
    entry._gc_paused = False
    gc.unfreeze()
    gc.enable()


def test_pause_then_resume_turns_collection_back_on_with_the_start_up_objects_frozen(gc_restored):
    entry.pause_gc()
    assert not gc.isenabled()
    entry.resume_gc()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0  # what the imports made is not traversed again by the flow's passes


def test_resume_without_a_pause_changes_nothing(gc_restored):
    gc.disable()  # someone else's choice (a test, an embedding program): left alone
    entry.resume_gc()
    assert not gc.isenabled() and gc.get_freeze_count() == 0
    gc.enable()
    entry.resume_gc()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_run_flow_runs_the_flow_with_collection_on(gc_restored, monkeypatch):
    monkeypatch.setattr(common, "start_runtime", lambda verbose: False)
    entry.pause_gc()
    assert common.run_flow(lambda **params: (gc.isenabled(), params), x=1) == (True, {"x": 1})


def _gc_at_exit(*argv: str) -> subprocess.CompletedProcess:
    """`seawall ARGV` in a process that prints, at exit, whether collection was on."""
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('gc-enabled', gc.isenabled(), file=sys.stderr))\n"
            "from seawall.cli.entry import main\n"
            f"sys.argv = ['seawall', *{list(argv)!r}]\n"
            "main()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)


@pytest.mark.parametrize("argv, paused", [
    (["restore", "--help"], True),  # no flow ran: still paused at exit
    (["backup", "postgres", "--help"], True),
    (["list", "--help"], False),
    (["backup", "files", "--help"], False),
    (["--verbose", "restore", "--help"], False),
])
def test_only_the_hot_commands_pause_collection(argv, paused):
    out = _gc_at_exit(*argv)
    assert out.returncode == 0, out.stderr
    assert f"gc-enabled {not paused}" in out.stderr


def test_kdf_pending_while_a_derivation_runs(monkeypatch):
    from seawall import kdf_ahead

    monkeypatch.setattr(kdf_ahead, "_jobs", {})
    assert not kdf_ahead.pending()
    job = kdf_ahead._jobs[("p", b"salt", 2, 1, 1)] = kdf_ahead._Job()
    assert kdf_ahead.pending()
    job.done.set()
    assert not kdf_ahead.pending()


@pytest.mark.parametrize("pending, to, imported", [
    (True, None, "flows.restore"), (True, "/tmp/x", "flows.restore"), (True, "ssh://u@h/x", "flows.remote"),
    (False, None, None),
])
def test_restore_imports_its_flows_while_the_key_is_derived(pending, to, imported):
    code = ("import sys\n"
            "from seawall import kdf_ahead\n"
            "from seawall.cli import app\n"
            f"kdf_ahead.pending = lambda: {pending}\n"
            f"app._import_while_deriving({to!r})\n"
            "print(sorted(m for m in ('flows.restore', 'flows.remote') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert out.stdout.strip() == str([imported] if imported else [])

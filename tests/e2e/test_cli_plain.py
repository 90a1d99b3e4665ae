"""The CLI with no Prefect API configured: job commands run in plain mode, as whole processes.

Each command runs with `PYTHONPROFILEIMPORTTIME=1` (Python's `-X importtime`), so the test sees
every module the process imported: Prefect must never be among them, and the empty PREFECT_HOME
must stay empty (no ephemeral server, no database). Results, ledger records and exit codes are the
ones the Prefect-mode tests check. A configured but unreachable API is one line and exit 2, at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from seawall.errors import ExitCode
from seawall.sources.compare import compare_trees
from seawall.sources.sample import make_sample_tree
from tests.fixtures.prefect import free_port

SEAWALL = str(Path(sys.executable).with_name("seawall"))


@dataclass
class Run:
    code: int
    out: str
    err: str
    modules: set[str]
    seconds: float


@pytest.fixture
def plain(tmp_path):
    """`plain(*args, env={...})` runs the seawall script with no API anywhere (own empty PREFECT_HOME)."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SEAWALL_"))}
    base.update(PREFECT_HOME=str(home), SEAWALL_PASSPHRASE="correct horse", COLUMNS="200",
                PYTHONPROFILEIMPORTTIME="1")

    def run(*args: str, env: dict | None = None, timeout: float = 120) -> Run:
        started = time.monotonic()
        proc = subprocess.run([SEAWALL, *args], env={**base, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout, cwd=tmp_path, stdin=subprocess.DEVNULL)
        modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                   if line.startswith("import time:") and "|" in line}
        err = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("import time:"))
        return Run(proc.returncode, proc.stdout, err, modules, time.monotonic() - started)

    run.home = home
    return run


def _no_prefect(run: Run) -> None:
    assert run.modules, "PYTHONPROFILEIMPORTTIME produced no import lines"
    assert not {m for m in run.modules if m.split(".")[0] == "prefect"}, "Prefect was imported"


def test_file_jobs_run_without_prefect(plain, tmp_path):
    tree = tmp_path / "tree with spaces"
    make_sample_tree(tree)
    vault, dr = f"file://{tmp_path / 'vault'}", f"file://{tmp_path / 'dr'}"
    runs = [plain("init", vault)]
    first = plain("backup", "files", str(tree), "--vault", vault, "--dataset", "www", "--json")
    again = plain("backup", "files", str(tree), "--vault", vault, "--dataset", "www", "--json")
    runs += [first, again]
    assert first.code == 0 and again.code == 0, first.err + again.err
    row = json.loads(again.out)  # JSON alone on stdout: prints of the flow go to the run log
    assert row["status"] == "DONE" and row["stored_bytes_new"] == 0
    runs.append(plain("verify", "--vault", vault, "--read-data"))
    out = tmp_path / "restored"
    runs.append(plain("restore", row["backup_id"], "--vault", vault, "--to", str(out)))
    runs.append(plain("copy", "--from", vault, "--to", dr, "--init-dest", "--json"))
    runs.append(plain("verify-restore", "--vault", dr, "--dataset", "www", "--json"))
    runs.append(plain("retention", "--vault", vault, "--keep-last", "1", "--apply", "--json"))
    runs.append(plain("status", "--vault", dr, "--json"))
    assert [r.code for r in runs] == [0] * len(runs), [r.err for r in runs if r.code]
    assert compare_trees(tree, out) == []
    assert json.loads(runs[-4].out)["ok"] is True
    assert json.loads(runs[-3].out)["status"] == "VERIFIED"
    assert [b["action"] for b in json.loads(runs[-2].out)["backups"]].count("remove") == 1
    status = json.loads(runs[-1].out)["datasets"][0]
    assert status["last_verification_status"] == "VERIFIED" and status["dataset"] == "www"
    for run in runs:
        _no_prefect(run)
    assert list(plain.home.iterdir()) == [], "something wrote a Prefect home (server, database)"


def test_exit_codes_and_usage_errors_without_prefect(plain, tmp_path):
    tree = tmp_path / "src"
    make_sample_tree(tree)
    vault = f"file://{tmp_path / 'vault'}"
    assert plain("init", vault).code == 0
    backup = plain("backup", "files", str(tree), "--vault", vault, "--json")
    assert backup.code == 0, backup.err
    missing = plain("backup", "files", str(tmp_path / "missing"), "--vault", vault)
    bad_name = plain("backup", "files", str(tree), "--vault", vault, "--dataset", "Bad Name")
    busy_target = plain("restore", json.loads(backup.out)["backup_id"], "--vault", vault, "--to", str(tree))
    wrong = plain("list", "--vault", vault, env={"SEAWALL_PASSPHRASE": "wrong"})
    for run, text in ((missing, "does not exist"), (bad_name, "invalid dataset name"), (busy_target, "not empty"),
                      (wrong, "passphrase")):
        assert run.code == ExitCode.USAGE, run.err
        assert text in run.err and "Traceback" not in run.err and len(run.err.strip().splitlines()) == 1
        _no_prefect(run)
    chunk = max((p for p in (tmp_path / "vault" / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(chunk.read_bytes())
    data[60] ^= 1
    chunk.write_bytes(bytes(data))
    corrupt = plain("verify", "--vault", vault, "--read-data")
    assert corrupt.code == ExitCode.INTEGRITY and chunk.name in corrupt.out + corrupt.err
    _no_prefect(corrupt)


def test_help_imports_no_prefect(plain):
    run = plain("--help")
    assert run.code == 0 and "backup" in run.out
    _no_prefect(run)


def test_unreachable_api_is_one_line_at_once(plain, tmp_path):
    tree = tmp_path / "src"
    make_sample_tree(tree)
    vault = f"file://{tmp_path / 'vault'}"
    assert plain("init", vault).code == 0
    url = f"http://127.0.0.1:{free_port()}/api"
    run = plain("backup", "files", str(tree), "--vault", vault, env={"PREFECT_API_URL": url})
    assert run.code == ExitCode.USAGE and run.seconds < 30
    assert run.err.strip().splitlines() == [
        f"seawall: error: the Prefect API at {url} is unreachable ([Errno 111] Connection refused) — start it "
        "(prefect server start), fix PREFECT_API_URL / the active Prefect profile, or set SEAWALL_PREFECT=off "
        "to run without Prefect"]
    _no_prefect(run)  # refused before Prefect was even imported
    assert plain("list", "--vault", vault, env={"PREFECT_API_URL": url}).code == 0  # no flow: no API needed


def test_profile_api_is_honoured_and_override_runs_plain(plain, tmp_path):
    tree = tmp_path / "src"
    make_sample_tree(tree)
    vault = f"file://{tmp_path / 'vault'}"
    assert plain("init", vault).code == 0
    url = f"http://127.0.0.1:{free_port()}/api"
    (plain.home / "profiles.toml").write_text(f'active = "prod"\n[profiles.prod]\nPREFECT_API_URL = "{url}"\n')
    via_profile = plain("backup", "files", str(tree), "--vault", vault)
    assert via_profile.code == ExitCode.USAGE and url in via_profile.err
    forced_plain = plain("backup", "files", str(tree), "--vault", vault, env={"SEAWALL_PREFECT": "off"})
    assert forced_plain.code == 0, forced_plain.err
    _no_prefect(forced_plain)


def test_demo_with_a_down_api_fails_at_once_and_leaves_nothing(plain, tmp_path):
    """#14: a failed demo used to delete its folder under a still-running ephemeral server (30 lines of
    tracebacks). Now: no server of its own; a configured API that is down is one line, before anything
    is created."""
    scratch = tmp_path / "tmp"  # the demo makes its folder with tempfile, under TMPDIR
    scratch.mkdir()
    url = f"http://127.0.0.1:{free_port()}/api"
    run = plain("demo", env={"PREFECT_API_URL": url, "TMPDIR": str(scratch)})
    assert run.code == ExitCode.USAGE and len(run.err.strip().splitlines()) == 1 and url in run.err
    assert "Traceback" not in run.err + run.out
    assert list(scratch.iterdir()) == []
    _no_prefect(run)

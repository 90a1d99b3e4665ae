"""`seawall retention` end to end: dry run with reasons, --apply, busy vault, bad flags and policies."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from seawall.errors import ExitCode
from seawall.lease import shared_lease
from seawall.vault import open_vault
from tests.e2e.conftest import SEAWALL, Result

PASSPHRASE = "correct horse"
# Until `seawall.cli.app.run` registers the command, run the same app with it added.
_WITH_RETENTION = ("from seawall.cli import app; from seawall.cli.retention import register; "
                   "register(app.app); app.run()")


@pytest.fixture(scope="module")
def registered() -> bool:
    out = subprocess.run([SEAWALL, "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    return " retention " in out.stdout


@pytest.fixture
def retention(cli, registered, prefect_server, tmp_path):
    """`retention(*args)` runs `seawall retention ...`; other commands go through `cli`."""

    def run(*args: str, env: dict | None = None) -> Result:
        if registered:
            return cli("retention", *args, env=env)
        env = dict(os.environ, PREFECT_API_URL=prefect_server["url"], PREFECT_HOME=prefect_server["home"],
                   SEAWALL_PASSPHRASE=PASSPHRASE, COLUMNS="200", **(env or {}))
        proc = subprocess.run([sys.executable, "-c", _WITH_RETENTION, "retention", *args], env=env,
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def vault_with_three(cli, tmp_path) -> str:
    url = f"file://{tmp_path / 'vault'}"
    assert cli("init", url).code == 0
    tree = tmp_path / "tree"
    tree.mkdir()
    for n in range(3):
        (tree / f"file{n}.bin").write_bytes(os.urandom(300_000))
        (tree / "changing.txt").write_text(f"version {n}")
        result = cli("backup", "files", str(tree), "--vault", url, "--dataset", "www")
        assert result.code == 0, result.err
    return url


def backup_ids(cli, url: str) -> list[str]:
    return [b["backup_id"] for b in cli("list", "--vault", url, "--json").json()["backups"]]


def test_dry_run_prints_the_plan_with_reasons_and_deletes_nothing(cli, retention, vault_with_three):
    before = backup_ids(cli, vault_with_three)
    result = retention("--vault", vault_with_three, "--keep-last", "1")
    assert result.code == 0, result.err
    assert "last 1/1" in result.out and result.out.count("no keep rule selects it") == 2
    assert "dry run: would remove 2 backups and free" in result.out and "--apply" in result.out
    assert backup_ids(cli, vault_with_three) == before


def test_apply_deletes_and_collects_garbage(cli, retention, vault_with_three, tmp_path):
    newest = backup_ids(cli, vault_with_three)[-1]
    repack_all = {"SEAWALL_GC_MAX_UNUSED": "0"}  # repack any pack with an unused byte: all of it is freed
    result = retention("--vault", vault_with_three, "--keep-last", "1", "--apply", "--json", env=repack_all)
    assert result.code == 0, result.err
    data = result.json()
    assert data["dry_run"] is False and len(data["pruned"]["removed"]) == 2
    assert {b["action"] for b in data["backups"]} == {"keep", "remove"}
    gc = data["pruned"]["gc"]
    # Freed: the unreferenced chunks, give or take the pack headers' entries (41 bytes per chunk)
    assert data["gc"]["bytes_unreferenced"] > 0 and gc["packs_repacked"] + gc["packs_deleted"] > 0
    assert abs(gc["bytes_freed"] - data["gc"]["bytes_unreferenced"]) < 41 * gc["chunks_repacked"] + 4096
    assert backup_ids(cli, vault_with_three) == [newest]
    verified = cli("verify", "--vault", vault_with_three, "--read-data", "--json")
    assert verified.code == 0 and verified.json()["ok"] is True


def test_busy_vault_exits_5(cli, retention, vault_with_three):
    vault = open_vault(vault_with_three, PASSPHRASE)
    with shared_lease(vault, "backup www"):
        busy = retention("--vault", vault_with_three, "--keep-last", "1", "--apply")
        dry = retention("--vault", vault_with_three, "--keep-last", "1")
    assert busy.code == ExitCode.BUSY, busy.err
    assert "busy" in busy.err and "backup www" in busy.err and "Traceback" not in busy.err
    assert len(busy.err.strip().splitlines()) == 1
    assert dry.code == 0, dry.err  # a dry run takes no lease
    assert len(backup_ids(cli, vault_with_three)) == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--keep-last", "1", "--dryrun"], "No such option"),
    (["--keep-lats", "1"], "No such option"),
    (["--keep-last", "0"], "keeps nothing"),
    ([], "no retention rule given"),
    (["--keep-last", "2", "--min-redundancy", "5"], "contradicts"),
    (["--keep-within", "6m"], "not a duration"),
])
def test_bad_flags_and_policies_exit_2(retention, tmp_path, args, message):
    result = retention("--vault", f"file://{tmp_path / 'nowhere'}", *args)
    assert result.code == ExitCode.USAGE, (result.out, result.err)
    assert message in result.err


def test_help_lists_the_rules(retention):
    result = retention("--help")
    assert result.code == 0
    assert all(f"--keep-{rule}" in result.out for rule in ("last", "daily", "weekly", "within"))
    assert "--dry-run" in result.out and "--apply" in result.out

"""What a `seawall restore` / `seawall backup postgres` process loads before its flow starts, and
that the one-command app it parses with behaves as the full one (help, usage errors, exit codes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.main import get_command

from seawall.cli import app as app_module

ENV = {**os.environ, "COLUMNS": "120", "SEAWALL_PASSPHRASE": "x", "SEAWALL_PREFECT": "off"}


def seawall(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seawall.cli.entry", *args], capture_output=True, text=True,
                          env=ENV, timeout=120)


def test_hot_command_holds_one_command_and_puts_the_app_back():
    def names(group) -> set[str]:
        return set(group.commands)

    full = get_command(app_module.app)
    with app_module._hot_command(["restore", "x"]):
        group = get_command(app_module.app)
        assert names(group) == {"restore"}
    with app_module._hot_command(["backup", "postgres", "--dsn", "x"]):
        group = get_command(app_module.app)
        assert names(group) == {"backup"} and names(group.commands["backup"]) == {"postgres"}
    assert names(get_command(app_module.app)) == names(full)
    assert names(get_command(app_module.app).commands["backup"]) == names(full.commands["backup"])


@pytest.mark.parametrize("argv", [["--debug", "restore", "x"], ["backup", "files", "/x"], ["list"], [],
                                  ["backup"], ["restored"]])
def test_other_command_lines_take_the_ordinary_path(argv):
    assert app_module._hot_command(argv) is None


@pytest.mark.parametrize("args", [
    ["--help"],
    ["--vault", "file:///nonexistent/v", "--port", "abc"],
    ["--vault", "file:///nonexistent/v", "--bogus"],
    ["--vault", "file:///nonexistent/v", "--to", "/tmp/x", "--to-datadir", "/tmp/y"],
])
def test_restore_prints_and_exits_as_through_the_full_app(args):
    hot = seawall("restore", "b1", *args)  # the one-command app
    full = seawall("--verbose", "restore", "b1", *args)  # a global option: every command registered
    assert (hot.returncode, hot.stdout, hot.stderr) == (full.returncode, full.stdout, full.stderr)


@pytest.mark.parametrize("args", [
    ["--help"],
    ["--dsn", "x", "--vault", "file:///nonexistent/v", "--compress-level", "50"],
    ["--dsn", "x", "--vault", "file:///nonexistent/v", "--method", "foo"],
    ["--vault", "file:///nonexistent/v"],
])
def test_backup_postgres_prints_and_exits_as_through_the_full_app(args):
    hot = seawall("backup", "postgres", *args)
    full = seawall("--verbose", "backup", "postgres", *args)
    assert (hot.returncode, hot.stdout, hot.stderr) == (full.returncode, full.stdout, full.stderr)


def test_the_cli_modules_load_neither_rich_nor_click():
    """rich and Click are imported when something is drawn (or by a command that needs them)."""
    code = ("import sys; import seawall.cli.app, seawall.cli.pg, seawall.cli.common; "
            "print(sorted(m for m in ('rich', 'click') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    assert out.stdout.strip() == "[]"


def test_a_usage_error_still_prints_through_rich(capsys):
    from seawall.cli.output import fail

    with pytest.raises(SystemExit) as exc:
        fail("bad [thing]")
    assert exc.value.code == 2
    assert "seawall: error: bad [thing]" in capsys.readouterr().err

"""CLI output: one-line errors with stable exit codes, JSON mode, and progress bars."""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Iterator
from typing import Any, NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from seawall import progress as progress_hook
from seawall.errors import ExitCode, SeawallError

console = Console() if sys.stdout.isatty() else Console(width=200)
err_console = Console(stderr=True)


class State:
    debug = False
    verbose = False


def fail(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    err_console.print(f"[bold red]seawall: error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def exit_if_corrupt(vault_url: str, keys: list[str]) -> None:
    """Exit 3 naming the manifests that did not open (called after the listing was printed)."""
    if keys:
        names = ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
        fail(f"{len(keys)} manifest(s) in {vault_url} are corrupt or forged: {names} — "
             "run `seawall verify`, and restore the vault from a copy", ExitCode.INTEGRITY)


@contextlib.contextmanager
def handled_errors() -> Iterator[None]:
    """Turn exceptions into one line + exit code; tracebacks only with --debug."""
    try:
        yield
    except (click.exceptions.Exit, typer.Exit):
        raise
    except SeawallError as exc:
        if State.debug:
            traceback.print_exc()
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug or an untranslated SDK error: say so, keep the code apart
        if State.debug:
            traceback.print_exc()
        fail(f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
             "(run with --debug for the traceback)", ExitCode.FAILURE)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Draw a rich progress bar per phase when stdout is a terminal."""
    if not (enabled and sys.stdout.isatty()):
        yield
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bars:
        tasks: dict[str, Any] = {}

        def hook(phase: str, advance: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total)
            elif total is not None:
                bars.update(tasks[phase], total=total)
            if advance:
                bars.advance(tasks[phase], advance)

        with progress_hook.installed(hook):
            yield

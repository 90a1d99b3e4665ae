"""CLI output: one-line errors with stable exit codes, JSON mode, and progress bars.

rich is imported when something is drawn, not with this module: a `--json` run (the benchmarks',
a scheduler's) never draws, and rich's console, markup and progress modules cost ~25 ms of every
CLI process's start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from seawall import progress as progress_hook
from seawall.errors import ExitCode, Interrupted, SeawallError, stop_signal

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A rich Console made on first use (attribute access), then used as is."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            if self._stderr:
                self._console = Console(stderr=True)
            else:  # a pipe or a file: wide lines, as a log reader wants them
                self._console = Console() if sys.stdout.isatty() else Console(width=200)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


console = _LazyConsole(stderr=False)
err_console = _LazyConsole(stderr=True)


class State:
    debug = False
    verbose = False
    stopping = False


def fail(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    from rich.markup import escape

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
    except typer.Exit:
        raise
    except SeawallError as exc:
        if State.debug:
            traceback.print_exc()
        fail(str(exc), exc.exit_code)
    except Exception as exc:  # a bug or an untranslated SDK error: say so, keep the code apart
        if _click_exit(exc):
            raise
        if State.debug:
            traceback.print_exc()
        fail(f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
             "(run with --debug for the traceback)", ExitCode.FAILURE)
    except BaseException as exc:
        signum = stop_signal(exc)
        if signum is None:
            raise
        exit_soon(128 + signum)  # the cleanup ran on the way here; threads must not hold the exit up
        fail(f"interrupted by {signal.Signals(signum).name}: stopped; leases released, a running backup "
             "is recorded FAILED", 128 + signum)


def _click_exit(exc: Exception) -> bool:
    """A Click `Exit` (a library's own Click command, e.g. Prefect's): passed on like typer's.
    Click is not imported for this: if nothing loaded it, nothing raised one."""
    click = sys.modules.get("click")
    return click is not None and isinstance(exc, click.exceptions.Exit)


#: After a stop signal, the process is gone within this many seconds whatever is still running
#: (systemd and Kubernetes give 10 to 30 s before SIGKILL; the issue asks for 5).
STOP_DEADLINE = 4.0


def exit_soon(code: int, after: float = STOP_DEADLINE) -> None:
    """Make sure the process exits with `code` within `after` seconds (worker threads still
    reading a file or a socket are not joined past that)."""
    def _exit() -> None:
        if State.debug:  # what held the exit up
            import faulthandler

            faulthandler.dump_traceback(all_threads=True)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)

    timer = threading.Timer(after, _exit)
    timer.daemon = True
    timer.start()


def install_log_lines() -> None:
    """seawall's own warnings (a lease waited for or broken, a renewal that failed) as one
    `seawall: ...` line each on stderr."""
    import logging

    handler = logging.StreamHandler()  # sys.stderr at emit time: the redacting stream
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("seawall: %(message)s"))
    logger = logging.getLogger("seawall")
    if not any(getattr(h, "_seawall_cli", False) for h in logger.handlers):
        handler._seawall_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def install_stop_handlers() -> None:
    """SIGTERM and SIGINT raise `Interrupted` in the main thread; the process ends within
    STOP_DEADLINE seconds of the first signal whatever the cleanup does. (No "second signal ends
    it at once": Prefect re-sends the SIGTERM it caught to the previous handler when its flow
    engine has recorded the crash, and that must not cut our own cleanup short.)

    The deadline is armed by a thread watching the signal wakeup fd, not by the handler: while a
    Prefect flow runs, Prefect's own SIGTERM handler is installed instead of ours (it raises
    TerminationSignal), and the wakeup fd sees every signal whichever handler runs.
    """
    def handler(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=_watch_signals, args=(read_end,), name="seawall-stop", daemon=True).start()


def _watch_signals(read_end: int) -> None:
    while data := os.read(read_end, 64):
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGINT) and not State.stopping:
                State.stopping = True
                exit_soon(128 + signum)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Draw a rich progress bar per phase when stdout is a terminal."""
    if not (enabled and sys.stdout.isatty()):
        yield
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    # done / total bytes, speed, elapsed and the ETA (shown once the phase knows its total)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console.get(), transient=False) as bars:
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

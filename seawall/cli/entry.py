"""Console-script entry point: a tiny dispatcher that keeps hot paths light.

`seawall wal-push` / `wal-get` are called by PostgreSQL once per WAL segment, so they must not
import typer, rich or Prefect. Everything else goes to the typer app; Prefect's environment
defaults are set here, before any module that could import Prefect is loaded.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from typing import NoReturn

FAST_COMMANDS = {"wal-push", "wal-get", "wal-async"}
_gc_paused = False


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["wal-push"] and "--async" in argv:
        from seawall.postgres.walack import acknowledged

        if acknowledged(argv[1:]):  # the push daemon's word on this file: answered before any other import
            sys.exit(0)
    from seawall import redact

    redact.install_streams()  # everything printed, by us or a library, is redacted
    redact.add_secrets_from_env()
    argv = sys.argv[1:]
    if argv and argv[0] in FAST_COMMANDS:
        from seawall.cli.wal import main as wal_main

        sys.exit(wal_main(argv))
    from seawall import kdf_ahead

    if kdf_ahead.hot_command(argv):
        pause_gc()
    kdf_ahead.start_from_argv(argv)  # scrypt (restore, backup postgres) overlaps the imports below
    from seawall.cli.runtime import prepare_environment

    prepare_environment()
    from seawall.cli.app import run

    try:
        run()
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            raise  # a message to print: the interpreter's own exit prints it
        exit_now(exc.code or 0)
    exit_now(0)


def pause_gc() -> None:
    """No cyclic garbage collection while the CLI imports and parses, until `resume_gc`.

    Imports create ~50,000 long-lived objects (modules, classes, functions), almost none of them
    garbage, and every ~700 new objects start a collection: ~100 young, ~10 middle-generation and,
    in the flow, a full pass over all of them, ~55 ms of an incremental backup in all (gc.callbacks,
    bench/CLI.md), for next to nothing freed. Reference counting still frees whatever is not in a
    cycle. Only for the hot commands (every incremental backup and delta restore is one); their
    `run_flow` calls `resume_gc` before the flow runs, and a command that fails first exits soon.
    """
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def resume_gc() -> None:
    """Turn collection back on if `pause_gc` turned it off (a no-op otherwise: tests, other commands).

    What start-up made is frozen first (`gc.freeze`: never traversed again), so the flow's own
    passes only look at the flow's objects; turning collection on alone would only move the
    passes over the start-up objects into the flow. The cost: a reference cycle made during start-up
    that later becomes garbage (a few parsing objects) stays until the process exits.
    """
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def exit_now(code: int) -> NoReturn:
    """End the process once a command has finished: flush, run the exit handlers, then `os._exit`.

    The normal interpreter teardown clears every module and collects the heap a command left
    (a backup's manifests, pydantic's schemas): ~0.17 CPU-s of a 0.85 CPU-s incremental backup,
    for nothing. It is skipped only when nothing could still need it: Prefect not loaded (its
    API log and event workers flush from their own exit hooks and threads) and no non-daemon
    thread alive (a pool still finishing work). What the teardown would do that matters is done
    here first: streams and logging flushed, atexit handlers run (temporary directories,
    `weakref.finalize`), then the streams flushed again for what those handlers printed.
    """
    import threading

    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    if "prefect" in sys.modules or others:
        sys.exit(code)
    import atexit
    import logging

    _flush()
    logging.shutdown()
    atexit._run_exitfuncs()
    _flush()
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: the interpreter's exit ignores it too
            stream.flush()


if __name__ == "__main__":
    main()

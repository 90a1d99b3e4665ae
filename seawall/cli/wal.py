"""`seawall wal-push` / `seawall wal-get`: PostgreSQL's archive_command and restore_command.

PostgreSQL runs these once per 16 MiB segment, so they use argparse and import nothing heavy
(no typer, rich, Prefect or pydantic). wal-push returns an exit code from `seawall.errors.ExitCode`;
wal-get returns 1 when the file is not archived and `ABORT_RECOVERY` on any other failure.
Errors are one line on stderr (tracebacks only with `--debug`); secrets are never printed.

    archive_command = 'seawall wal-push %p --vault file:///srv/vault --passphrase-file /etc/seawall/pass'
    restore_command = 'seawall wal-get %f %p --vault file:///srv/vault --passphrase-file /etc/seawall/pass'

The vault URL may come from SEAWALL_VAULT and the passphrase from SEAWALL_PASSPHRASE.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable

from seawall.errors import ConfigError, ExitCode, ObjectNotFound, SeawallError

VAULT_ENV = "SEAWALL_VAULT"
PASSPHRASE_ENV = "SEAWALL_PASSPHRASE"
# A restore_command exiting above 125 makes PostgreSQL abort recovery (FATAL) instead of taking the
# failure for "no such file" and ending recovery early: a silent partial restore (xlogarchive.c,
# `wait_result_is_any_signal(rc, true)`). wal-get uses it for every failure except "not archived".
ABORT_RECOVERY = ExitCode.ABORT_RECOVERY
GET_ATTEMPTS = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 with usage; we want one line
        raise ConfigError(f"{message}", hint=f"see `seawall {self.prog.split()[-1]} --help`")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vault", default=os.environ.get(VAULT_ENV),
                        help=f"vault URL (default: ${VAULT_ENV})")
    parser.add_argument("--passphrase-file", help=f"file holding the vault passphrase (default: ${PASSPHRASE_ENV})")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"seawall {command}")
    if command == "wal-push":
        parser.description = "Archive one WAL file (archive_command = 'seawall wal-push %%p ...')."
        parser.add_argument("path", help="the WAL file (%%p)")
        parser.add_argument("--sysid", help="system identifier, for history/backup files pushed from "
                                            "outside the data directory")
    else:
        parser.description = "Restore one WAL file (restore_command = 'seawall wal-get %%f %%p ...')."
        parser.add_argument("name", help="the WAL file name (%%f)")
        parser.add_argument("dest", help="where to write it (%%p)")
    _common(parser)
    return parser


def _passphrase(passphrase_file: str | None) -> str | None:
    from seawall.crypto import require_passphrase

    if passphrase_file:
        try:
            with open(passphrase_file) as fh:
                return require_passphrase(fh.read().rstrip("\r\n"))
        except OSError as exc:
            raise ConfigError(f"cannot read passphrase file {passphrase_file}: {exc.strerror}") from None
    return os.environ.get(PASSPHRASE_ENV) or None  # None: a KMS key wrapper may unlock the vault


def _archive(args: argparse.Namespace):
    from seawall.postgres.wal import WalArchive
    from seawall.vault import open_vault

    if not args.vault:
        raise ConfigError("no vault given", hint=f"pass --vault URL or set {VAULT_ENV}")
    return WalArchive(open_vault(args.vault, _passphrase(args.passphrase_file)))


def push(args: argparse.Namespace) -> int:
    outcome = _archive(args).push(args.path, sysid=args.sysid)
    if outcome != "archived":
        print(f"seawall wal-push: {os.path.basename(args.path)} {outcome}", file=sys.stderr)
    return ExitCode.OK


def get(args: argparse.Namespace) -> int:
    """Transient errors are retried here: PostgreSQL would otherwise abort recovery on them."""
    from seawall.errors import RetryableError

    for attempt in range(1, GET_ATTEMPTS + 1):
        try:
            _archive(args).get(args.name, args.dest)
            return ExitCode.OK
        except RetryableError:
            if attempt == GET_ATTEMPTS:
                raise
            time.sleep(attempt)
    return ExitCode.FAILURE  # not reached


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"wal-push": push, "wal-get": get}


def main(argv: list[str] | None = None) -> int:
    """Run `wal-push` or `wal-get`; `argv` starts with the command name. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "wal-push"
    debug = "--debug" in argv
    try:
        return COMMANDS[command](build_parser(command).parse_args(argv))
    except ObjectNotFound as exc:
        # PostgreSQL probes for files that do not exist (future timelines' history files): quiet.
        print(f"seawall {command}: {exc.message}", file=sys.stderr)
        return ExitCode.FAILURE
    except SeawallError as exc:
        if debug:
            traceback.print_exc()
        hint = f" — {exc.hint}" if exc.hint else ""
        print(f"seawall {command}: error: {exc.message}{hint}", file=sys.stderr)
        return ABORT_RECOVERY if command == "wal-get" else exc.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as exc:  # a bug: one line, the traceback only on request
        if debug:
            traceback.print_exc()
        print(f"seawall {command}: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug)",
              file=sys.stderr)
        return ABORT_RECOVERY if command == "wal-get" else ExitCode.FAILURE

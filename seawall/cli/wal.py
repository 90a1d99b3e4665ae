"""`seawall wal-push` / `seawall wal-get`: PostgreSQL's archive_command and restore_command.

PostgreSQL runs these once per 16 MiB segment, so they use argparse and import nothing heavy
(no typer, rich, Prefect or pydantic). wal-push returns an exit code from `seawall.errors.ExitCode`;
wal-get returns 1 when the file is not archived and `ABORT_RECOVERY` on any other failure.
Errors are one line on stderr (tracebacks only with `--debug`); secrets are never printed.

    archive_command = 'seawall wal-push %p --vault file:///srv/vault --passphrase-file /etc/seawall/pass'
    restore_command = 'seawall wal-get %f %p --vault file:///srv/vault --passphrase-file /etc/seawall/pass'

The vault URL may come from SEAWALL_VAULT and the passphrase from SEAWALL_PASSPHRASE.

`--async` (wal-push) hands the segment to a push daemon (`seawall.postgres.walpushd`) that pushes
every ready segment in parallel with a key it unlocked once; `--prefetch N` (wal-get) lets a get
daemon fetch the next N segments in parallel. `seawall wal-async status|stop` lists or stops them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable

from seawall.errors import ConfigError, ExitCode, ObjectNotFound, SeawallError
from seawall.postgres.walspool import SPOOL_ENV

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


def _positive(kind: type, minimum: float) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
        return value
    return parse


def _size(text: str) -> int:
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    body, unit = text.strip().lower().rstrip("ib").rstrip(), ""
    if body and body[-1] in units:
        body, unit = body[:-1], body[-1]
    try:
        return int(float(body) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 256MiB)") from None


def _async_options(parser: argparse.ArgumentParser, *, get: bool) -> None:
    parser.add_argument("--spool", help=f"spool root on a local disk (default: ${SPOOL_ENV} or "
                                        "$TMPDIR/seawall-spool-UID)")
    parser.add_argument("--jobs", type=_positive(int, 1), default=4, help="parallel transfers (default 4)")
    parser.add_argument("--idle", type=_positive(float, 0), default=30.0,
                        help="the daemon exits after this many idle seconds (default 30)")
    if get:
        parser.add_argument("--prefetch", type=_positive(int, 0), default=0,
                            help="segments to fetch ahead in parallel (default 0: off)")
        parser.add_argument("--spool-max", type=_size, default=256 << 20,
                            help="most bytes of prefetched segments kept in the spool (default 256MiB)")
    else:
        parser.add_argument("--async", dest="async_", action="store_true",
                            help="hand the file to the push daemon; exit 0 once it is durable in the vault")
        parser.add_argument("--timeout", type=_positive(float, 1), default=60.0,
                            help="--async: seconds to wait for the daemon's verdict (default 60)")


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"seawall {command}")
    if command == "wal-push":
        parser.description = "Archive one WAL file (archive_command = 'seawall wal-push %%p ...')."
        parser.add_argument("path", help="the WAL file (%%p)")
        parser.add_argument("--sysid", help="system identifier, for history/backup files pushed from "
                                            "outside the data directory")
        _async_options(parser, get=False)
    elif command == "wal-get":
        parser.description = "Restore one WAL file (restore_command = 'seawall wal-get %%f %%p ...')."
        parser.add_argument("name", help="the WAL file name (%%f)")
        parser.add_argument("dest", help="where to write it (%%p)")
        _async_options(parser, get=True)
    elif command == "wal-async":
        parser.description = "List or stop the WAL push/prefetch daemons of this user."
        parser.add_argument("action", choices=("status", "stop"))
        parser.add_argument("--spool", help=f"spool root (default: ${SPOOL_ENV} or $TMPDIR/seawall-spool-UID)")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--debug", action="store_true", help="show tracebacks")
        return parser
    else:  # the daemons, started by wal-push --async / wal-get --prefetch
        parser.add_argument("--wal-dir", required=True)
        parser.add_argument("--sysid")
        _async_options(parser, get=True)
        parser.set_defaults(async_=True)
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


def _spool(args: argparse.Namespace, kind: str, wal_dir: str):
    from seawall.postgres.walspool import SpoolDir, default_root

    if not args.vault:
        raise ConfigError("no vault given", hint=f"pass --vault URL or set {VAULT_ENV}")
    return SpoolDir.of(os.path.abspath(args.spool or default_root()), kind, wal_dir, args.vault)


def _daemon_args(args: argparse.Namespace, command: str, wal_dir: str, spool) -> list[str]:
    """The daemon's command line: the same vault, passphrase source and limits as this call."""
    argv = [command, "--wal-dir", wal_dir, "--spool", spool.root, "--vault", args.vault,
            "--jobs", str(args.jobs), "--idle", str(args.idle)]
    if args.passphrase_file:
        argv += ["--passphrase-file", os.path.abspath(args.passphrase_file)]
    if getattr(args, "sysid", None):
        argv += ["--sysid", args.sysid]
    if command == "wal-get-daemon":
        argv += ["--prefetch", str(args.prefetch), "--spool-max", str(args.spool_max)]
    return argv


def push(args: argparse.Namespace) -> int:
    if args.async_:
        from seawall.postgres import walack
        from seawall.postgres.walasync import push_async

        wal_dir = os.path.dirname(os.path.abspath(args.path))
        spool = _spool(args, "push", wal_dir)
        timeout = max(1.0, args.timeout - walack.spent)  # the fast path may have waited already
        outcome = push_async(args.path, spool, _daemon_args(args, "wal-push-daemon", wal_dir, spool),
                             timeout=timeout)
    else:
        outcome = _archive(args).push(args.path, sysid=args.sysid)
    if outcome != "archived":
        print(f"seawall wal-push: {os.path.basename(args.path)} {outcome}", file=sys.stderr)
    return ExitCode.OK


def get(args: argparse.Namespace) -> int:
    """Transient errors are retried here: PostgreSQL would otherwise abort recovery on them."""
    from seawall.errors import RetryableError

    if args.prefetch:
        from seawall.postgres.walasync import get_prefetched

        wal_dir = os.path.dirname(os.path.abspath(args.dest))
        spool = _spool(args, "get", wal_dir)
        if get_prefetched(args.name, args.dest, spool, _daemon_args(args, "wal-get-daemon", wal_dir, spool)):
            return ExitCode.OK
    for attempt in range(1, GET_ATTEMPTS + 1):
        try:
            _archive(args).get(args.name, args.dest)
            return ExitCode.OK
        except RetryableError:
            if attempt == GET_ATTEMPTS:
                raise
            time.sleep(attempt)
    return ExitCode.FAILURE  # not reached


def push_daemon(args: argparse.Namespace) -> int:
    from seawall.postgres.walpushd import PushDaemon, trim_log

    spool = _spool(args, "push", args.wal_dir)
    trim_log(spool.log_path)
    return PushDaemon(spool, args.wal_dir, lambda: _archive(args), jobs=args.jobs, idle=args.idle,
                      sysid=args.sysid).run()


def get_daemon(args: argparse.Namespace) -> int:
    from seawall.postgres.walprefetch import GetDaemon
    from seawall.postgres.walpushd import trim_log

    spool = _spool(args, "get", args.wal_dir)
    trim_log(spool.log_path)
    return GetDaemon(spool, lambda: _archive(args), ahead=args.prefetch, jobs=args.jobs, idle=args.idle,
                     spool_max=args.spool_max).run()


def daemons(args: argparse.Namespace) -> int:
    from seawall.postgres.walspool import default_root, list_daemons, stop_daemon

    root = os.path.abspath(args.spool or default_root())
    found = list_daemons(root)
    if args.action == "stop":
        for entry in found:
            if entry["pid"]:
                entry["stopped"] = stop_daemon(entry["pid"], entry["spool"])
    if args.json:
        import json

        print(json.dumps({"spool": root, "daemons": found}))
    else:
        for entry in found:
            state = f"pid {entry['pid']}" if entry["pid"] else "not running"
            if entry.get("stopped"):
                state += ", stopped"
            print(f"{entry['kind']:5} {state:24} {entry['spool']}")
        if not found:
            print(f"no WAL daemon spool under {root}")
    return ExitCode.OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "wal-push": push, "wal-get": get, "wal-async": daemons,
    "wal-push-daemon": push_daemon, "wal-get-daemon": get_daemon,
}


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


if __name__ == "__main__":  # the daemons: `python -m seawall.cli.wal wal-push-daemon ...`
    from seawall import redact

    redact.install_streams()
    redact.add_secrets_from_env()
    sys.exit(main())

"""Console-script entry point: a tiny dispatcher that keeps hot paths light.

`seawall wal-push` / `wal-get` are called by PostgreSQL once per WAL segment, so they must not
import typer, rich or Prefect. Everything else goes to the typer app; Prefect's environment
defaults are set here, before any module that could import Prefect is loaded.
"""

from __future__ import annotations

import sys

FAST_COMMANDS = {"wal-push", "wal-get", "wal-async"}


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
    from seawall.cli.runtime import prepare_environment

    prepare_environment()
    from seawall.cli.app import run

    run()


if __name__ == "__main__":
    main()

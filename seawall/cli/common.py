"""Shared CLI plumbing: passphrase sources, vault opening, and running flows quietly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from seawall.cli.output import State
from seawall.cli.runtime import prepare_environment, quiet_prefect_console
from seawall.errors import ConfigError
from seawall.redact import add_secret
from seawall.stores import open_store
from seawall.vault import Vault

PASSPHRASE_ENV = "SEAWALL_PASSPHRASE"

VaultOpt = typer.Option(..., "--vault", "-v", help="Vault URL: file:///path, s3://bucket/prefix?region=..., sftp://user@host/path")
PassFileOpt = typer.Option(None, "--passphrase-file", help="Read the vault passphrase from this file "
                           "(default: the SEAWALL_PASSPHRASE environment variable).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output (schema in README).")


def load_passphrase(passphrase_file: Path | None) -> str | None:
    """The passphrase from --passphrase-file, else SEAWALL_PASSPHRASE (None: none given; a vault
    with a KMS key wrapper unlocks without one); exported for the flows."""
    if passphrase_file is not None:
        try:
            text = passphrase_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read passphrase file {passphrase_file}: {exc.strerror}") from None
        os.environ[PASSPHRASE_ENV] = text  # flows read it here; never a flow parameter
        add_secret(text)
    return os.environ.get(PASSPHRASE_ENV) or None


def open_vault_cli(url: str, passphrase_file: Path | None) -> Vault:
    return Vault.open(open_store(url), load_passphrase(passphrase_file))


def run_flow(flow_fn: Any, **params: Any) -> Any:
    """Run a Prefect flow in-process with quiet console logging; exceptions propagate."""
    prepare_environment()
    import prefect  # noqa: F401  - configures logging, which we then quieten

    quiet_prefect_console(State.verbose or State.debug)
    return flow_fn(**params)

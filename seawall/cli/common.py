"""Shared CLI plumbing: passphrase sources, vault opening, flow parameters, and running flows quietly."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from seawall.cli.output import State
from seawall.cli.runtime import start_runtime
from seawall.errors import ConfigError
from seawall.redact import add_secret

if TYPE_CHECKING:
    from seawall.vault import Vault

PASSPHRASE_ENV = "SEAWALL_PASSPHRASE"

VaultOpt = typer.Option(..., "--vault", "-v", help="Vault URL: file:///path, s3://bucket/prefix?region=..., sftp://user@host/path")
PassFileOpt = typer.Option(None, "--passphrase-file", help="Read the vault passphrase from this file "
                           "(default: the SEAWALL_PASSPHRASE environment variable).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output (schema in README).")

# What flows take, per mode: blocks in Prefect mode (flow parameters are typed as blocks, and their
# SecretStr fields are stored masked), the Prefect-free configuration models in plain mode.
_MODELS = {
    "vault": ("blocks.vault", "VaultTarget", "seawall.configs.vault", "VaultConfig"),
    "postgres": ("blocks.postgres", "PostgresSource", "seawall.configs.postgres", "PostgresConfig"),
    "ssh": ("blocks.ssh", "SshHost", "seawall.configs.ssh", "SshConfig"),
    "node": ("blocks.drill", "PostgresNode", "seawall.configs.drill", "PostgresNodeConfig"),
    "switch": ("blocks.drill", "TrafficSwitchBlock", "seawall.configs.drill", "TrafficSwitchConfig"),
    "objectives": ("blocks.drill", "DrillObjectives", "seawall.configs.drill", "DrillObjectivesConfig"),
    "mariadb": ("blocks.mariadb", "MariaDBSource", "seawall.configs.mariadb", "MariaDBConfig"),
    "redis": ("blocks.redis", "RedisSource", "seawall.configs.redis", "RedisConfig"),
}


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
    from seawall.stores import open_store
    from seawall.vault import Vault

    return Vault.open(open_store(url), load_passphrase(passphrase_file))


def unlock_ahead(url: str, passphrase: str | None) -> None:
    """Start the scrypt of a local vault's first passphrase wrapper on a daemon thread
    (`seawall.kdf_ahead`), unless the entry point already did from the raw arguments: a caller
    that did not come through it (tests calling the typer app) still gets the overlap."""
    from seawall import kdf_ahead

    kdf_ahead.start(url, passphrase)


def check_dataset(dataset: str | None) -> None:
    """A usage error for a bad `--dataset` before any flow machinery starts (pydantic: imported late,
    it is not on `--help`'s path)."""
    if dataset:
        from seawall.manifest import validate_dataset

        validate_dataset(dataset)


def model(kind: str) -> Any:
    """The class a flow parameter of this kind is built from: a block in Prefect mode, else the
    configuration model (no Prefect import). Kinds: vault, postgres, ssh, node, switch, objectives."""
    import importlib

    from tasks.mode import prefect_mode

    block_module, block, config_module, config = _MODELS[kind]
    if prefect_mode():
        return getattr(importlib.import_module(block_module), block)
    return getattr(importlib.import_module(config_module), config)


def vault_param(url: str) -> Any:
    """A vault URL as a flow parameter: the URL itself, or a model holding its password as a secret
    (so a flow run's stored parameters never show it)."""
    from seawall.redact import redact

    return model("vault")(url=url) if redact(url) != url else url


def run_flow(flow_fn: Any, **params: Any) -> Any:
    """Run a flow in this process: plain with no Prefect API configured, else as a flow run on the
    API (checked first). Console logging stays quiet unless --verbose; exceptions propagate."""
    from seawall.cli.entry import resume_gc

    resume_gc()  # paused by the entry point while the CLI imported and parsed (hot commands)
    start_runtime(State.verbose or State.debug)
    return flow_fn(**params)


def run_reported(flow_fn: Any, params: dict[str, Any], *, failure: type[Exception], show: Callable[[Any], None],
                 json_out: bool, progress: bool = False) -> None:
    """Run a flow whose result is a report (a drill's, a verification's) and print it: with `--json`
    as JSON, else by `show`. A `failure` that carries its report prints it too, then exits with
    the failure's code (`--json`: the JSON is the whole output; else the error line follows)."""
    from seawall.cli.output import print_json, progress_bars

    try:
        with progress_bars(progress):
            report = run_flow(flow_fn, **params)
    except failure as exc:
        failed = getattr(exc, "report", None)
        if failed is not None:
            if json_out:
                print_json(failed.model_dump(mode="json"))
                raise typer.Exit(exc.exit_code) from None
            show(failed)
        raise
    if json_out:
        print_json(report.model_dump(mode="json"))
    else:
        show(report)

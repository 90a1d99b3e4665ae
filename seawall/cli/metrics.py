"""`seawall metrics`: Prometheus metrics for each vault, each with its own credentials.

Vaults come from `--vault URL` (the shared passphrase: `--passphrase-file` or SEAWALL_PASSPHRASE),
`--vault URL,passphrase-file=FILE` (that vault's own passphrase), `--vault-block NAME` (a saved
`seawall-vault` block: URL and secrets; needs the Prefect API) and `--policy FILE` (every vault the
policy names, a URL with its `passphrase_env` or a block, plus the datasets' RPO/RTO objectives as
`seawall_rpo_objective_seconds` / `seawall_rto_objective_seconds`).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from seawall.cli.common import PassFileOpt, load_passphrase
from seawall.cli.output import console, fail, handled_errors
from seawall.errors import ConfigError

PASSFILE_SUFFIX = ",passphrase-file="


def metrics_cmd(vault: list[str] | None = typer.Option(
                    None, "--vault", "-v", help="Vault URL, optionally with its own passphrase: "
                    "URL,passphrase-file=FILE (repeatable)."),
                vault_block: list[str] | None = typer.Option(
                    None, "--vault-block", help="Name of a saved seawall-vault block (repeatable; needs the "
                    "Prefect API)."),
                policy: Path | None = typer.Option(None, "--policy", "-p", help="Scrape every vault of this policy "
                                                   "file with its own credentials, and export its objectives."),
                port: int | None = typer.Option(None, "--port", help="Serve /metrics over HTTP on this port."),
                addr: str = typer.Option("127.0.0.1", "--addr", help="Address to listen on with --port."),
                textfile: Path | None = typer.Option(None, "--textfile", help="Write the textfile-collector "
                                                     "format to this file (atomically) and exit."),
                passphrase_file: Path | None = PassFileOpt) -> None:
    """Prometheus metrics per dataset and stage, from the vaults' manifests and ledgers."""
    from seawall import metrics

    with handled_errors():
        if (port is None) == (textfile is None):
            fail("give exactly one of --port N or --textfile PATH")
        if not (vault or vault_block or policy):
            fail("give the vaults: --vault URL, --vault-block NAME or --policy FILE")
        shared = load_passphrase(passphrase_file)
        sources = [_url_source(spec, shared) for spec in vault or []]
        sources += [_block_source(name) for name in vault_block or []]
        objectives = None
        if policy is not None:
            policy_sources, objectives = _policy_sources(policy)
            sources += policy_sources
        if textfile is not None:
            metrics.write_textfile(textfile, sources, objectives=objectives)
            console.print(f"wrote {textfile}")
            return
        console.print(f"serving http://{addr}:{port}/metrics for {', '.join(s.name for s in sources)}",
                      highlight=False)
        metrics.serve(sources, None, port, addr, objectives=objectives)


def _url_source(spec: str, shared: str | None):
    """`URL` (the shared passphrase) or `URL,passphrase-file=FILE`."""
    from seawall.metrics import url_source

    url, sep, file = spec.rpartition(PASSFILE_SUFFIX) if PASSFILE_SUFFIX in spec else (spec, "", "")
    return url_source(url, _read_passphrase(Path(file)) if sep else shared)


def _read_passphrase(path: Path) -> str:
    from seawall.redact import add_secret

    try:
        text = path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read passphrase file {path}: {exc.strerror}") from None
    add_secret(text)
    return text


def _block_source(name: str):
    """A saved VaultTarget block: it holds the URL and the vault's own secrets."""
    from seawall.cli.runtime import prepare_environment

    prepare_environment()
    from blocks.vault import VaultTarget
    from deployments.api import START_HINT, configured_api_url, probe
    from seawall.metrics import VaultSource

    url = configured_api_url()
    if url is None:  # never an ephemeral API: the block lives in the server the user runs
        raise ConfigError(f"the vault block {name!r} is kept by a Prefect server, and none is configured",
                          hint=START_HINT)
    probe(url)

    try:
        block = VaultTarget.load(name)
    except ValueError:
        raise ConfigError(f"no seawall-vault block named {name!r}", hint="save it first, or fix the name") from None
    return VaultSource(block.display(), block.open_vault)


def _policy_sources(path: Path):
    """Every vault of the policy with its own credentials, and each dataset's (RPO, RTO) in seconds."""
    from seawall.metrics import url_source
    from seawall.policy import load_policy

    policy = load_policy(path)
    sources = []
    for name, spec in policy.vaults.items():
        if spec.block:
            sources.append(_block_source(spec.block))
            continue
        passphrase = os.environ.get(spec.passphrase_env)  # SEAWALL_PASSPHRASE: --passphrase-file sets it too
        if passphrase is None:
            raise ConfigError(f"{path}: vaults.{name}: {spec.passphrase_env} is not set",
                              hint="export the vault's passphrase in it (or give --passphrase-file)")
        sources.append(url_source(spec.url, passphrase))
    objectives = {ds: (spec.rpo.total_seconds(), spec.rto.total_seconds()) for ds, spec in policy.datasets.items()}
    return sources, objectives

"""`seawall plan`, `seawall deploy` (policy file → Prefect) and `seawall metrics` (Prometheus)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from seawall.cli.common import JsonOpt, PassFileOpt, VaultOpt, load_passphrase
from seawall.cli.output import console, handled_errors, print_json

PolicyOpt = typer.Option(Path("seawall.yaml"), "--policy", "-p", help="The policy file (default ./seawall.yaml).")


def register(app: typer.Typer) -> None:
    """Add plan, deploy and metrics to the seawall app."""
    app.command("plan")(plan_cmd)
    app.command("deploy")(deploy_cmd)
    app.command("metrics")(metrics_cmd)


def _desired(policy_path: Path):
    from deployments.build import build, missing_env
    from seawall.errors import ConfigError
    from seawall.policy import load_policy

    policy = load_policy(policy_path)
    missing = missing_env(policy, dict(os.environ))
    if missing:
        raise ConfigError(f"{policy_path}: " + "; ".join(missing), hint="export the variables, then deploy again")
    return build(policy, policy_file=str(policy_path.absolute()))


def plan_cmd(policy: Path = PolicyOpt, json_out: bool = JsonOpt) -> None:
    """Validate the policy file and show what `seawall deploy` would create (no API calls)."""
    from dataclasses import asdict

    from seawall.cli.runtime import prepare_environment

    prepare_environment()
    with handled_errors():
        desired = _desired(policy)
        if json_out:
            print_json(asdict(desired) | {"webhooks": sorted(desired.webhooks)})
            return
        console.print(f"work pool: {desired.work_pool} (process)")
        for name, limit in desired.concurrency_limits.items():
            console.print(f"concurrency limit: {name} = {limit}")
        for d in desired.deployments:
            when = f"cron {d.cron!r} {d.timezone}" if d.cron else (
                "on " + ", ".join(t["expect"][0] for t in d.triggers) if d.triggers else "on demand")
            console.print(f"deployment {d.name}: {d.entrypoint.rsplit(':', 1)[1]}, {when}", highlight=False)
        for name in desired.webhooks:
            console.print(f"notification block: custom-webhook/{name}")
        for life in desired.lifecycles:
            steps = ", ".join(f"{cls} after {days}d" for days, cls in life.transitions)
            console.print(f"lifecycle rule for vault {life.vault}'s chunks: {steps}", highlight=False)
        for a in desired.automations:
            console.print(f"automation {a.name}: {a.description}", highlight=False)


def deploy_cmd(policy: Path = PolicyOpt, json_out: bool = JsonOpt) -> None:
    """Create or update deployments, concurrency limits, notification blocks and automations (idempotent)."""
    from seawall.cli.runtime import prepare_environment

    prepare_environment()
    with handled_errors():
        desired = _desired(policy)  # an invalid file stops here: nothing is deployed
        from deployments.apply import deploy

        changes = deploy(desired)
        if json_out:
            print_json({"policy": str(policy), "changes": changes})
            return
        for line in changes:
            console.print(line, highlight=False)
        console.print(f"{len(changes)} change(s)" if changes else "nothing to change: Prefect matches the policy")


def metrics_cmd(vault: list[str] = VaultOpt,
                port: int | None = typer.Option(None, "--port", help="Serve /metrics over HTTP on this port."),
                addr: str = typer.Option("127.0.0.1", "--addr", help="Address to listen on with --port."),
                textfile: Path | None = typer.Option(None, "--textfile", help="Write the textfile-collector "
                                                     "format to this file (atomically) and exit."),
                passphrase_file: Path | None = PassFileOpt) -> None:
    """Prometheus metrics per dataset and stage, from the vaults' manifests and ledgers."""
    from seawall import metrics

    with handled_errors():
        passphrase = load_passphrase(passphrase_file)
        if (port is None) == (textfile is None):
            from seawall.cli.output import fail

            fail("give exactly one of --port N or --textfile PATH")
        if textfile is not None:
            metrics.write_textfile(textfile, vault, passphrase)
            console.print(f"wrote {textfile}")
            return
        console.print(f"serving http://{addr}:{port}/metrics for {', '.join(vault)}")
        metrics.serve(vault, passphrase, port, addr)

"""`seawall plan` and `seawall deploy` (policy file → Prefect); registers `seawall metrics` too."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from seawall.cli.common import JsonOpt
from seawall.cli.output import console, handled_errors, print_json

PolicyOpt = typer.Option(Path("seawall.yaml"), "--policy", "-p", help="The policy file (default ./seawall.yaml).")


def register(app: typer.Typer) -> None:
    """Add plan, deploy and metrics to the seawall app."""
    app.command("plan")(plan_cmd)
    app.command("deploy")(deploy_cmd)
    from seawall.cli.metrics import metrics_cmd

    app.command("metrics")(metrics_cmd)


def _policy(policy_path: Path):
    from seawall.policy import load_policy

    return load_policy(policy_path)  # an invalid file stops here: exit 2, nothing deployed


def _desired(policy, policy_path: Path):
    from deployments.build import build

    return build(policy, dict(os.environ), policy_file=str(policy_path.absolute()))


def _check(policy, client) -> None:
    """Every block, work pool and webhook the policy references, or PolicyError naming each missing one."""
    from deployments.references import check_references
    from seawall.policy import PolicyError

    problems = check_references(policy, client, dict(os.environ))
    if problems:
        raise PolicyError(sorted(problems, key=lambda p: p.line))


def plan_cmd(policy: Path = PolicyOpt, json_out: bool = JsonOpt) -> None:
    """Validate the policy file and show what `seawall deploy` would create (changes nothing).

    With a Prefect API configured, also checks that every block, work pool and webhook the policy
    references exists; without one, those checks wait for `seawall deploy`.
    """
    from dataclasses import asdict

    from seawall.cli.runtime import prepare_environment

    prepare_environment()
    with handled_errors():
        spec = _policy(policy)
        checked = _check_if_configured(spec)
        desired = _desired(spec, policy)
        if json_out:
            print_json(asdict(desired) | {"webhooks": sorted(desired.webhooks), "references_checked": checked})
            return
        _print_plan(desired, spec)
        console.print("references (blocks, work pool, webhooks): " + (
            "all in place" if checked else "not checked: no Prefect API configured (`seawall deploy` checks them)"),
            highlight=False)


def _check_if_configured(policy) -> bool:
    from deployments.api import configured_api_url, connect

    if configured_api_url() is None:
        return False
    with connect() as client:
        _check(policy, client)
    return True


def _print_plan(desired, policy) -> None:
    console.print(f"work pool: {desired.work_pool} (process)", highlight=False)
    for name, limit in desired.concurrency_limits.items():
        console.print(f"concurrency limit: {name} = {limit}", highlight=False)
    for d in desired.deployments:
        when = f"cron {d.cron!r} {d.timezone}" if d.cron else (
            "on " + ", ".join(t["expect"][0] for t in d.triggers) if d.triggers else "on demand")
        console.print(f"deployment {d.name}: {d.entrypoint.rsplit(':', 1)[1]}, {when}", highlight=False)
    for i, name in enumerate(desired.webhooks):
        hook = policy.alerts.webhooks[i]
        source = f"URL from ${hook.url_env}" + ("" if desired.webhooks[name] else ": not set, deploy needs it") \
            if hook.url_env else "URL in the policy"
        console.print(f"notification block: custom-webhook/{name} ({source})", highlight=False)
    for life in desired.lifecycles:
        steps = ", ".join(f"{cls} after {days}d" for days, cls in life.transitions)
        console.print(f"lifecycle rule for vault {life.vault}'s chunks: {steps}", highlight=False)
    for a in desired.automations:
        console.print(f"automation {a.name}: {a.description}", highlight=False)


def deploy_cmd(policy: Path = PolicyOpt, json_out: bool = JsonOpt) -> None:
    """Create or update deployments, concurrency limits, notification blocks and automations (idempotent).

    Needs a running Prefect API (PREFECT_API_URL). Checks every block, work pool and webhook the
    policy references first: anything missing is reported with its policy line, exit 2, nothing deployed.
    """
    from seawall.cli.runtime import prepare_environment

    prepare_environment()
    with handled_errors():
        spec = _policy(policy)
        from deployments.api import connect
        from deployments.apply import deploy

        with connect() as client:
            _check(spec, client)
            changes = deploy(_desired(spec, policy), client)
        if json_out:
            print_json({"policy": str(policy), "changes": changes})
            return
        for line in changes:
            console.print(line, highlight=False)
        console.print(f"{len(changes)} change(s)" if changes else "nothing to change: Prefect matches the policy")

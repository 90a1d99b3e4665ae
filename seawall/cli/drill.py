"""`seawall drill failover` and `seawall drill restore`: run a drill, print its scorecard.

Exit codes: 0 PASSED; 4 every step passed but an RTO/RPO objective was missed; 1 the drill failed
(e.g. preflight: standby not streaming, lag over the RPO, archiving failing) or was aborted (the
original primary restored; the report says so); 2 bad input (same server twice, a standby of
another cluster, an unknown or changed SSH host key, not a data directory). With `--json` the
report is printed on stdout whatever the outcome.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from seawall.cli.common import JsonOpt, load_passphrase, model, run_reported, vault_param
from seawall.cli.output import console, fail, handled_errors
from seawall.units import human_seconds

drill_app = typer.Typer(no_args_is_help=True, help="Failover and restore drills with measured RTO/RPO.")
_COLOUR = {"PASSED": "green", "OBJECTIVE_MISSED": "yellow", "FAILED": "red", "ABORTED": "red"}


def _print_report(report) -> None:
    table = Table("step", "ok", "seconds", "detail")
    for s in report.steps:
        table.add_row(s.name, "[green]yes[/]" if s.ok else "[red]no[/]", f"{s.seconds or 0:.2f}", s.detail[:140])
    console.print(table)
    m = report.measurements
    console.print(f"[{_COLOUR.get(report.status, 'red')}]{report.status}[/] drill {report.drill_id}: RTO "
                  f"{human_seconds(m.rto_s)} (objective {human_seconds(report.rto_objective_s)}), writable after "
                  f"{human_seconds(m.rto_writable_s)}; RPO {human_seconds(m.rpo_s)} (objective "
                  f"{human_seconds(report.rpo_objective_s)}), {m.rpo_lost_transactions or 0} of "
                  f"{m.heartbeats_committed} heartbeat transactions lost", highlight=False)
    for note in report.notes:
        console.print(f"  note: {note}", highlight=False)


def _ssh_host(spec: str, identity: Path | None, known_hosts: Path | None):
    user, _, hostport = spec.rpartition("@")
    host, _, port = hostport.partition(":")
    if not host:
        fail(f"invalid --standby-ssh {spec!r}: use user@host[:port]")
    return model("ssh")(host=host, port=int(port or 22), username=user or None,
                   key_path=str(identity) if identity else None,
                   known_hosts_path=str(known_hosts) if known_hosts else None)


def _run_and_print(flow_fn, json_out: bool, **params) -> None:
    from seawall.drill.state import DrillFailed

    run_reported(flow_fn, params, failure=DrillFailed, show=_print_report, json_out=json_out)


@drill_app.command("failover")
def failover_cmd(
    primary_dsn: str = typer.Option(..., "--primary-dsn", help="Connection to the current primary."),
    primary_datadir: str = typer.Option(..., "--primary-datadir", help="The primary's data directory."),
    standby_dsn: str = typer.Option(..., "--standby-dsn", help="Connection to its streaming standby."),
    standby_datadir: str = typer.Option(..., "--standby-datadir", help="The standby's data directory."),
    standby_ssh: str | None = typer.Option(None, "--standby-ssh", help="user@host[:port]: operate the standby "
                                           "over SSH (as postgres, or through sudo -u postgres)."),
    standby_bindir: str | None = typer.Option(None, "--standby-bindir", help="pg_ctl's folder on the SSH host."),
    identity: Path | None = typer.Option(None, "--identity", help="SSH private key file."),
    known_hosts: Path | None = typer.Option(None, "--known-hosts", help="Extra known_hosts file."),
    route53_zone: str | None = typer.Option(None, "--route53-zone", help="Hosted zone id of the DB record."),
    route53_record: str | None = typer.Option(None, "--route53-record", help="Record UPSERTed to the primary."),
    route53_endpoint: str | None = typer.Option(None, "--route53-endpoint", help="Custom Route53 endpoint URL."),
    switch_command: str | None = typer.Option(None, "--switch-command", help="Command run with "
                                              "SEAWALL_DRILL_TARGET set, instead of Route53."),
    rto: float = typer.Option(300, "--rto", help="RTO objective in seconds."),
    rpo: float = typer.Option(60, "--rpo", help="RPO objective in seconds."),
    drill_id: str | None = typer.Option(None, "--drill-id", help="Resume this drill (same id)."),
    no_fail_back: bool = typer.Option(False, "--no-fail-back", help="Leave the standby as the primary."),
    vault: str | None = typer.Option(None, "--vault", help="Keep drill state/report in this vault."),
    dataset: str | None = typer.Option(None, "--dataset", help="Preflight: this dataset has a verified backup."),
    passphrase_file: Path | None = typer.Option(None, "--passphrase-file", help="Vault passphrase file."),
    json_out: bool = JsonOpt,
) -> None:
    """Promote the standby, switch traffic, check, measure RTO/RPO, fail back, report."""
    with handled_errors():
        from flows.failover_drill import failover_drill

        node, switch_model = model("node"), model("switch")

        if vault:
            load_passphrase(passphrase_file)
        ssh = _ssh_host(standby_ssh, identity, known_hosts) if standby_ssh else None
        primary = node(name="primary", dsn=primary_dsn, datadir=primary_datadir)
        standby = node(name="standby", dsn=standby_dsn, datadir=standby_datadir, ssh=ssh,
                               bindir=standby_bindir)
        switch = None
        if route53_zone or switch_command:
            switch = switch_model(route53_zone_id=route53_zone, record_name=route53_record,
                                        endpoint_url=route53_endpoint, command=switch_command)
        _run_and_print(failover_drill, json_out, primary=primary, standby=standby, switch=switch,
                       objectives=model("objectives")(rto_seconds=rto, rpo_seconds=rpo),
                       fail_back=not no_fail_back, drill_id=drill_id, vault=vault_param(vault) if vault else None,
                       dataset=dataset)


@drill_app.command("restore")
def restore_cmd(
    vault: str = typer.Option(..., "--vault", help="The DR vault."),
    dataset: str = typer.Option(..., "--dataset", help="Dataset whose newest backup is restored."),
    rto: float = typer.Option(3600, "--rto", help="RTO objective in seconds."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for the random point in time."),
    passphrase_file: Path | None = typer.Option(None, "--passphrase-file", help="Vault passphrase file."),
    json_out: bool = JsonOpt,
) -> None:
    """Restore the newest backup at a random point in its window into a new cluster; report RTO."""
    with handled_errors():
        load_passphrase(passphrase_file)
        from flows.restore_drill import restore_drill

        _run_and_print(restore_drill, json_out, vault=vault_param(vault), dataset=dataset, rto_seconds=rto, seed=seed)


def register(app: typer.Typer) -> None:
    """Add the `drill` sub-app (failover, restore) to the seawall app."""
    app.add_typer(drill_app, name="drill")


if __name__ == "__main__":
    from seawall.cli.app import app as _app

    register(_app)
    _app()

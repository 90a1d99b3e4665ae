"""`seawall report` (DR readiness and controls), `seawall runbook DATASET` and `seawall last-clean DATASET`.

`report` reads the vaults a policy names and judges each dataset: exit 0 when no control FAILED,
6 when one did (`--strict`: also when one is UNKNOWN), 2 for bad input (policy file, unknown
dataset). It runs without Prefect; `--publish` runs the `readiness-report` flow instead, which
publishes the report as a Prefect artifact. `runbook` prints a recovery procedure (Markdown).
`last-clean` names the newest backup before the newest SUSPICIOUS one.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import typer

from seawall.cli.common import JsonOpt, PassFileOpt, VaultOpt, open_vault_cli, run_flow
from seawall.cli.output import console, handled_errors, print_json
from seawall.errors import BackupNotFound, ConfigError, ExitCode

PolicyOpt = typer.Option(Path("seawall.yaml"), "--policy", "-p", help="The policy file (default ./seawall.yaml).")


def register(app: typer.Typer) -> None:
    """Add report, runbook and last-clean to the seawall app."""
    app.command("report")(report_cmd)
    app.command("runbook")(runbook_cmd)
    app.command("last-clean")(last_clean_cmd)


def _load(policy_path: Path, datasets: list[str] | None):
    from seawall.policy import PolicyError, load_policy
    from seawall.readiness.collect import unknown_datasets

    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        if len(exc.problems) > 1:
            raise
        raise ConfigError(str(exc.problems[0]), hint="fix the policy file and run the command again") from None
    unknown_datasets(policy, datasets)
    return policy


def report_cmd(policy: Path = PolicyOpt,
               dataset: list[str] | None = typer.Option(None, "--dataset", "-d", help="Only these datasets."),
               markdown: bool = typer.Option(False, "--markdown", help="Print the report as Markdown."),
               html: Path | None = typer.Option(None, "--html", help="Also write the report as an HTML page."),
               strict: bool = typer.Option(False, "--strict", help="Exit 6 on UNKNOWN controls too."),
               publish: bool = typer.Option(False, "--publish", help="Run it as the readiness-report flow and "
                                            "publish a Prefect artifact."),
               json_out: bool = JsonOpt) -> None:
    """DR readiness per dataset: objectives vs measurements, ages, storage, cost, and PASS/FAIL/UNKNOWN
    controls with their evidence. Exit 6 if a control FAILED (for CI)."""
    with handled_errors():
        rules = _load(policy, dataset)
        if publish:
            from flows.readiness import readiness_report
            from tasks.mode import prefect_mode

            if not prefect_mode():  # plain mode publishes no artifacts: say so instead of doing nothing
                raise ConfigError("--publish needs a Prefect API (artifacts live there)",
                                  hint="set PREFECT_API_URL or activate a Prefect profile with one")
            report = run_flow(readiness_report, policy_file=str(policy.absolute()), datasets=dataset or None,
                              fail_on_failed=False)
        else:
            from seawall.readiness.collect import collect
            from seawall.readiness.report import build_report

            now = datetime.now(UTC)
            report = build_report(rules, collect(rules, dataset, now), now, dataset)
        _show(report, markdown, html, json_out)
    if report.failed or (strict and report.unknown):
        raise typer.Exit(ExitCode.CONTROL_FAILED)


def _show(report, markdown: bool, html: Path | None, json_out: bool) -> None:
    from seawall.readiness.report import to_html, to_markdown

    if html is not None:
        html.write_text(to_html(report))
    if json_out:
        print_json(report.model_dump(mode="json"))
    elif markdown or not sys.stdout.isatty():
        sys.stdout.write(to_markdown(report))
    else:
        from rich.markdown import Markdown

        console.print(Markdown(to_markdown(report)))


def runbook_cmd(dataset: str = typer.Argument(..., help="Dataset of the policy file."), policy: Path = PolicyOpt,
                output: Path | None = typer.Option(None, "--output", "-o", help="Write it to this file.")) -> None:
    """A step-by-step recovery procedure for DATASET, from the policy and the latest evidence (Markdown)."""
    with handled_errors():
        rules = _load(policy, [dataset])
        from seawall.readiness.collect import collect
        from seawall.readiness.runbook import render

        now = datetime.now(UTC)
        text = render(rules, dataset, collect(rules, [dataset], now), now, str(policy))
        if output is not None:
            output.write_text(text)
            console.print(f"runbook for {dataset} written to {output}")
        else:
            sys.stdout.write(text)


def last_clean_cmd(dataset: str = typer.Argument(..., help="Dataset to look at."), vault: str = VaultOpt,
                   passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt) -> None:
    """Name the newest backup of DATASET before its newest SUSPICIOUS one (the one to restore after an attack)."""
    from seawall.readiness.anomaly import last_clean, suspicious_ids
    from seawall.readiness.evidence import read_anomalies

    with handled_errors():
        v = open_vault_cli(vault, passphrase_file)
        backups = v.list_backups(dataset)
        if not backups:
            known = sorted({m.dataset for m in v.list_backups()})
            raise BackupNotFound(f"no backups of dataset {dataset!r} in {v.url}",
                                 hint=f"datasets here: {', '.join(known) or 'none'}")
        flagged = suspicious_ids(backups, read_anomalies(v, dataset))
        clean, suspects = last_clean(backups, flagged)
        if clean is None:
            raise ConfigError(f"no clean DONE backup of {dataset} before {suspects[0].backup_id} in {v.url}"
                              if suspects else f"no DONE backup of {dataset} in {v.url}")
        if json_out:
            print_json({"vault": v.url, "dataset": dataset, "last_clean": clean.backup_id,
                        "last_clean_started_at": clean.started_at.isoformat(),
                        "suspicious": [{"backup_id": m.backup_id, "reason": flagged[m.backup_id]} for m in suspects]})
            return
        for m in suspects:
            console.print(f"[red]SUSPICIOUS[/] {m.backup_id}: {flagged[m.backup_id]}", highlight=False)
        note = "before the anomaly" if suspects else "(no suspicious backup: the newest DONE backup)"
        console.print(f"last clean backup of {dataset}: {clean.backup_id} ({clean.started_at:%Y-%m-%d %H:%M} UTC) "
                      f"{note}", highlight=False)

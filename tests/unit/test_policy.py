"""The policy file: every bad input is reported with file, line, field and what is allowed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from seawall.policy import PolicyError, load_policy, parse_policy

EXAMPLE = Path(__file__).parents[2] / "examples" / "seawall.yaml"

GOOD = """\
version: 1
vaults:
  region-a: {url: "file:///srv/a"}
  region-b:
    url: file:///srv/b
    role: dr
datasets:
  shop:
    postgres: {dsn_env: SHOP_DSN}
    vault: region-a
    copy_to: region-b
    rpo: 26h
    rto: 30m
    schedule:
      cron: "0 2 * * *"
      timezone: Europe/Berlin
"""


def problems(text: str) -> list:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "seawall.yaml")
    return info.value.problems


def test_example_and_minimal_policies_load():
    policy = load_policy(EXAMPLE)
    assert set(policy.datasets) == {"shop", "www", "orders-db", "sessions"}
    good = parse_policy(GOOD)
    assert good.datasets["shop"].rpo == timedelta(hours=26)
    assert good.datasets["shop"].schedule.longest_gap() == timedelta(days=1)


def test_typo_key_names_line_field_and_the_missing_field():
    found = {p.field: p for p in problems(GOOD.replace("    schedule:", "    shedule:"))}
    assert found["datasets.shop.shedule"].line == 14
    assert "unknown key 'shedule'" in found["datasets.shop.shedule"].message
    assert found["datasets.shop.schedule"].message == "required field is missing"


def test_typo_key_reports_allowed_keys():
    found = problems(GOOD.replace("    rto: 30m", "    rto: 30m\n    retension: {keep_daily: 3}"))
    p = next(p for p in found if "retension" in p.field)
    assert p.line == 14 and p.field == "datasets.shop.retension"
    assert "unknown key 'retension'" in p.message and "retention" in p.message and "schedule" in p.message


def test_wrong_type():
    [p] = problems(GOOD.replace("rto: 30m", "rto: [30, m]"))
    assert p.line == 13 and p.field == "datasets.shop.rto"
    assert "duration" in p.message and "e.g. 26h" in p.message


def test_wrong_literal_lists_allowed_values():
    [p] = problems(GOOD.replace("{dsn_env: SHOP_DSN}", "{dsn_env: SHOP_DSN, mode: logcal}"))
    assert p.line == 9 and p.field == "datasets.shop.postgres.mode"
    assert "'logical' or 'physical'" in p.message and "logcal" in p.message


def test_unknown_vault_name():
    [p] = problems(GOOD.replace("copy_to: region-b", "copy_to: region-c"))
    assert p.line == 11 and p.field == "datasets.shop.copy_to"
    assert "unknown vault 'region-c'" in p.message and "region-a, region-b" in p.message


def test_invalid_cron():
    [p] = problems(GOOD.replace('"0 2 * * *"', '"0 25 * * *"'))
    assert p.line == 15 and p.field == "datasets.shop.schedule.cron"
    assert "invalid cron" in p.message and "minute hour day month weekday" in p.message


def test_unknown_timezone():
    [p] = problems(GOOD.replace("Europe/Berlin", "Europe/Atlantis"))
    assert p.line == 16 and p.field == "datasets.shop.schedule.timezone" and "IANA" in p.message


def test_rpo_the_schedule_cannot_meet():
    [p] = problems(GOOD.replace("rpo: 26h", "rpo: 6h"))
    assert p.line == 12 and p.field == "datasets.shop.rpo"
    assert "cannot be met" in p.message and "rpo ≥ 1d" in p.message


def test_missing_field_and_secret_in_url_and_several_problems_at_once():
    text = GOOD.replace('url: "file:///srv/a"', 'url: "sftp://bob:hunter2@h/srv"').replace("    rto: 30m\n", "")
    found = problems(text)
    fields = {p.field: p for p in found}
    assert fields["vaults.region-a.url"].line == 3 and "secrets" in fields["vaults.region-a.url"].message
    assert fields["datasets.shop.rto"].message == "required field is missing"
    assert fields["datasets.shop.rto"].line == 8


def test_error_text_and_yaml_syntax_error(tmp_path):
    bad = tmp_path / "seawall.yaml"
    bad.write_text(GOOD.replace("rpo: 26h", "rpo: 6h"))
    with pytest.raises(PolicyError) as info:
        load_policy(bad)
    assert f"{bad}:12: datasets.shop.rpo:" in str(info.value) and "nothing deployed" in str(info.value)
    [p] = problems("vaults: {a: [\n")
    assert "not valid YAML" in p.message


def test_mariadb_and_redis_datasets_become_deployments():
    from deployments.build import build

    desired = build(load_policy(EXAMPLE), env={"SEAWALL_ALERT_WEBHOOK": "http://127.0.0.1:9/hook"})
    by_name = {d.name: d for d in desired.deployments}
    orders, binlogs = by_name["nightly-orders-db"], by_name["binlogs-orders-db"]
    assert orders.entrypoint.endswith(":nightly_backup_mariadb") and orders.parameters["mode"] == "logical"
    assert orders.parameters["source"] == {"$ref": {"block_document_slug": "seawall-mariadb-source/orders-db"}}
    assert binlogs.entrypoint.endswith(":archive_binlogs") and binlogs.cron == "*/5 * * * *"
    sessions = by_name["nightly-sessions"]
    assert sessions.entrypoint.endswith(":nightly_backup_redis")
    assert sessions.parameters["source"] == "env:SESSIONS_REDIS_URL" and "verify-sessions" in by_name
    assert "restore-drill-sessions" in by_name and "restore-drill-orders-db" in by_name


def test_a_dataset_names_exactly_one_source():
    two = GOOD.replace("    postgres: {dsn_env: SHOP_DSN}",
                       "    postgres: {dsn_env: SHOP_DSN}\n    redis: {url_env: R}")
    assert any("exactly one of postgres, files, mariadb or redis" in p.message for p in problems(two))

"""Lifecycle rules in the policy file: schema, S3's own limits, and retention, each at its file:line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from seawall.policy import PolicyError, parse_policy
from seawall.tiering import retention_horizon


def policy(lifecycle: str, retention: str = "{keep_daily: 30, keep_monthly: 12}",
           url: str = "s3://acme-backups/www?region=eu-west-1&storage_class=STANDARD") -> str:
    return f"""\
version: 1
vaults:
  main:
    url: "{url}"
    lifecycle:
{lifecycle}
datasets:
  www:
    files: {{path: /srv/www}}
    vault: main
    rpo: 26h
    rto: 1h
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
    retention: {retention}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "seawall.yaml")
    return [str(p) for p in info.value.problems]


def test_a_sound_policy_loads():
    loaded = parse_policy(policy("      - {after: 30d, storage_class: standard_ia}\n"
                                 "      - {after: 400d, storage_class: DEEP_ARCHIVE}"))
    steps = loaded.vaults["main"].lifecycle
    assert [(s.after.days, s.storage_class) for s in steps] == [(30, "STANDARD_IA"), (400, "DEEP_ARCHIVE")]


def test_unknown_class_names_line_and_allowed_values():
    (line,) = problems(policy("      - {after: 30d, storage_class: COLDEST}"))
    assert line.startswith("seawall.yaml:6: vaults.main.lifecycle[0].storage_class: 'COLDEST' is not a storage class")
    assert "allowed: INTELLIGENT_TIERING, STANDARD_IA" in line


def test_s3_limits_whole_days_ia_after_30_days_and_order():
    lines = problems(policy("      - {after: 36h, storage_class: GLACIER_IR}\n"
                            "      - {after: 10d, storage_class: STANDARD_IA}",
                            retention="{keep_yearly: 3}"))
    assert "seawall.yaml:6: vaults.main.lifecycle[0].after: 36h is not a whole number of days" in lines[0]
    assert any(p.startswith("seawall.yaml:7: vaults.main.lifecycle[1].after: S3 moves objects to STANDARD_IA "
                            "only after 30 days") for p in lines)
    assert any("seawall.yaml:7: vaults.main.lifecycle[1]: each step must come later and go colder" in p
               for p in lines)


def test_archive_before_keep_within_is_refused():
    (line,) = problems(policy("      - {after: 3d, storage_class: GLACIER}",
                              retention="{keep_within: 7d, keep_yearly: 2}"))
    assert line.startswith("seawall.yaml:6: vaults.main.lifecycle[0]: moves data to GLACIER after 3d, before "
                           "dataset www's keep_within 7d ends")
    assert "(allowed: after ≥ 7d)" in line


def test_archive_whose_minimum_outlasts_retention_is_refused():
    # keep_daily 45 keeps a backup ~45 days; DEEP_ARCHIVE bills 180 days from day 30.
    (line,) = problems(policy("      - {after: 30d, storage_class: DEEP_ARCHIVE}", retention="{keep_daily: 45}"))
    assert "moves data to DEEP_ARCHIVE after 30d, but dataset www's retention keeps backups at most ~45d" in line
    assert "180-day minimum storage" in line and "(allowed: after ≥ 45d)" in line
    # at or after the horizon only chunks that newer backups still share move: allowed
    parse_policy(policy("      - {after: 45d, storage_class: DEEP_ARCHIVE}", retention="{keep_daily: 45}"))


def test_lifecycle_needs_an_s3_vault():
    lines = problems(policy("      - {after: 30d, storage_class: STANDARD_IA}", url="file:///srv/vault"))
    assert lines == ["seawall.yaml:5: vaults.main.lifecycle: lifecycle rules need an s3:// vault "
                     "(allowed: an s3:// url, or a block naming one)"]


def test_bad_storage_class_in_the_url():
    (line,) = problems(policy("      []", url="s3://b/p?region=eu-west-1&storage_class=glacier%20ir"))
    assert line.startswith("seawall.yaml:4: vaults.main.url:") and "is not a storage class name" in line


def test_retention_horizon():
    from seawall.retention import RetentionPolicy

    day = timedelta(days=1)
    assert retention_horizon(RetentionPolicy(keep_daily=7, keep_weekly=4), day) == 28 * day
    assert retention_horizon(RetentionPolicy(keep_last=10), day) == 10 * day
    assert retention_horizon(RetentionPolicy(keep_monthly=12), day) == 372 * day
    assert retention_horizon(None, day) is None

"""The cost estimate against a figure computed by hand, and the price table's validation."""

from __future__ import annotations

import pytest

from seawall.policy import PolicyError, parse_policy
from seawall.readiness.cost import estimate
from tests.unit.readiness_builders import NOW, POLICY, backup, vault

GIB = 1 << 30


def test_cost_estimate_matches_the_hand_computed_figure():
    rules = parse_policy(POLICY + "  restores_per_month: 2\n").readiness
    old = backup(hours_ago=24 * 40, stored_bytes_new=100 * GIB, chunks_new=1000, bytes_total=190 * GIB)
    new = backup(hours_ago=48, stored_bytes_new=60 * GIB, chunks_new=500, bytes_total=200 * GIB, chunks_total=2000)
    other = backup("lonely", hours_ago=1, stored_bytes_new=999 * GIB, chunks_new=7)
    main = vault(backups=[old, new, other], storage={"hot": 3 * GIB, "cool": 1 * GIB, "archive": 0})

    line = estimate("www", main, rules.prices, rules, NOW)

    # By hand, with the default (AWS us-east-1) prices:
    #   storage   160 GiB stored, 3/4 hot, 1/4 cool: 120 x 0.023 + 40 x 0.0125     = 3.26
    #   PUTs      backups of the last 30 days: 500 chunks + 2 manifests = 502
    #             502 / 1000 x 0.005                                               = 0.00251
    #   GETs      2 restores x 2000 chunks = 4000: 4000 / 1000 x 0.0004           = 0.0016
    #   egress    2 restores x 200 GiB = 400 GiB x 0.09                            = 36.00
    #   retrieval 400 GiB x (3/4 x 0 + 1/4 x 0.01)                                 = 1.00
    #   total                                                                      = 40.26411
    assert line.stored_by_tier == {"hot": 120 * GIB, "cool": 40 * GIB, "archive": 0}
    assert line.storage == pytest.approx(3.26)
    assert line.puts == 502 and line.gets == 4000
    assert line.requests == pytest.approx(0.00411)
    assert line.egress == pytest.approx(36.0)
    assert line.retrieval == pytest.approx(1.0)
    assert line.total == pytest.approx(40.26411)
    assert line.currency == "USD" and line.prices_as_of == "2024-11-01"


def test_restores_default_to_the_verifications_of_the_last_30_days():
    from tests.unit.readiness_builders import verification

    rules = parse_policy(POLICY).readiness
    newest = backup(hours_ago=5, stored_bytes_new=GIB, bytes_total=10 * GIB, chunks_total=10)
    reports = [verification(hours_ago=h) for h in (10, 24 * 10, 24 * 40)]  # the last one is outside
    line = estimate("www", vault(backups=[newest], reports=reports), rules.prices, rules, NOW)
    assert line.restores == 2 and line.egress == pytest.approx(20 * 0.09)


def test_price_table_typo_is_one_located_line():
    text = POLICY + "  prices: {currency: EUR, storage_gb_mnth: {hot: 0.02, cool: 0.01, archive: 0.001}}\n"
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "seawall.yaml")
    assert len(caught.value.problems) == 1
    problem = str(caught.value.problems[0])
    line = next(i for i, text_line in enumerate(text.splitlines(), 1) if "storage_gb_mnth" in text_line)
    assert problem.startswith(f"seawall.yaml:{line}: readiness.prices.storage_gb_mnth: unknown key"), problem
    assert "storage_gb_month" in problem  # the allowed keys are listed


def test_negative_price_is_refused():
    with pytest.raises(PolicyError, match=r"readiness\.prices\.egress_gb"):
        parse_policy(POLICY + "  prices: {egress_gb: -1}\n")

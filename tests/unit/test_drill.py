"""Pure parts of the failover drill: preflight verdicts, RTO/RPO arithmetic, re-entry decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from blocks.drill import DrillObjectives, PostgresNode, TrafficSwitchBlock
from seawall.drill.measure import compute_rpo, compute_rto
from seawall.drill.node import LocalNode, SshNode
from seawall.drill.preflight import NodeFacts, evaluate
from seawall.drill.state import (
    STEPS,
    DirStateStore,
    DrillReport,
    DrillState,
    Measurements,
    StepRecord,
    VaultStateStore,
    judge,
    load_report,
    load_state,
    next_step,
    promotion_needed,
    save_report,
    save_state,
)
from seawall.drill.switch import CommandSwitch, Route53Switch
from seawall.errors import ConfigError, PermanentError
from seawall.postgres.conn import PgConn
from seawall.ssh import SshOptions
from tests.unit.builders import memory_vault

NOW = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)


def facts(name: str, **overrides) -> NodeFacts:
    base = dict(name=name, location="local", system_identifier="7300000000000000001", data_directory=f"/pg/{name}",
                port=5432 if name == "primary" else 5433, data_checksums=True, archive_mode="on",
                in_recovery=name != "primary", server_version_num=150000, started_at="t0" + name,
                archiver={"archived_count": 10, "failed_count": 0, "last_archived_time": NOW - timedelta(seconds=5),
                          "last_failed_time": None},
                replication=[{"name": "standby", "state": "streaming", "replay_lag_s": 0.01, "lag_bytes": 0}]
                if name == "primary" else [],
                receiver=None if name == "primary" else {"status": "streaming", "sender_host": "/s", "sender_port": 1})
    return NodeFacts(**{**base, **overrides})


def verdicts(p: NodeFacts, s: NodeFacts, **kw) -> dict[str, tuple[bool, bool, str]]:
    args = dict(rpo_seconds=30, backup_age_s=None, max_backup_age_s=None, now=NOW) | kw
    return {r.name: (r.ok, r.critical, r.detail) for r in evaluate(p, s, **args)}


def test_healthy_pair_passes_every_check() -> None:
    v = verdicts(facts("primary"), facts("standby"))
    assert all(ok for ok, _, _ in v.values()), v


@pytest.mark.parametrize(("standby", "primary", "check", "text"), [
    (dict(receiver=None), {}, "standby-streaming", "not streaming"),
    (dict(receiver={"status": "starting"}), {}, "standby-streaming", "starting"),
    (dict(in_recovery=False), {}, "standby-streaming", "not a standby"),
    (dict(system_identifier="999"), {}, "same-cluster", "another cluster"),
    (dict(data_directory="/pg/primary", port=5432), {}, "distinct-nodes", "same server"),
    ({}, dict(replication=[{"name": "s", "state": "streaming", "replay_lag_s": 99.0, "lag_bytes": 5}]),
     "replication-lag", "exceeds the RPO"),
    ({}, dict(archiver={"archived_count": 1, "failed_count": 3, "last_archived_time": NOW - timedelta(hours=1),
                        "last_failed_time": NOW}), "wal-archive", "failing"),
    (dict(error="connection refused"), {}, "standby-reachable", "connection refused"),
])
def test_critical_failures(standby, primary, check, text) -> None:
    v = verdicts(facts("primary", **primary), facts("standby", **standby))
    ok, critical, detail = v[check]
    assert not ok and critical and text in detail


def test_no_checksums_nor_hints_is_a_warning_not_a_stop() -> None:
    v = verdicts(facts("primary", data_checksums=False), facts("standby"))
    ok, critical, detail = v["rewind-possible"]
    assert not ok and not critical and "re-clone" in detail


def test_verified_backup_age_is_critical_only_when_asked() -> None:
    assert verdicts(facts("primary"), facts("standby"))["verified-backup"][:2] == (True, False)
    v = verdicts(facts("primary"), facts("standby"), backup_age_s=None, max_backup_age_s=3600)
    assert v["verified-backup"][:2] == (False, True)
    v = verdicts(facts("primary"), facts("standby"), backup_age_s=7200, max_backup_age_s=3600)
    assert not v["verified-backup"][0] and "7200s old" in v["verified-backup"][2]


def test_rpo_counts_lost_heartbeat_transactions() -> None:
    beats = [NOW + timedelta(seconds=0.2 * i) for i in range(10)]
    assert compute_rpo(beats, set(beats)) == (0.0, 0)
    seconds, lost = compute_rpo(beats, set(beats[:7]))
    assert lost == 3 and seconds == pytest.approx(0.6)
    assert compute_rpo([], set()) == (None, 0)
    assert compute_rpo(beats, set()) == (pytest.approx(1.8), 10)


def test_rto_windows() -> None:
    assert compute_rto(NOW, NOW + timedelta(seconds=2), NOW + timedelta(seconds=5)) == (2.0, 5.0)
    assert compute_rto(None, NOW, NOW) == (None, None)
    assert compute_rto(NOW, NOW + timedelta(seconds=1), None) == (1.0, None)


def state(**overrides) -> DrillState:
    return DrillState(drill_id="d1", primary="primary", standby="standby", started_at=NOW, **overrides)


def done(*names: str) -> dict[str, StepRecord]:
    return {n: StepRecord(name=n, started_at=NOW, ok=True) for n in names}


def test_promotion_decisions() -> None:
    assert promotion_needed(state(), standby_in_recovery=True, primary_in_recovery=None) is True
    # already writable (a crash after the promote call): never promote twice
    assert promotion_needed(state(), standby_in_recovery=False, primary_in_recovery=None) is False
    assert promotion_needed(state(steps=done("promote")), True, None) is False
    with pytest.raises(ConfigError, match="two writable primaries"):
        promotion_needed(state(), standby_in_recovery=True, primary_in_recovery=False)
    with pytest.raises(ConfigError, match="not reachable"):
        promotion_needed(state(), standby_in_recovery=None, primary_in_recovery=None)


def test_next_step_and_judgement() -> None:
    assert next_step(state()) == "preflight"
    assert next_step(state(steps=done("preflight", "heartbeat", "fence"))) == "promote"
    all_done = state(steps=done(*STEPS[:-1]))
    all_done.measurements.rto_s, all_done.measurements.rpo_s = 5.0, 0.0
    assert judge(all_done, 10, 1)[0] == "PASSED"
    assert judge(all_done, 1, 1) == ("OBJECTIVE_MISSED", False, True)
    assert judge(state(steps=done("preflight")), 10, 1)[0] == "FAILED"
    assert judge(state(status="ABORTED"), 10, 1)[0] == "ABORTED"


def test_state_roundtrip_in_a_folder(tmp_path) -> None:
    store = DirStateStore(str(tmp_path))
    st = state(steps=done("preflight"), promotions={"standby": 1}, heartbeats=[NOW])
    save_state(store, st)
    back = load_state(store, "d1")
    assert back == st and load_state(store, "other") is None


def test_ssh_node_runs_commands_as_the_server_user() -> None:
    node = SshNode("s", PgConn("host=x"), "/var/lib/pg", "/usr/bin", ssh=SshOptions(host="h", username="admin"))
    assert node.wrap("pg_ctl status").startswith("sudo -n -u postgres sh -c ")
    node.ssh = SshOptions(host="h", username="root")
    assert node.wrap("pg_ctl status") == "runuser -u postgres -- sh -c 'cd / && pg_ctl status'"
    node.ssh = SshOptions(host="h", username="postgres")
    assert node.wrap("pg_ctl status") == "sh -c 'pg_ctl status'"
    assert node.location() == "ssh://postgres@h:22"


def test_blocks_build_nodes_and_switches() -> None:
    node = PostgresNode(name="p", dsn="host=/s port=5 user=postgres", datadir="/pg/data", bindir="/b").get_node()
    assert isinstance(node, LocalNode) and node.logfile == "/pg/data.log"
    assert isinstance(TrafficSwitchBlock(command="true").get_switch(), CommandSwitch)
    r53 = TrafficSwitchBlock(route53_zone_id="Z1", record_name="db.example.com.").get_switch()
    assert isinstance(r53, Route53Switch) and r53.zone_id == "Z1"
    with pytest.raises(ConfigError):
        TrafficSwitchBlock().get_switch()
    with pytest.raises(ConfigError):
        TrafficSwitchBlock(command="x", route53_zone_id="Z").get_switch()


def test_command_switch_passes_the_target(tmp_path) -> None:
    out = tmp_path / "target"
    CommandSwitch(f'echo "$SEAWALL_DRILL_NODE $SEAWALL_DRILL_TARGET" > {out}').point_to("standby", "10.0.0.2")
    assert out.read_text().strip() == "standby 10.0.0.2"
    with pytest.raises(PermanentError, match="switch command failed"):
        CommandSwitch("echo nope >&2; exit 3").point_to("standby", "x")


@pytest.mark.parametrize("block", [PostgresNode, TrafficSwitchBlock, DrillObjectives])
class TestDrillBlocksAdhereToStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, block):
        return block

    def test_has_a_documentation_url(self, block):
        """Like the other seawall blocks: an Example with `.load("BLOCK_NAME")` instead of a docs URL."""
        assert "Example:" in (block.__doc__ or "") and '.load("BLOCK_NAME")' in block.__doc__

    def test_has_a_valid_image(self, block) -> None:
        """No hosted logo, as for the other seawall blocks (see tests/unit/test_blocks.py)."""
        assert block._logo_url is None


def test_switch_secrets_stay_hidden() -> None:
    block = TrafficSwitchBlock(route53_zone_id="Z", record_name="r.", aws_access_key_id="AKIA",
                               aws_secret_access_key="very-secret")
    assert "very-secret" not in repr(block) + block.model_dump_json()
    assert "very-secret" not in repr(block.get_switch())


def test_state_and_report_are_sealed_records_in_the_vault() -> None:
    vault = memory_vault()
    store = VaultStateStore(vault)
    assert load_state(store, "d1") is None
    st = state(steps=done("preflight"))
    save_state(store, st)
    assert load_state(store, "d1") == st
    assert b"preflight" not in vault.store.get("drills/d1/state")  # encrypted, key bound into the seal
    report = DrillReport(drill_id="d1", primary="p", standby="s", started_at=NOW, finished_at=NOW, steps=[],
                         measurements=Measurements(rto_s=1.0), status="PASSED")
    save_report(store, report)
    assert load_report(store, "d1") == report

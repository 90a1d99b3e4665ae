"""Pure parts of restore verification: check results, plans (random picks), windows, GX suites, diffs."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from seawall.checks import CheckResult, ChecksFailed, amcheck, guarded, gx, result, summary_line, tables, tree
from seawall.checks.plan import choose_point, plan_restore
from seawall.checks.registry import CheckTarget, check_names, needs_vault, run_check
from seawall.checks.restore import Restored
from seawall.checks.window import Window, commit_times
from seawall.errors import BackupNotFound, ConfigError, IntegrityError
from seawall.heartbeat import achieved_rpo
from seawall.manifest import BackupStatus
from seawall.postgres.conn import PgConn
from seawall.sources.tree import Entry
from tests.unit.builders import BASE_TIME, make_manifest

PHYS = "postgres-physical"


def physical(n: int, stop: datetime, status: BackupStatus = BackupStatus.DONE):
    return make_manifest(n=n, kind=PHYS, dataset="pg", status=status, source={"stop_time": stop.isoformat()})


def window_of(end: datetime):
    return lambda m: Window(datetime.fromisoformat(m.source["stop_time"]), end)


# ---- results ------------------------------------------------------------------------------------
def test_check_result_label_summary_and_guard():
    ok = result("schema", "public.t", True, "fine")
    bad = result("rows-checksum", "public.t", False, "rows 1 != recorded 2")
    assert ok.ok and not bad.ok and bad.label() == "rows-checksum (public.t)"
    assert summary_line([ok]) == "all 1 checks passed"
    assert summary_line([ok, bad]) == "1 of 2 checks failed: rows-checksum (public.t): rows 1 != recorded 2"
    crashed = guarded("amcheck", lambda: 1 / 0)
    assert crashed[0].status == "error" and "ZeroDivisionError" in crashed[0].detail
    assert result("x", None, True, "y" * 5000).detail.endswith("…")


def test_checks_failed_keeps_results_through_pickle():
    import pickle

    exc = ChecksFailed("check x failed", results=[result("x", "t", False, "bad")])
    back = pickle.loads(pickle.dumps(exc))
    assert isinstance(back, IntegrityError) and back.results[0].detail == "bad"


# ---- planning -----------------------------------------------------------------------------------
def test_random_over_20_runs_picks_at_least_5_points():
    backups = [physical(i, BASE_TIME + timedelta(hours=i)) for i in range(1, 4)]
    end = BASE_TIME + timedelta(hours=6)
    rng = random.Random(7)
    plans = [plan_restore(backups, "pg", "random", window_of=window_of(end), rng=rng) for _ in range(20)]
    points = {(p.backup_id, p.target) for p in plans}
    assert len(points) >= 5 and len({p.backup_id for p in plans}) == 3
    for p in plans:
        assert p.random and p.target.startswith("time:") and p.window.contains(p.target_time)


def test_random_logical_and_empty_window():
    logical = [make_manifest(n=i, kind="postgres-logical", dataset="db", status=BackupStatus.DONE) for i in (1, 2)]
    picks = {plan_restore(logical, "db", "random", window_of=None, rng=random.Random(s)).backup_id for s in range(20)}
    assert len(picks) == 2
    only = [physical(1, BASE_TIME)]
    plan = plan_restore(only, "pg", "random", window_of=lambda m: Window(BASE_TIME, None), rng=random.Random(1))
    assert plan.target == "latest" and plan.target_time is None


def test_choose_point_stays_inside_half_open_window():
    window = Window(BASE_TIME, BASE_TIME + timedelta(microseconds=3))
    rng = random.Random(1)
    assert {choose_point(window, rng) for _ in range(50)} == {BASE_TIME + timedelta(microseconds=i) for i in range(3)}
    assert choose_point(Window(BASE_TIME, BASE_TIME), rng) is None


def test_plan_latest_id_and_target_time():
    a, b = physical(1, BASE_TIME + timedelta(hours=1)), physical(2, BASE_TIME + timedelta(hours=3))
    failed = physical(3, BASE_TIME + timedelta(hours=4), BackupStatus.FAILED)
    end = BASE_TIME + timedelta(hours=5)
    assert plan_restore([a, b, failed], "pg", window_of=window_of(end)).backup_id == b.backup_id
    assert plan_restore([a, b], "pg", a.backup_id, window_of=window_of(end)).target == "latest"
    at = BASE_TIME + timedelta(hours=2)
    plan = plan_restore([a, b], "pg", "latest", at, window_of=window_of(end))
    assert plan.backup_id == a.backup_id and plan.target == f"time:{at.isoformat()}"
    with pytest.raises(ConfigError, match="outside the recoverable window"):
        plan_restore([a, b], "pg", "latest", end + timedelta(seconds=1), window_of=window_of(end))
    with pytest.raises(ConfigError, match="before every physical backup"):
        plan_restore([a, b], "pg", "latest", BASE_TIME, window_of=window_of(end))
    with pytest.raises(ConfigError, match="no timezone"):
        plan_restore([a, b], "pg", "latest", datetime(2024, 1, 1), window_of=window_of(end))


def test_plan_bad_input():
    with pytest.raises(BackupNotFound, match="no complete backup of dataset pg"):
        plan_restore([], "pg", window_of=None)
    with pytest.raises(BackupNotFound, match="no complete backup 20990101T000000Z-000000"):
        plan_restore([physical(1, BASE_TIME)], "pg", "20990101T000000Z-000000", window_of=None)
    logical = [make_manifest(kind="postgres-logical", status=BackupStatus.DONE)]
    with pytest.raises(ConfigError, match="no physical backup"):
        plan_restore(logical, "db", "latest", BASE_TIME, window_of=None)


def test_window_and_waldump_parsing():
    out = ("rmgr: Transaction len (rec/tot): 34/34, tx: 7, lsn: 0/0175A4E8, prev 0/0, desc: COMMIT "
           "2026-11-22 00:51:41.252440 UTC\nrmgr: Transaction ..., desc: ABORT 2026-11-22 00:52:00 UTC; x\n")
    assert commit_times(out) == [datetime(2026, 11, 22, 0, 51, 41, 252440, tzinfo=UTC),
                                 datetime(2026, 11, 22, 0, 52, tzinfo=UTC)]
    w = Window(BASE_TIME, BASE_TIME + timedelta(seconds=10))
    assert w.contains(BASE_TIME) and not w.contains(w.end) and not Window(BASE_TIME, None).contains(BASE_TIME)
    assert achieved_rpo(BASE_TIME + timedelta(seconds=3), BASE_TIME) == 3.0
    assert achieved_rpo(BASE_TIME, BASE_TIME + timedelta(seconds=1)) == 0.0 and achieved_rpo(BASE_TIME, None) is None


# ---- GX suites ----------------------------------------------------------------------------------
def test_builtin_expectations_from_manifest_facts():
    columns = [["id", "bigint", True], ["email", "text", True], ["note", "text", False]]
    indexes = [["t_pkey", "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)"],
               ["t_pair", 'CREATE UNIQUE INDEX t_pair ON public.t USING btree (email, "Note")'],
               ["t_expr", "CREATE UNIQUE INDEX t_expr ON public.t USING btree (lower(email))"],
               ["t_note", "CREATE INDEX t_note ON public.t USING btree (note)"],
               ["t_part", "CREATE UNIQUE INDEX t_part ON public.t USING btree (note) WHERE (id > 0)"]]
    exps = gx.builtin_expectations(columns, indexes, rows=42)
    kinds = [(e["type"], e["kwargs"]) for e in exps]
    assert kinds == [
        ("expect_table_row_count_to_equal", {"value": 42}),
        ("expect_table_columns_to_match_ordered_list", {"column_list": ["id", "email", "note"]}),
        ("expect_column_values_to_not_be_null", {"column": "id"}),
        ("expect_column_values_to_not_be_null", {"column": "email"}),
        ("expect_column_values_to_be_unique", {"column": "id"}),
        ("expect_compound_columns_to_be_unique", {"column_list": ["email", "Note"]}),
    ]
    first = gx.builtin_expectations(columns[:1], [], rows=None)[0]
    assert first["type"] == "expect_table_columns_to_match_ordered_list"


def test_builtin_suite_without_data_scans_keeps_row_count_and_columns():
    # logical backups: rows-checksum compares every row, so GX checks only count and column order
    columns = [["id", "bigint", True], ["note", "text", False]]
    indexes = [["t_pkey", "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)"]]
    exps = gx.builtin_expectations(columns, indexes, rows=7, data_scans=False)
    assert [(e["type"], e["kwargs"]) for e in exps] == [
        ("expect_table_row_count_to_equal", {"value": 7}),
        ("expect_table_columns_to_match_ordered_list", {"column_list": ["id", "note"]}),
    ]


def test_amcheck_checks_uniqueness_where_the_server_can():
    assert "checkunique" not in amcheck.check_sql(150018)
    assert "heapallindexed => true" in amcheck.check_sql(150018)
    assert "checkunique => true" in amcheck.check_sql(160004)


def test_only_vault_reading_checks_get_the_vault():
    assert needs_vault("pg_verifybackup") and needs_vault("file-tree")
    assert not any(needs_vault(n) for n in ("rows-checksum", "schema", "amcheck", "gx:builtin", "gx:user"))
    target = CheckTarget(make_manifest(), Restored(tree="/t"))
    [r] = run_check("file-tree", target, None)
    assert r.status == "error" and "needs the vault" in r.detail


def test_user_suite_files_and_tables(tmp_path: Path):
    (tmp_path / "orders.json").write_text(json.dumps({"name": "o", "expectations": []}))
    (tmp_path / "x.json").write_text(json.dumps({"meta": {"table": "sales.items", "database": "app"},
                                                 "expectations": []}))
    (tmp_path / "app.public.t.json").write_text(json.dumps({"expectations": []}))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "readme.txt").write_text("ignored")
    loaded = {p.name: (raw, problem) for p, raw, problem in gx.load_user_suites(tmp_path)}
    assert set(loaded) == {"orders.json", "x.json", "app.public.t.json", "broken.json"}
    assert loaded["broken.json"][0] is None and loaded["broken.json"][1]
    assert gx.suite_table(Path("orders.json"), loaded["orders.json"][0]) == (None, "public.orders")
    assert gx.suite_table(Path("x.json"), loaded["x.json"][0]) == ("app", "sales.items")
    assert gx.suite_table(Path("app.public.t.json"), {}) == ("app", "public.t")
    with pytest.raises(ConfigError, match="does not exist"):
        gx.load_user_suites(tmp_path / "nope")


def test_sqlalchemy_url_for_socket_and_password():
    from pydantic import SecretStr

    url = gx.sqlalchemy_url(PgConn("host=/tmp/s port=5440 user=postgres dbname=shop"))
    assert url == "postgresql+psycopg://postgres@localhost:5440/shop?host=%2Ftmp%2Fs"
    url = gx.sqlalchemy_url(PgConn("host=db.example port=5432 user=u dbname=d", SecretStr("p@ss")))
    assert url == "postgresql+psycopg://u:p%40ss@db.example:5432/d"


# ---- schema diffs, check names, tree entries ------------------------------------------------------
def test_schema_diffs():
    want = [["id", "int", True], ["a", "text", False]]
    assert tables._column_diff(want, want) == []
    assert tables._column_diff(want, [["a", "text", False], ["id", "int", True]]) == ["column order differs"]
    assert tables._column_diff(want, [["id", "bigint", False]]) == [
        "column a missing", "column id not-null False != recorded True", "column id type bigint != recorded int"]
    assert tables._index_diff([["i", "CREATE INDEX i"]], [["i", "CREATE INDEX i2"], ["j", "x"]]) == [
        "index i definition differs", "index j not in the backup"]


def test_check_names_per_kind():
    restored = Restored(PgConn("dbname=x"), ["x"])
    logical = make_manifest(kind="postgres-logical")
    assert check_names(CheckTarget(logical, restored)) == ["rows-checksum", "schema", "amcheck", "gx:builtin"]
    phys = CheckTarget(make_manifest(kind=PHYS), restored, suites="/s", target_time=BASE_TIME)
    assert check_names(phys) == ["pg_verifybackup", "amcheck", "gx:builtin", "gx:user", "pitr-target"]
    assert check_names(CheckTarget(make_manifest(), Restored(tree="/t"))) == ["file-tree"]


def test_tree_entry_problems(tmp_path: Path):
    import blake3

    (tmp_path / "f").write_bytes(b"hello")
    (tmp_path / "f").chmod(0o644)
    good = Entry(path="f", type="f", mode=0o644, mtime_ns=0, size=5, hash=blake3.blake3(b"hello").hexdigest())
    assert tree.entry_problem(tmp_path, good) is None
    assert "content hash differs" in tree.entry_problem(tmp_path, Entry(**{**good.__dict__, "hash": "00"}))
    assert "size 5 != recorded 6" in tree.entry_problem(tmp_path, Entry(**{**good.__dict__, "size": 6}))
    assert "missing" in tree.entry_problem(tmp_path, Entry(**{**good.__dict__, "path": "g"}))
    assert "not a directory" in tree.entry_problem(tmp_path, Entry(path="f", type="d", mode=0o755, mtime_ns=0))


def test_check_result_model_round_trip():
    r = CheckResult(name="amcheck", table="app/public.t", status="fail", detail="index x: corrupted", seconds=1.5)
    assert CheckResult.model_validate_json(r.model_dump_json()) == r

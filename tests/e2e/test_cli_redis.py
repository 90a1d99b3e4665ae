"""Redis through the `seawall` command, on 1M generated keys (issue #21, acceptance 2 and bad input).

One password-protected server per module holds strings, hashes, lists, sets, sorted sets and
streams (some with TTLs) in two databases, generated server-side (DEBUG POPULATE + a Lua script).
"""

from __future__ import annotations

import os

import pytest

from seawall.errors import ExitCode
from seawall.redis import facts
from seawall.vault import init_vault
from tests.fixtures.datagen_sources import populate_redis
from tests.fixtures.sources import REDIS_PASSWORD
from tests.unit.builders import FAST_SCRYPT

PASS = "correct horse"
SCALE = float(os.environ.get("SEAWALL_TEST_SOURCES_SCALE", "1"))  # < 1 only for quick local runs
STRINGS, MIXED = int(880_000 * SCALE), int(120_000 * SCALE)


@pytest.fixture(scope="module")
def cache(redis_source):
    assert populate_redis(redis_source, STRINGS, MIXED) == STRINGS + MIXED + 100
    return redis_source


@pytest.fixture
def vault(tmp_path):
    url = f"file://{tmp_path}/vault"
    init_vault(url, PASS, scrypt=FAST_SCRYPT)
    return url


def _one_line(result) -> bool:
    return "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def _sample_identical(source, target, db: int, count: int = 3000) -> int:
    keys = facts.sample_keys(source.client(db), count)
    want = facts.value_digests(source.client(db), keys)
    assert facts.value_digests(target.client(db), keys) == want
    return len(want)


def test_snapshot_restore_and_verify_1m_keys(cli, cache, redis_target, vault):
    kinds = {cache.client().type(k) for k in facts.sample_keys(cache.client(), 2000)}
    assert kinds == {b"string", b"hash", b"list", b"set", b"zset", b"stream"}
    backup = cli("backup", "redis", "--url", cache.url(with_password=True), "--vault", vault, "--json")
    assert backup.code == 0, backup.err
    row = backup.json()
    assert row["kind"] == "redis-rdb" and row["source"]["keyspace"] == {"0": STRINGS + MIXED, "3": 100}
    assert REDIS_PASSWORD not in backup.out + backup.err and row["source"]["digest"]

    restored = cli("restore", row["backup_id"], "--vault", vault, "--to-redis", redis_target.url(), timeout=900)
    assert restored.code == 0, restored.err
    assert facts.keyspace(redis_target.client()) == {"0": STRINGS + MIXED, "3": 100}
    assert facts.dataset_digest(redis_target.client()) == facts.dataset_digest(cache.client())
    assert _sample_identical(cache, redis_target, 0) > 2500 and _sample_identical(cache, redis_target, 3) > 50
    assert redis_target.client().ttl(b"t:5") > 80_000  # TTLs came along

    again = cli("restore", row["backup_id"], "--vault", vault, "--to-redis", redis_target.url())
    assert again.code == ExitCode.USAGE and "not empty" in again.err and _one_line(again)

    report = cli("verify-restore", "--vault", vault, "--dataset", row["dataset"], "--json")
    assert report.code == 0, report.err
    checks = report.json()["checks"]
    assert report.json()["status"] == "VERIFIED"
    assert {c["name"] for c in checks} == {"rdb-load", "keys-per-db", "sampled-values", "dataset-digest"}


def test_bad_input_one_line_each(cli, cache, vault):
    wrong = cli("backup", "redis", "--url", cache.url(), "--vault", vault,
                env={"SEAWALL_REDIS_PASSWORD": "not the password"})
    assert wrong.code == ExitCode.USAGE and _one_line(wrong) and "not the password" not in wrong.err
    from seawall.postgres.cluster import free_port

    # first contact refused: a configuration error at once (seawall.reach), not minutes of retries
    gone = cli("backup", "redis", "--url", f"redis://127.0.0.1:{free_port()}/0", "--vault", vault,
               env={"SEAWALL_RETRY_BACKOFF_SECONDS": "30"})
    assert gone.code == ExitCode.USAGE and "connection refused" in gone.err and _one_line(gone)

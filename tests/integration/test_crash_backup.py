"""kill -9 at random points of `seawall backup files`, then the vault must be sound and the next run recover.

A real `seawall` process backs up a changing tree (unicode, spaces, quotes) into a local vault and is
killed with SIGKILL: from its start, or at once / after a random delay once it holds its lease, once
a pack's temporary file appears, once a pack is stored under its real name, or once an index file
is written.
After every kill and after the run that follows (which must succeed), `crash_harness.VaultChecker`
checks: verify --read-data passes (after the run that follows, as a `seawall verify` process),
every DONE backup restores identical to the tree it was taken from, and every stored chunk object
opens. Seeded: `SEAWALL_CRASH_SEED=<seed>` replays the
draws; `SEAWALL_CRASH_KILLS=<n>` runs n times as many kills.
"""

from __future__ import annotations

import math

from seawall.vault import open_vault
from tests.integration.crash_harness import (
    PASSPHRASE,
    crash_rig,
    done_ids,
    kills,
    lease_taken,
    write_triggers,
)

KILLS_PER_ROUND = 2


def test_kill_backup_files(tmp_path, monkeypatch):
    rig = crash_rig(tmp_path, monkeypatch)
    crash, vault_dir, url, vault, tree, checker = rig.crash, rig.vault_dir, rig.url, rig.vault, rig.tree, rig.checker
    args = ("backup", "files", str(tree.root), "--vault", url, "--dataset", "www")

    def triggers():
        return [lease_taken(vault_dir), *write_triggers(vault_dir)]

    def run(outcome_of, *, cli: bool) -> bool:
        before = done_ids(open_vault(url, PASSPHRASE))
        outcome = outcome_of()
        tree.record(done_ids(open_vault(url, PASSPHRASE)) - before)
        checker.check(url, tree.expected, context=crash.context(outcome), cli=cli or not outcome.killed)
        return outcome.killed

    wanted = kills(8)
    rounds = 0
    while crash.kills < wanted:
        assert rounds < 2 * wanted, f"{crash.context()}: only {crash.kills} of {rounds * KILLS_PER_ROUND} runs killed"
        if rounds:
            tree.mutate()
        # Kills on top of each other's debris, then a run that must recover (unless one ran to its end).
        if all(run(lambda: crash.kill(*args, triggers=triggers()), cli=False) for _ in range(KILLS_PER_ROUND)):
            run(lambda: crash.complete(*args, triggers=triggers()), cli=True)
        rounds += 1
    newest = max(tree.expected)  # ids start with their UTC start time
    checker.restore_cli(url, newest, tree.expected[newest], crash.context())
    assert len(tree.expected) >= rounds, "every round ends with a DONE backup of its tree version"
    assert vault.config.vault_id == open_vault(url, PASSPHRASE).config.vault_id
    assert math.isfinite(crash.durations["backup"].get("start", math.inf))


def test_kill_backup_files_s3(tmp_path, s3_vault_url, monkeypatch):
    """The same on S3 (a moto server on loopback): kills between object PUTs, then a run that recovers."""
    rig = crash_rig(tmp_path, monkeypatch, url=s3_vault_url, default_seconds=2.5, small=40, large=1,
                    large_size=256 << 10)
    crash, tree, checker = rig.crash, rig.tree, rig.checker
    args = ("backup", "files", str(tree.root), "--vault", s3_vault_url, "--dataset", "www")

    def run(outcome_of) -> bool:
        before = done_ids(open_vault(s3_vault_url, PASSPHRASE))
        outcome = outcome_of()
        tree.record(done_ids(open_vault(s3_vault_url, PASSPHRASE)) - before)
        checker.check(s3_vault_url, tree.expected, context=crash.context(outcome), cli=not outcome.killed)
        return outcome.killed

    while crash.kills < kills(2):
        assert crash.runs < 4 * kills(2), f"{crash.context()}: only {crash.kills} of {crash.runs} runs killed"
        if not run(lambda: crash.kill(*args, triggers=[])):
            tree.mutate()  # it ran to its end: give the next one new work
    run(lambda: crash.complete(*args))

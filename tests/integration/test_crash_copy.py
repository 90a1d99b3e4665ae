"""kill -9 at random points of `seawall copy` into a second vault (created by the first run, --init-dest).

The source vault gains a backup of a changing tree each round; a real `seawall copy --from SRC --to
DST --init-dest` is killed from its start, or at once / after a random delay once it holds the
destination's lease, once a pack's temporary file appeared there, once a pack or an index file
was stored there, or once a manifest was written there. After every kill the destination holds
no vault yet, or a sound one: verify --read-data passes, every DONE backup there is one of the
source's and restores identical to the tree it was taken from, every stored chunk opens. The run
that follows must succeed and leave every source backup DONE at the destination; the source is
checked at the end. Seeded: `SEAWALL_CRASH_SEED=<seed>`; `SEAWALL_CRASH_KILLS=<n>`.
"""

from __future__ import annotations

from pathlib import Path

from seawall.vault import CONFIG_KEY
from tests.integration.crash_harness import (
    Trigger,
    crash_rig,
    kills,
    lease_taken,
    new_object,
    write_triggers,
)

KILLS_PER_ROUND = 2


def copy_triggers(dest: Path) -> list[Trigger]:
    return [lease_taken(dest), *write_triggers(dest, " at the destination"),
            new_object(dest / "manifests" / "www", "a manifest written at the destination")]


def test_kill_copy(tmp_path, monkeypatch):
    rig = crash_rig(tmp_path, monkeypatch, vault_name="source vault")
    crash, src_url, tree, checker = rig.crash, rig.url, rig.tree, rig.checker
    dest = tmp_path / "dr vault ü"
    dest_url = f"file://{dest}"
    args = ("copy", "--from", src_url, "--to", dest_url, "--init-dest")

    wanted = kills(6)
    rounds = 0
    while crash.kills < wanted:
        assert rounds < 2 * wanted, f"{crash.context()}: only {crash.kills} of {rounds * KILLS_PER_ROUND} runs killed"
        for _ in range(2):  # two new backups per round: the copy has some work after its start-up
            rig.add_backup()
        for _ in range(KILLS_PER_ROUND):
            outcome = crash.kill(*args, triggers=copy_triggers(dest))
            if not outcome.killed:
                break
            if (dest / CONFIG_KEY).exists():  # killed before the destination vault existed: nothing to check
                checker.check(dest_url, tree.expected, may_be_gone=set(tree.expected),
                              context=crash.context(outcome), cli=False)
        else:
            outcome = crash.complete(*args, triggers=copy_triggers(dest))
        checker.check(dest_url, tree.expected, context=crash.context(outcome))
        rounds += 1
    checker.check(src_url, tree.expected, context=f"{crash.context()} (the source)")
    newest = max(tree.expected)  # ids start with their UTC start time
    checker.restore_cli(dest_url, newest, tree.expected[newest], f"{crash.context()} (the destination)")

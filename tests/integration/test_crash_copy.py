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

from seawall.sources.files import backup_tree
from seawall.vault import CONFIG_KEY, init_vault
from tests.integration.crash_harness import (
    PASSPHRASE,
    Crasher,
    Seawall,
    TreeVersions,
    Trigger,
    VaultChecker,
    crash_seed,
    kills,
    lease_taken,
    new_object,
    write_triggers,
)
from tests.unit.builders import FAST_SCRYPT, SMALL_CHUNKER

KILLS_PER_ROUND = 2


def copy_triggers(dest: Path) -> list[Trigger]:
    return [lease_taken(dest), *write_triggers(dest, " at the destination"),
            new_object(dest / "manifests" / "www", "a manifest written at the destination")]


def test_kill_copy(tmp_path, monkeypatch):
    seed = crash_seed()
    cli = Seawall(tmp_path)
    for name, value in cli.settings().items():  # in-process steps use the same cache and pack size
        monkeypatch.setenv(name, value)
    crash = Crasher(cli, seed)
    print(f"crash test seed: {seed}")
    src_url = f"file://{tmp_path / 'source vault'}"
    dest = tmp_path / "dr vault ü"
    dest_url = f"file://{dest}"
    source = init_vault(src_url, PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)
    tree = TreeVersions(tmp_path / "source tree", crash.rng)
    checker = VaultChecker(cli, tmp_path)
    args = ("copy", "--from", src_url, "--to", dest_url, "--init-dest")

    wanted = kills(6)
    rounds = 0
    while crash.kills < wanted:
        assert rounds < 2 * wanted, f"{crash.context()}: only {crash.kills} of {rounds * KILLS_PER_ROUND} runs killed"
        for _ in range(2):  # two new backups per round: the copy has some work after its start-up
            tree.mutate()
            manifest = backup_tree(source, tree.root, "www", parent=source.latest_backup("www"))
            tree.record({manifest.backup_id})
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

"""kill -9 at random points of `seawall retention --apply` (prune + garbage collection).

A local vault holds backups of a changing tree (each version adds chunks of its own, so every
prune has garbage to sweep) and the debris of a backup killed mid-run: its STARTED manifest and
the shared lease of its dead process, which the prune must break by itself (the PID is gone)
instead of exiting 5; likewise each round's backup (a `seawall backup` process) breaks the
exclusive lease a killed prune left. A real `seawall retention --apply --keep-last K` is killed from its start,
or at once / after a random delay once it holds the exclusive lease, once it deleted its first
manifest, once it wrote a repacked pack or a merged index file, or deleted a pack or an old index
file. After every kill: verify
--read-data passes, every kept backup is still DONE and restores identical to its tree, the ones
the plan removes may or may not be gone, every stored chunk opens. The run that follows must
succeed and leave exactly the newest K. Seeded: `SEAWALL_CRASH_SEED=<seed>`; `SEAWALL_CRASH_KILLS=<n>`.
"""

from __future__ import annotations

import os
from pathlib import Path

from seawall.manifest import BackupStatus
from seawall.vault import Vault, open_vault
from tests.integration.crash_harness import (
    PASSPHRASE,
    Trigger,
    crash_rig,
    delete_triggers,
    kills,
    lease_taken,
    new_object,
    write_triggers,
)

KILLS_PER_ROUND = 2


def manifest_deleted(vault_dir: Path) -> Trigger:
    """Fewer manifests than when the trigger was made: the prune started deleting."""
    folder = vault_dir / "manifests" / "www"
    before = len(os.listdir(folder))
    return Trigger("first manifest deleted", lambda: len(os.listdir(folder)) < before)


def newest(vault: Vault, count: int) -> set[str]:
    done = vault.list_backups("www", status=BackupStatus.DONE)
    return {m.backup_id for m in done[-count:]}


def test_kill_retention_apply(tmp_path, monkeypatch):
    rig = crash_rig(tmp_path, monkeypatch)
    cli, crash, vault_dir, url, vault, tree, checker = (rig.cli, rig.crash, rig.vault_dir, rig.url, rig.vault,
                                                        rig.tree, rig.checker)
    for _ in range(2):
        rig.add_backup()
    # A backup killed once it holds its lease: a dead holder's lease and a STARTED manifest.
    tree.mutate()
    backup = cli.kill_during("backup", "files", str(tree.root), "--vault", url, "--dataset", "www",
                             delay=0.0, trigger=new_object(vault_dir / "manifests" / "www", "STARTED manifest"))
    assert backup.killed and os.listdir(vault_dir / "locks" / "shared"), crash.context(backup)

    def triggers():
        return [lease_taken(vault_dir, "exclusive"), manifest_deleted(vault_dir), *delete_triggers(vault_dir),
                *write_triggers(vault_dir)]  # GC repacks: it writes packs and index files

    wanted = kills(6)
    rounds = 0
    while crash.kills < wanted:
        assert rounds < 2 * wanted, f"{crash.context()}: only {crash.kills} of {rounds * KILLS_PER_ROUND} runs killed"
        rig.add_backup()
        # One backup through the CLI: after a killed prune it must break the dead holder's exclusive
        # lease at once (its PID is gone), not wait or exit 5.
        tree.mutate()
        before = set(newest(vault, 1000))
        made = cli.run("backup", "files", str(tree.root), "--vault", url, "--dataset", "www", timeout=60)
        assert made.returncode == 0, f"{crash.context()}: backup after the prune: {made.stderr[-2000:]}"
        tree.record(newest(vault, 1000) - before)
        keep = crash.rng.randint(1, 3)
        kept = newest(vault, keep)
        removable = set(tree.expected) - kept
        args = ("retention", "--vault", url, "--keep-last", str(keep), "--apply")
        for _ in range(KILLS_PER_ROUND):
            outcome = crash.kill(*args, triggers=triggers())
            if not outcome.killed:
                break
            checker.check(url, tree.expected, may_be_gone=removable, context=crash.context(outcome), cli=False)
        else:
            outcome = crash.complete(*args, triggers=triggers())
        for gone in removable:
            del tree.expected[gone]
        checker.check(url, tree.expected, context=crash.context(outcome))
        assert set(tree.expected) == kept
        rounds += 1
    newest_id = max(tree.expected)  # ids start with their UTC start time
    checker.restore_cli(url, newest_id, tree.expected[newest_id], crash.context())
    assert open_vault(url, PASSPHRASE).list_backups("www", status=BackupStatus.STARTED), \
        "the killed backup's STARTED manifest is kept (grace period), with its chunks"

"""Crash harness: run a real `seawall` process, SIGKILL it at a random point, then check the vault.

The command runs as users run it (the `seawall` console script beside this interpreter, plain mode:
no Prefect API). `Seawall.kill_during` starts it in its own session and sends SIGKILL to the whole
group after a random delay, counted from the start or from a watched condition (`Trigger`: the
lease appeared, a manifest was written ...), so the short windows between two writes are hit
often and not only by luck. `VaultChecker.check` then asserts what a crash must never break:

1. verify --read-data passes (after a kill: `verify_vault` in this process; after the run that
   follows: a `seawall verify --read-data` process, exit 0);
2. the DONE backups are exactly the expected ones (or, after a prune, the kept ones and a subset
   of the others), and each restores byte-identical (content, size, mode, mtime) to the tree it
   was taken from (`TreeVersions` keeps a snapshot of every version, not a copy);
3. every chunk the index lists opens and matches its id, referenced by a backup or not, and every
   pack under its real name has a header that opens: a half-written pack is never indexed (the
   next backup would deduplicate against it);
4. every lease left behind belongs to a dead process on this host (the next taker breaks it).

Every draw comes from one seed, printed and part of every failure message; rerun a failure with
`SEAWALL_CRASH_SEED=<seed>`. `SEAWALL_CRASH_KILLS=<n>` multiplies the number of kills per test.
Timing is the machine's, so a seed reproduces the data and the delays, not the exact instant.

One module per part: `common` (constants, the seed), `triggers`, `runs` (the CLI under a kill plan,
`Crasher`), `trees` (`TreeVersions`), `checker` (`VaultChecker`) and `rig` (a kill test's set-up).

Example:
    ```python
    cli = Seawall(tmp_path)
    outcome = cli.kill_during("backup", "files", str(tree), "--vault", url,
                              delay=0.2, trigger=lease_taken(vault_dir))
    VaultChecker(cli, tmp_path).check(url, versions.expected, context=outcome.describe())
    ```
"""


from tests.integration.crash_harness.checker import CheckResult, VaultChecker
from tests.integration.crash_harness.common import (
    KILLS_ENV,
    PACK_SIZE,
    PASSPHRASE,
    SEAWALL,
    SEED_ENV,
    Snapshot,
    crash_seed,
    kills,
)
from tests.integration.crash_harness.rig import Rig, crash_rig
from tests.integration.crash_harness.runs import Crasher, Durations, Outcome, Seawall
from tests.integration.crash_harness.trees import TreeVersions, done_ids
from tests.integration.crash_harness.triggers import (
    Trigger,
    delete_triggers,
    deleted_below,
    lease_taken,
    new_object,
    new_object_below,
    object_deleted,
    temporary_below,
    write_triggers,
)

__all__ = [
    "KILLS_ENV", "PACK_SIZE", "PASSPHRASE", "SEAWALL", "SEED_ENV", "CheckResult", "Crasher", "Durations", "Outcome",
    "Rig", "Seawall", "Snapshot", "TreeVersions", "Trigger", "VaultChecker", "crash_rig", "crash_seed",
    "delete_triggers", "deleted_below", "done_ids", "kills", "lease_taken", "new_object", "new_object_below",
    "object_deleted", "temporary_below", "write_triggers",
]

"""One crash test's set-up: the CLI, a crasher drawing from the seed, a vault, a changing tree, a checker.

Every kill test starts the same way; only the vault's name (unicode in it on purpose), the tree's
size and how long a command is assumed to run before it ever ran to its end differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seawall.sources.files import backup_tree
from seawall.vault import Vault, init_vault
from tests.integration.crash_harness.checker import VaultChecker
from tests.integration.crash_harness.common import PASSPHRASE, crash_seed
from tests.integration.crash_harness.runs import Crasher, Seawall
from tests.integration.crash_harness.trees import TreeVersions
from tests.unit.builders import FAST_SCRYPT, SMALL_CHUNKER


@dataclass
class Rig:
    cli: Seawall
    crash: Crasher
    vault_dir: Path  # the vault's folder (for a file:// vault)
    url: str
    vault: Vault
    tree: TreeVersions
    checker: VaultChecker

    def add_backup(self, *, mutate: bool = True) -> str:
        """One more DONE backup of (a new version of) the tree, in this process: set-up, not under test."""
        if mutate:
            self.tree.mutate()
        backup_id = backup_tree(self.vault, self.tree.root, "www", parent=self.vault.latest_backup("www")).backup_id
        self.tree.record({backup_id})
        return backup_id


def crash_rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, vault_name: str = "vault é",
              url: str | None = None, default_seconds: float = 1.5, **tree: Any) -> Rig:
    """The parts of a kill test, seeded by `crash_seed()` (printed: rerun with SEAWALL_CRASH_SEED).

    Args:
        vault_name: The vault's folder under `tmp_path` (unless `url` names another vault).
        url: The vault to create, e.g. on S3 (default: `file://` of that folder).
        default_seconds: The kill window until a command has once run to its end (`Crasher`).
        tree: `TreeVersions` sizes (small, large, large_size).
    """
    seed = crash_seed()
    cli = Seawall(tmp_path)
    for name, value in cli.settings().items():  # in-process steps use the same cache and pack size
        monkeypatch.setenv(name, value)
    crash = Crasher(cli, seed, default_seconds=default_seconds)
    print(f"crash test seed: {seed}")
    vault_dir = tmp_path / vault_name
    url = url or f"file://{vault_dir}"
    vault = init_vault(url, PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)
    versions = TreeVersions(tmp_path / "source tree", crash.rng, **tree)
    return Rig(cli, crash, vault_dir, url, vault, versions, VaultChecker(cli, tmp_path))

"""The checks that must hold in a vault after every kill, and after every run that follows one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from seawall.lease import leases_in
from seawall.sources.compare import snapshot
from seawall.sources.files import restore_tree
from seawall.vault import Vault, open_vault
from seawall.vault.packs import PACK_PREFIX, is_pack_key, read_header
from seawall.verify import verify_vault
from tests.integration.crash_harness.common import Snapshot
from tests.integration.crash_harness.runs import Seawall
from tests.integration.crash_harness.trees import done_ids


@dataclass
class CheckResult:
    done: set[str]
    restored: int
    objects: int


class VaultChecker:
    """The checks that must hold after every kill, and after every run that follows one."""

    def __init__(self, cli: Seawall, tmp: Path):
        self.cli, self.tmp = cli, tmp
        self._restores = 0

    def check(self, url: str, expected: dict[str, Snapshot], *, context: str,
              may_be_gone: set[str] | frozenset[str] = frozenset(), cli: bool = True) -> CheckResult:
        """Assert the vault at `url` is sound and holds exactly `expected` (minus `may_be_gone`).

        Args:
            url: The vault.
            expected: backup id → snapshot of the tree it must restore to.
            context: Seed, iteration and kill, for the failure message.
            may_be_gone: Expected ids a prune was allowed to remove (or a copy not yet copied).
            cli: Verify with a `seawall verify --read-data` process; False: the same
                `verify_vault(read_data=True)` in this process (a CLI start costs ~0.5 s).
        """
        vault = open_vault(url, self.cli.passphrase)
        if cli:
            self.verify_cli(url, context)
        else:
            report = verify_vault(vault, read_data=True)
            assert report.ok, f"{context}: verify --read-data: {str(report.to_dict())[:3000]}"
        done = done_ids(vault)
        unexpected = done - set(expected)
        missing = set(expected) - may_be_gone - done
        assert not unexpected, f"{context}: DONE backups nobody expected: {sorted(unexpected)}"
        assert not missing, f"{context}: DONE backups lost: {sorted(missing)}"
        for backup_id in sorted(done):
            self.restore_matches(vault, backup_id, expected[backup_id], context)
        objects = self.objects_open(vault, context)
        self.leases_stale(vault, context)
        return CheckResult(done, len(done), objects)

    def leases_stale(self, vault: Vault, context: str) -> None:
        """No seawall process runs now: a lease left behind must be one the next taker breaks by itself."""
        for record in leases_in(vault.store):
            assert record.holder_gone() or record.expired(), \
                f"{context}: a lease no taker would break: {record.describe()}"

    def verify_cli(self, url: str, context: str) -> dict:
        proc = self.cli.run("verify", "--vault", url, "--read-data", "--json")
        assert proc.returncode == 0, f"{context}: `seawall verify --read-data` exit {proc.returncode}: " \
                                     f"{proc.stderr.strip()[-2000:]} {proc.stdout[-2000:]}"
        report = json.loads(proc.stdout)
        assert report["ok"], f"{context}: verify says not ok: {report}"
        return report

    def restore_cli(self, url: str, backup_id: str, want: Snapshot, context: str) -> None:
        """`seawall restore` as a process (once per test: the in-process restores cover every backup)."""
        self._restores += 1
        target = self.tmp / f"restore-{self._restores}"
        proc = self.cli.run("restore", backup_id, "--vault", url, "--to", str(target))
        assert proc.returncode == 0, f"{context}: `seawall restore {backup_id}` exit {proc.returncode}: {proc.stderr}"
        got = snapshot(target)
        assert got == want, f"{context}: `seawall restore {backup_id}` differs from its tree: {_diff(got, want)}"
        _rmtree(target)

    def restore_matches(self, vault: Vault, backup_id: str, want: Snapshot, context: str) -> None:
        self._restores += 1
        target = self.tmp / f"restore-{self._restores}"
        restore_tree(vault, vault.require_done(backup_id), target)
        got = snapshot(target)
        assert got == want, f"{context}: backup {backup_id} restores differently from its tree: {_diff(got, want)}"
        _rmtree(target)

    def objects_open(self, vault: Vault, context: str) -> int:
        """Every chunk the vault knows opens and matches its id (no torn writes, no index entry
        pointing into a half-written pack), and every pack under its real name has a header that opens."""
        count = 0
        for chunk_id in sorted(vault.known_chunks(refresh=True)):
            try:
                vault.get_chunk(chunk_id)
            except Exception as exc:
                raise AssertionError(f"{context}: stored chunk {chunk_id} does not open: {exc}") from exc
            count += 1
        for info in vault.store.list(PACK_PREFIX):
            if not is_pack_key(info.key):
                continue
            try:
                read_header(vault.store, vault.keyring, info.key, info.size)
            except Exception as exc:
                raise AssertionError(f"{context}: pack {info.key} does not open: {exc}") from exc
        return count


def _diff(got: Snapshot, want: Snapshot) -> list:
    return sorted(set(got.items()) ^ set(want.items()))[:5]


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)

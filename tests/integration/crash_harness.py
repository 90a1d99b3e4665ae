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

Example:
    ```python
    cli = Seawall(tmp_path)
    outcome = cli.kill_during("backup", "files", str(tree), "--vault", url,
                              delay=0.2, trigger=lease_taken(vault_dir))
    VaultChecker(cli, tmp_path).check(url, versions.expected, context=outcome.describe())
    ```
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import random
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seawall.lease import leases_in
from seawall.manifest import BackupStatus
from seawall.sources.compare import snapshot
from seawall.sources.files import restore_tree
from seawall.vault import Vault, open_vault
from seawall.vault.packs import PACK_PREFIX, is_pack_key, read_header
from seawall.verify import verify_vault

SEAWALL = str(Path(sys.executable).with_name("seawall"))
PASSPHRASE = "crash 'test' passphrase é"
SEED_ENV = "SEAWALL_CRASH_SEED"
KILLS_ENV = "SEAWALL_CRASH_KILLS"
_POLL = 0.001
PACK_SIZE = 256 << 10
Snapshot = dict[str, tuple]


# Read when the tests are collected: the root conftest's `clean_env` removes SEAWALL_* before each test.
_SEED = os.environ.get(SEED_ENV)
_KILLS = max(1, int(os.environ.get(KILLS_ENV) or "1"))


def crash_seed() -> int:
    """The seed of this run: SEAWALL_CRASH_SEED, else a fresh one (printed by the caller)."""
    return int(_SEED) if _SEED else random.SystemRandom().randrange(1 << 31)


def kills(base: int) -> int:
    """`base` kills, times SEAWALL_CRASH_KILLS (default 1) for longer runs."""
    return base * _KILLS


# ---- triggers: conditions watched while the command runs --------------------------------------------
@dataclass(frozen=True)
class Trigger:
    """A named condition polled every millisecond; the kill delay counts from when it first holds."""

    name: str
    holds: Callable[[], bool]
    close: Callable[[], None] = lambda: None


def lease_taken(vault_dir: Path, kind: str = "shared") -> Trigger:
    """The command took a lease on a local vault (its real work starts).

    Make it just before the run: a lease a killed process left behind is not taken for a new one.
    """
    if kind == "exclusive":
        lease = vault_dir / "locks" / "lease"
        stale = _mtime(lease)
        return Trigger("exclusive lease taken", lambda: _mtime(lease) != stale)
    return new_object(vault_dir / "locks" / "shared", "shared lease taken")


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def new_object(directory: Path, name: str) -> Trigger:
    """An object appears in `directory` that was not there when the trigger was made."""
    before = set(os.listdir(directory)) if directory.is_dir() else set()

    def holds() -> bool:
        try:
            return any(n not in before and not n.startswith(".tmp-") for n in os.listdir(directory))
        except FileNotFoundError:
            return False

    return Trigger(name, holds)


class _Below:
    """Names that appear one level below a folder (e.g. `data/ab/<pack-id>`), seen through inotify:
    no polling of hundreds of folders while the command runs (that would steal its CPU)."""

    CREATED = 0x100 | 0x80  # IN_CREATE | IN_MOVED_TO
    DELETED = 0x200 | 0x40  # IN_DELETE | IN_MOVED_FROM
    _ISDIR = 0x40000000

    def __init__(self, directory: Path, events: int = CREATED):
        self.directory = directory
        self.want = events  # what `new` reports; creations are always watched, to follow new subfolders
        self.fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs: dict[int, str] = {}  # watch descriptor → folder
        self.top = False

    def _watch(self, path: str) -> bool:
        wd = _LIBC.inotify_add_watch(self.fd, os.fsencode(path), self.want | self.CREATED | 0x01000000)  # IN_ONLYDIR
        if wd < 0:
            return False
        self.dirs[wd] = path
        return True

    def _start(self) -> None:
        """Watch the folder and its subfolders once it exists (a new vault's `data/` may not yet)."""
        if self.top or not self._watch(str(self.directory)):
            return
        self.top = True
        for name in _listdir(str(self.directory)):
            self._watch(os.path.join(self.directory, name))

    def new(self) -> set[str]:
        """Names that appeared (or, watching DELETED, went) since the last call, temporaries included."""
        self._start()
        fresh: set[str] = set()
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return fresh
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, size = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16:offset + 16 + size].rstrip(b"\0").decode(errors="replace")
                offset += 16 + size
                if self.dirs.get(wd) == str(self.directory):
                    if mask & self._ISDIR and mask & self.CREATED:  # watch a new subfolder; take what it holds
                        sub = os.path.join(self.directory, name)
                        self._watch(sub)
                        if self.want & self.CREATED:
                            fresh.update(_listdir(sub))
                elif mask & self.want:
                    fresh.add(name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def new_object_below(directory: Path, name: str) -> Trigger:
    """A new object under its real name (not a `.tmp-*` temporary) appears below `directory`."""
    below = _Below(directory)
    below.new()
    return Trigger(name, lambda: any(not n.startswith(".tmp-") for n in below.new()), below.close)


def temporary_below(directory: Path, name: str) -> Trigger:
    """A new `.tmp-*` file appears below `directory`: an object is being written."""
    below = _Below(directory)
    below.new()
    return Trigger(name, lambda: any(n.startswith(".tmp-") for n in below.new()), below.close)


def deleted_below(directory: Path, name: str) -> Trigger:
    """An object (not a temporary) below `directory` is deleted or renamed away."""
    below = _Below(directory, _Below.DELETED)
    below.new()
    return Trigger(name, lambda: any(not n.startswith(".tmp-") for n in below.new()), below.close)


def object_deleted(directory: Path, name: str) -> Trigger:
    """An object (not a temporary) in the flat folder `directory` is gone (polled: a few names)."""
    before = {n for n in _listdir(str(directory)) if not n.startswith(".tmp-")}
    return Trigger(name, lambda: not before.issubset(_listdir(str(directory))))


def write_triggers(vault_dir: Path, where: str = "") -> list[Trigger]:
    """The windows around chunk writes: a pack being written, a pack stored, an index file written."""
    return [temporary_below(vault_dir / "data", f"a pack being written{where}"),
            new_object_below(vault_dir / "data", f"a pack stored{where}"),
            new_object(vault_dir / "index", f"an index file written{where}")]


def delete_triggers(vault_dir: Path) -> list[Trigger]:
    """The windows around GC's deletions: a pack deleted, an index file deleted."""
    return [deleted_below(vault_dir / "data", "a pack deleted"),
            object_deleted(vault_dir / "index", "an index file deleted")]


_LIBC = ctypes.CDLL(None, use_errno=True)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


# ---- running the CLI ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What became of one command run under a kill plan."""

    args: tuple[str, ...]
    killed: bool
    code: int | None
    seconds: float
    trigger: str
    delay: float
    fired: dict[str, float] = field(default_factory=dict)  # trigger name → seconds from start until it held
    err: str = ""

    def describe(self) -> str:
        cmd = " ".join(self.args[:2])
        if not self.killed:
            return f"`seawall {cmd}` ran to its end (exit {self.code}) in {self.seconds:.2f}s"
        held = f" (held at {self.fired[self.trigger]:.3f}s)" if self.trigger in self.fired else ""
        return f"kill -9 of `seawall {cmd}` {self.delay:.3f}s after {self.trigger}{held}, {self.seconds:.2f}s in"


@dataclass
class Seawall:
    """The `seawall` console script in plain mode, with its own PREFECT_HOME and passphrase."""

    tmp: Path
    passphrase: str = PASSPHRASE
    extra_env: dict[str, str] = field(default_factory=dict)

    def settings(self) -> dict[str, str]:
        """What the test process shares with the commands (`monkeypatch.setenv` them for in-process steps):
        its own index cache, and small packs so a few MiB make several packs and GC has some to repack."""
        return {"SEAWALL_CACHE_DIR": str(self.tmp / "seawall-cache"), "SEAWALL_PACK_SIZE": str(PACK_SIZE)}

    def env(self) -> dict[str, str]:
        home = self.tmp / "prefect-home"
        home.mkdir(exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SEAWALL_"))}
        return {**base, "PREFECT_HOME": str(home), "SEAWALL_PASSPHRASE": self.passphrase, "COLUMNS": "200",
                **self.settings(), **self.extra_env}

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([SEAWALL, *args], env=self.env(), cwd=self.tmp, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def kill_during(self, *args: str, delay: float, trigger: Trigger | None = None,
                    watch: list[Trigger] | tuple[Trigger, ...] = (), timeout: float = 120) -> Outcome:
        """Run the command; SIGKILL its process group `delay` s after its start (or after `trigger` held).

        `delay=math.inf` runs it to its end. Every trigger in `watch` (and `trigger`) is timed,
        which `Durations` learns from.
        """
        watched = {t.name: t for t in (*watch, *([trigger] if trigger else []))}
        fired: dict[str, float] = {}
        err_path = self.tmp / f"stderr-{time.monotonic_ns()}.txt"
        killed = False
        with open(err_path, "w") as err:
            started = time.monotonic()
            proc = subprocess.Popen([SEAWALL, *args], env=self.env(), cwd=self.tmp, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            kill_at = started + delay if trigger is None else None
            while proc.poll() is None:
                now = time.monotonic()
                for name, t in watched.items():
                    if name not in fired and t.holds():
                        fired[name] = now - started
                        if trigger is not None and name == trigger.name:
                            kill_at = now + delay
                if kill_at is not None and now >= kill_at:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                    break
                if now - started > timeout:
                    os.killpg(proc.pid, signal.SIGKILL)
                    raise AssertionError(f"`seawall {' '.join(args)}` did not end within {timeout}s")
                time.sleep(_POLL)
            code = proc.wait()
        seconds = time.monotonic() - started
        for t in watched.values():
            t.close()
        text = err_path.read_text(errors="replace")
        err_path.unlink()
        return Outcome(tuple(args), killed and code == -signal.SIGKILL, code, seconds,
                       trigger.name if trigger else "start", delay, fired, text)


# ---- source trees and their versions --------------------------------------------------------------
class TreeVersions:
    """A source tree that changes between backups, and a snapshot of every version backed up.

    Names hold spaces, quotes and non-ASCII; a few hundred small files and two larger ones (several
    chunks each with the tests' small chunker), so a backup writes many objects in little time.
    """

    def __init__(self, root: Path, rng: random.Random, small: int = 200, large: int = 2, large_size: int = 1 << 20):
        self.root, self.rng = root, rng
        self.expected: dict[str, Snapshot] = {}  # backup id → the tree it was taken from
        self.current: Snapshot = {}
        self._small = [f"dossier é/note 'q' {i:03d}.txt" for i in range(small)]
        self._large = [f"blobs/large {i} \"x\".bin" for i in range(large)]
        self._large_size = large_size
        for rel in self._small:
            self._write(rel, self.rng.randbytes(self.rng.randrange(64, 4096)))
        for rel in self._large:
            self._write(rel, self.rng.randbytes(large_size))
        self.freeze()

    def _write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def mutate(self) -> None:
        """Change some small files, add and delete a few, rewrite part of one large file."""
        for rel in self.rng.sample(self._small, 15):
            self._write(rel, self.rng.randbytes(self.rng.randrange(64, 4096)))
        gone = self.rng.sample(self._small, 3)
        for rel in gone:
            (self.root / rel).unlink()
            self._small.remove(rel)
        for _ in range(5):
            rel = f"new {self.rng.randrange(10**9)}/ñ {self.rng.randrange(10**6)}.dat"
            self._write(rel, self.rng.randbytes(self.rng.randrange(64, 8192)))
            self._small.append(rel)
        big = self.root / self.rng.choice(self._large)
        data = bytearray(big.read_bytes())
        at = self.rng.randrange(len(data) - (64 << 10))
        data[at:at + (64 << 10)] = self.rng.randbytes(64 << 10)
        big.write_bytes(bytes(data))
        self.freeze()

    def freeze(self) -> None:
        """Snapshot the tree as it is now: the version the next backups take."""
        self.current = snapshot(self.root)

    def record(self, backup_ids: set[str]) -> None:
        """Backups that appeared while the tree was at its current version."""
        for backup_id in backup_ids:
            self.expected[backup_id] = self.current


def done_ids(vault: Vault) -> set[str]:
    return {m.backup_id for m in vault.list_backups(status=BackupStatus.DONE)}


# ---- checking a vault after a crash ---------------------------------------------------------------
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


@dataclass
class Durations:
    """How long a command ran, from its start and from each trigger: the windows kills are drawn in.

    A run that ended by itself widens a window to what it saw (runs after a crash have less to
    do than the first one); a kill that came too late narrows it below what that run took.
    """

    seen: dict[str, float] = field(default_factory=dict)

    def get(self, trigger: str, default: float) -> float:
        return self.seen.get(trigger, default)

    def learn(self, outcome: Outcome) -> None:
        if outcome.killed or outcome.code != 0:
            return
        spans = {"start": outcome.seconds} | {n: outcome.seconds - at for n, at in outcome.fired.items()}
        for name, span in spans.items():
            self.seen[name] = max(self.seen.get(name, 0.0), span)

    def too_late(self, outcome: Outcome) -> None:
        """The kill was drawn after the command's end: the next window ends before that end."""
        at = 0.0 if outcome.trigger == "start" else outcome.fired.get(outcome.trigger)
        if at is not None:
            self.seen[outcome.trigger] = 0.75 * (outcome.seconds - at)


class Crasher:
    """Draws the kill plans of one test from its seed, runs them and keeps count.

    A plan is a trigger (or none: from the process start) and a delay: either none ("at once",
    to land in the window right after the condition held, e.g. between a chunk's creation and
    its last byte) or drawn uniformly within how long the command ran after that trigger the last
    time it ran to its end (`Durations`), so kills land inside the command's work. Plans are dealt
    from a shuffled deck of every (trigger, at once / random) pair, so a few kills cover them all.
    """

    def __init__(self, cli: Seawall, seed: int, *, default_seconds: float = 1.5):
        self.cli, self.seed = cli, seed
        self.rng = random.Random(seed)
        self.durations: dict[str, Durations] = {}
        self.default = default_seconds
        self.kills = 0
        self.runs = 0
        self.log: list[str] = []
        self._deck: list[tuple[int | None, bool]] = []

    def _durations(self, args: tuple[str, ...]) -> Durations:
        return self.durations.setdefault(args[0], Durations())

    def _deal(self, triggers: int) -> tuple[int | None, bool]:
        if not self._deck:
            self._deck = [(None, False)] + [(i, at_once) for i in range(triggers) for at_once in (True, False)]
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    def kill(self, *args: str, triggers: list[Trigger]) -> Outcome:
        """Run `seawall *args` and SIGKILL it at a random point (it may end first: then `killed` is False).

        `triggers` come in the same order at every call of a test (the deck holds their positions).
        """
        durations = self._durations(args)
        index, at_once = self._deal(len(triggers))
        trigger = None if index is None else triggers[index]
        window = durations.get(trigger.name if trigger else "start", durations.get("start", self.default))
        delay = 0.0 if at_once else self.rng.uniform(0.0, window)
        outcome = self.cli.kill_during(*args, delay=delay, trigger=trigger, watch=triggers)
        if not outcome.killed:
            assert outcome.code == 0, f"{self.context(outcome)}: {outcome.err[-2000:]}"
            durations.too_late(outcome)
            # Deal it again later, unless its condition never held (e.g. a prune with nothing to repack).
            if trigger is None or trigger.name in outcome.fired:
                self._deck.insert(self.rng.randrange(len(self._deck) + 1), (index, at_once))
        self.runs += 1
        self.kills += outcome.killed
        self.log.append(self.context(outcome))
        print(self.log[-1])
        return outcome

    def complete(self, *args: str, triggers: list[Trigger] = ()) -> Outcome:
        """Run `seawall *args` to its end (the run after a crash: it must succeed)."""
        outcome = self.cli.kill_during(*args, delay=math.inf, watch=triggers)
        self._durations(args).learn(outcome)
        self.runs += 1
        self.log.append(self.context(outcome))
        print(self.log[-1])
        assert outcome.code == 0, f"{self.context(outcome)}: the run after the crash failed: {outcome.err[-2000:]}"
        return outcome

    def context(self, outcome: Outcome | None = None) -> str:
        what = f": {outcome.describe()}" if outcome else ""
        return f"[{SEED_ENV}={self.seed} run {self.runs}]{what}"

"""Running the CLI under a kill plan: the command, what became of it, and the plans drawn from the seed."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.crash_harness.common import PACK_SIZE, PASSPHRASE, POLL, SEAWALL, SEED_ENV
from tests.integration.crash_harness.triggers import Trigger


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
                time.sleep(POLL)
            code = proc.wait()
        seconds = time.monotonic() - started
        for t in watched.values():
            t.close()
        text = err_path.read_text(errors="replace")
        err_path.unlink()
        return Outcome(tuple(args), killed and code == -signal.SIGKILL, code, seconds,
                       trigger.name if trigger else "start", delay, fired, text)


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

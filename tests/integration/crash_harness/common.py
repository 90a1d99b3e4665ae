"""Constants and the seed every draw of a crash test comes from."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

SEAWALL = str(Path(sys.executable).with_name("seawall"))
PASSPHRASE = "crash 'test' passphrase é"
SEED_ENV = "SEAWALL_CRASH_SEED"
KILLS_ENV = "SEAWALL_CRASH_KILLS"
POLL = 0.001
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

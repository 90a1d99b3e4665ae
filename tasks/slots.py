"""The per-vault Prefect slot around write and prune phases (`seawall-vault-<name>`, made by `seawall deploy`).

`seawall deploy` creates one global concurrency limit per policy vault, limit 1, and tags every
deployment `vault:<name>` with the vault its runs write to (the backup's vault, the copy's
destination, the pruned vault). A task's write or prune phase runs inside `vault_slot()`, which
takes that vault's slot through Prefect's `concurrency()`: a retention's prune waits until no
backup or copy is writing into the same vault, and a vault never has more writers than its limit,
however many workers pick up the nightly.

The slot schedules; it does not protect the data. The vault's own leases (`seawall.lease`: shared
for writers, exclusive for pruning) do, in every mode. So where no slot name is known (plain mode,
or a CLI/Python run that no deployment tagged) or the limit is gone, the phase runs without one.

A holder that dies (its worker killed, its machine gone) keeps its slot until its Prefect lease
expires (`SEAWALL_SLOT_LEASE_SECONDS`, default 300, at least 60; renewed in the background while the
holder lives) and the server's repossessor service frees it (every 15 s by default). The limits have
no slot decay, on purpose: see `deployments.apply._limits`.

A slot that stays taken anyway (a server restarted under a holder, a limit set by hand) must not
hang a nightly: the wait is bounded (`SEAWALL_SLOT_WAIT_SECONDS`, default 3600). The run log says
every minute how long it has waited and what the limit shows; past the bound the phase goes on
under the vault's own lease with a warning naming the slot and the fix. A server error while asking
(Prefect's own retries spent) does the same, for the same reason: the slot only schedules.

Example:
    ```python
    from tasks.slots import vault_slot
    with vault_slot(), shared_lease(vault, "backup www"):
        ...  # write
    ```
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from tasks.mode import in_prefect_run

SLOT_PREFIX = "seawall-vault-"
VAULT_TAG = "vault:"
LEASE_ENV = "SEAWALL_SLOT_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 300.0  # Prefect's own default for concurrency() leases


def slot_name(tags: list[str] | None) -> str | None:
    """`seawall-vault-<name>` from a run's `vault:<name>` tag (None without one)."""
    for tag in tags or []:
        if tag.startswith(VAULT_TAG) and len(tag) > len(VAULT_TAG):
            return SLOT_PREFIX + tag[len(VAULT_TAG):]
    return None


MIN_LEASE_SECONDS = 60.0  # the Prefect 3.8 server refuses shorter leases (422)
WAIT_ENV = "SEAWALL_SLOT_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 3600.0  # a dataset an hour late for its turn already threatens its RPO
PROGRESS_SECONDS = 60.0  # a "still waiting" line this often


def lease_seconds() -> float:
    """How long a dead holder keeps the slot (`SEAWALL_SLOT_LEASE_SECONDS`; at least 60 s)."""
    return _seconds(LEASE_ENV, DEFAULT_LEASE_SECONDS, MIN_LEASE_SECONDS)[0]


def wait_seconds() -> float:
    """How long a phase waits for its slot before going on under the vault lease alone
    (`SEAWALL_SLOT_WAIT_SECONDS`; at least 1 s)."""
    return _seconds(WAIT_ENV, DEFAULT_WAIT_SECONDS, 1.0)[0]


def _seconds(env: str, default: float, minimum: float) -> tuple[float, str | None]:
    """The variable's seconds (at least `minimum`), and what was wrong with it (None: nothing)."""
    raw = os.environ.get(env)
    if raw is None:
        return default, None
    try:
        return max(minimum, float(raw)), None
    except ValueError:
        return default, f"{env}={raw!r} is not a number of seconds: using {default:.0f}; set it to e.g. 600"


def _current_slot() -> str | None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    return slot_name(list(run.tags or [])) if run is not None else None


@contextlib.contextmanager
def vault_slot() -> Iterator[str | None]:
    """Hold the running deployment's vault slot for the block; yields its name (None: no slot taken)."""
    name = _current_slot() if in_prefect_run() else None
    if name is None:
        yield None
        return
    with contextlib.ExitStack() as held:
        yield name if _acquire(held, name) else None


def _acquire(stack: contextlib.ExitStack, name: str) -> bool:
    """Take the slot into `stack` within wait_seconds(); False (with a warning) when it did not come."""
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
    from prefect.concurrency.sync import concurrency
    from prefect.logging import get_run_logger

    logger, asked, limit = get_run_logger(), time.monotonic(), wait_seconds()
    settings = ((LEASE_ENV, DEFAULT_LEASE_SECONDS, MIN_LEASE_SECONDS), (WAIT_ENV, DEFAULT_WAIT_SECONDS, 1.0))
    for problem in filter(None, (_seconds(*setting)[1] for setting in settings)):
        logger.warning(problem)  # a typo in a worker's environment must not pass unseen
    logger.info("waiting for vault slot %s", name)
    while True:
        left = asked + limit - time.monotonic()
        try:
            # Not strict: a limit deleted by hand leaves the vault leases alone in charge (with Prefect's warning).
            stack.enter_context(concurrency(name, occupy=1, lease_duration=lease_seconds(), strict=False,
                                            timeout_seconds=max(0.1, min(PROGRESS_SECONDS, left))))
        except TimeoutError:
            waited = time.monotonic() - asked
            if waited >= limit:
                logger.warning("vault slot %s not free after %.0f s (%s): going on under the vault's own lease; "
                               "if no run writes to this vault, the slot is stuck (%s): README, 'A dead holder'",
                               name, waited, WAIT_ENV, _occupancy(name))
                return False
            logger.info("still waiting for vault slot %s: %.0f s so far (%s)", name, waited, _occupancy(name))
            continue
        except ConcurrencySlotAcquisitionError as exc:
            logger.warning("vault slot %s could not be asked for (%s): going on under the vault's own lease",
                           name, str(exc).splitlines()[0])
            return False
        logger.info("holding vault slot %s (waited %.1f s)", name, time.monotonic() - asked)
        return True


def _occupancy(name: str) -> str:
    """What the server shows for the limit, for the log line (best effort)."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(name)
    except Exception as exc:  # a detail of a log line: the wait goes on either way
        return f"limit unreadable: {type(exc).__name__}"
    return f"{limit.active_slots} of {limit.limit} slots taken"

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


def lease_seconds() -> float:
    """How long a dead holder keeps the slot (`SEAWALL_SLOT_LEASE_SECONDS`; at least 60 s)."""
    try:
        return max(MIN_LEASE_SECONDS, float(os.environ.get(LEASE_ENV, DEFAULT_LEASE_SECONDS)))
    except ValueError:
        return DEFAULT_LEASE_SECONDS


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
    import time

    from prefect.concurrency.sync import concurrency
    from prefect.logging import get_run_logger

    logger, asked = get_run_logger(), time.monotonic()
    logger.info("waiting for vault slot %s", name)
    # Not strict: a limit deleted by hand leaves the vault leases alone in charge (with Prefect's warning).
    with concurrency(name, occupy=1, lease_duration=lease_seconds(), strict=False):
        logger.info("holding vault slot %s (waited %.1f s)", name, time.monotonic() - asked)
        yield name

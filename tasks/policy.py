"""The retry policy shared by every task: retry only errors seawall classified as transient.

Prefect applies it in Prefect mode, `tasks/plain.py` in plain mode (same options, same meaning);
this module imports no Prefect.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from seawall.errors import RetryableError


def only_retryable(task: Any, task_run: Any, state: Any) -> bool:
    """`retry_condition_fn`: True only when the task failed with a RetryableError.

    Unknown exceptions count as permanent, so a bug is never retried into duplicate uploads.
    """
    try:
        state.result()
    except RetryableError:
        return True
    except BaseException:
        return False
    return False


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """Delays `factor * 2**n` for n = 0..retries-1, as `prefect.tasks.exponential_backoff` (at most 50)."""

    def delays(retries: int) -> list[float]:
        return [backoff_factor * 2**r for r in range(min(retries, 50))]

    return delays


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


# Tunable per deployment (and shrunk by tests): SEAWALL_TASK_RETRIES, SEAWALL_RETRY_BACKOFF_SECONDS.
RETRYABLE: dict[str, Any] = dict(
    retries=int(_env_number("SEAWALL_TASK_RETRIES", 4)),
    retry_delay_seconds=exponential_backoff(backoff_factor=_env_number("SEAWALL_RETRY_BACKOFF_SECONDS", 10)),
    retry_jitter_factor=0.5,
    retry_condition_fn=only_retryable,
)

"""A process-wide progress hook, so the CLI can draw bars for work done inside Prefect tasks.

Tasks run in the CLI's own process and thread; passing a callback through task parameters would
defeat Prefect's input hashing, so the CLI installs the hook here and the core calls `advance()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Hook = Callable[[str, int, int | None], None]  # (phase, advance bytes/items, total or None)
_hook: Hook | None = None


@contextlib.contextmanager
def installed(hook: Hook) -> Iterator[None]:
    global _hook
    previous, _hook = _hook, hook
    try:
        yield
    finally:
        _hook = previous


def listening() -> bool:
    """True when a progress hook is installed (a bar is drawn): worth computing totals for it."""
    return _hook is not None


def reporter(phase: str, total: int | None = None) -> Callable[[int], None] | None:
    """A per-phase callback for the core, or None when nobody listens."""
    hook = _hook
    if hook is None:
        return None
    hook(phase, 0, total)
    return lambda n: hook(phase, n, None)

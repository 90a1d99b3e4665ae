"""Plain-mode execution of seawall's flows and tasks: no Prefect, the same function bodies.

What a flow body uses from Prefect, in plain Python: task retries (the policy of
`tasks/policy.py`: count, exponential backoff, jitter, retry condition), `.submit()` futures on a
thread pool, `return_state=True` states, the retry count of the running task, and `log_prints`
(`print` inside a flow goes to the `seawall.runs` logger, so it never mixes into `--json` output).
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

logger = logging.getLogger("seawall.runs")
_run_count: contextvars.ContextVar[int] = contextvars.ContextVar("seawall_run_count", default=1)
_log_prints: contextvars.ContextVar[bool] = contextvars.ContextVar("seawall_log_prints", default=False)


class PlainState:
    """The outcome of a plain task call, shaped like the part of Prefect's `State` flows use."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error

    def is_completed(self) -> bool:
        return self._error is None

    def is_failed(self) -> bool:
        return self._error is not None

    def result(self, raise_on_failure: bool = True) -> Any:
        if self._error is not None:
            if raise_on_failure:
                raise self._error
            return self._error
        return self._value


class PlainFuture:
    """A submitted plain task: `.wait()`, `.state`, `.result()` like a PrefectFuture."""

    def __init__(self, future: Future) -> None:
        self._future = future

    def wait(self, timeout: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            self._future.exception(timeout)

    @property
    def state(self) -> PlainState:
        if not self._future.done():
            return PlainState(error=RuntimeError("task still running"))
        return self._future.result()

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        self._future.exception(timeout)
        return self._future.result().result(raise_on_failure)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def submit(call: Callable[[], PlainState]) -> PlainFuture:
    """Run `call` on the shared task pool, in a copy of the caller's context (run count, prints)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="seawall-task")
    context = contextvars.copy_context()
    return PlainFuture(_pool.submit(context.run, call))


def run_task(fn: Callable[..., Any], args: tuple, kwargs: dict, options: dict[str, Any], name: str) -> PlainState:
    """Call `fn`, retrying as Prefect would with the same options; never raises (see the state)."""
    retries = int(options.get("retries") or 0)
    delays = _delays(options.get("retry_delay_seconds"), retries)
    attempt = 1
    while True:
        token = _run_count.set(attempt)
        try:
            return PlainState(fn(*args, **kwargs))
        except Exception as exc:
            if attempt > retries:
                return PlainState(error=exc)
            state = PlainState(error=exc)
            condition = options.get("retry_condition_fn")
            if condition is not None and not condition(None, None, state):
                return state
            delay = _jittered(delays[min(attempt - 1, len(delays) - 1)] if delays else 0,
                              options.get("retry_jitter_factor"))
            logger.warning("task %s failed (%s); retry %d of %d in %.1f s", name,
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__, attempt, retries, delay)
            time.sleep(delay)
            attempt += 1
        finally:
            _run_count.reset(token)


def _delays(spec: Any, retries: int) -> list[float]:
    if spec is None:
        return [0.0]
    if callable(spec):
        spec = spec(retries)
    if isinstance(spec, (int, float)):
        return [float(spec)]
    return [float(d) for d in spec] or [0.0]


def _jittered(delay: float, factor: float | None) -> float:
    """Prefect draws a clamped Poisson delay around `delay`, at most `delay * (1 + factor)`;
    a uniform draw in the same bounds spreads retries of parallel runs as well."""
    if not factor or delay <= 0:
        return delay
    return random.uniform(max(0.0, delay * (1 - factor)), delay * (1 + factor))


def run_count() -> int:
    """Which attempt of the running plain task this is (1 = first)."""
    return _run_count.get()


# ---- log_prints -------------------------------------------------------------------------------
_real_print = builtins.print
_patch_lock = threading.Lock()


def _print(*args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False) -> None:
    if file is None and _log_prints.get():
        logger.info((sep if sep is not None else " ").join(str(a) for a in args))
        return
    _real_print(*args, sep=sep, end=end, file=file, flush=flush)


def run_flow(fn: Callable[..., Any], args: tuple, kwargs: dict, log_prints: bool) -> Any:
    """Call a flow body; with `log_prints`, its prints (and its tasks') become log records."""
    with _patch_lock:
        if builtins.print is not _print:
            builtins.print = _print
    _ensure_handler()
    token = _log_prints.set(bool(log_prints))
    try:
        return fn(*args, **kwargs)
    finally:
        _log_prints.reset(token)


def _ensure_handler() -> None:
    """Like Prefect's run logger, `seawall.runs` writes INFO to stderr unless the app configured it."""
    if logger.handlers or logger.level != logging.NOTSET:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

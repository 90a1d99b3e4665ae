"""A deployment run's failure says which task failed and the first line of the error.

Prefect's failed-state message for a flow is `Flow run encountered an exception: <Type>: <text>`:
neither the task nor the stage. Deployment entrypoints wrap each flow so an exception leaving it
is re-raised as `StageFailed("task preflight_files: ConfigError: source folder ... does not
exist")`; the failure alert (deployments/alerts.py) prints that line. The failing task is the
outermost frame of the traceback that runs a task function of the `tasks` package (helpers it
called are deeper; retry plumbing that re-raised it is skipped). The original exception is the
`__cause__`, its exit code kept.

Example:
    ```python
    from deployments.failures import describing_failures
    nightly = describing_failures(backup_files)     # same flow, same parameters, clearer failures
    ```
"""

from __future__ import annotations

import functools
import types
from types import TracebackType

from seawall.errors import PermanentError, SeawallError


class StageFailed(PermanentError):
    """A deployment run failed: `task <name>: <Type>: <first line>` (the cause is chained).

    Permanent: it is raised once the flow has given up (its tasks' retries are spent).
    """


def failing_task(exc: BaseException) -> str | None:
    """The task function whose code raised `exc` (or its cause), if any did."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = _outermost_task_frame(exc.__traceback__)
        if name:
            return name
        exc = exc.__cause__ or exc.__context__
    return None


def describe(exc: BaseException, flow_name: str) -> str:
    """`task preflight_files: ConfigError: source folder ...` (first line of the error only)."""
    lines = str(exc).strip().splitlines()
    first = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    task = failing_task(exc)
    return f"task {task}: {first}" if task else f"flow {flow_name}: {first}"


def describing_failures(flow):
    """A copy of `flow` whose failures are StageFailed naming the failing task (parameters unchanged)."""
    fn = flow.fn
    if getattr(fn, "__seawall_describes__", False):
        return flow
    wrapped = flow.with_options()
    wrapped.fn = _in_globals_of(fn, _describing(fn, flow.name))
    return wrapped


def _describing(fn, flow_name: str):
    # Everything the wrapper uses is a closure variable: it runs with `fn`'s module globals (below).
    stage_failed, describe_, seawall_error = StageFailed, describe, SeawallError

    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            code = exc.exit_code if isinstance(exc, seawall_error) else None
            raise stage_failed(describe_(exc, flow_name), exit_code=code) from exc

    return run


def _in_globals_of(fn, wrapper):
    """`wrapper` rebuilt on `fn`'s module globals, with `fn`'s name, signature and docs.

    Prefect validates a flow's parameters by resolving its string annotations (`from __future__
    import annotations`) in the function's globals: the wrapper must see the flow module's names.
    """
    rebuilt = types.FunctionType(wrapper.__code__, fn.__globals__, fn.__name__, wrapper.__defaults__,
                                 wrapper.__closure__)
    functools.update_wrapper(rebuilt, fn)
    rebuilt.__seawall_describes__ = True
    return rebuilt


def _outermost_task_frame(tb: TracebackType | None) -> str | None:
    """The first frame (outermost) running a task function; else the outermost frame in `tasks.*`.

    Task functions are told apart from plumbing that re-raises (a retry condition calling
    `state.result()` is in the traceback too, above the task's own frame).
    """
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    task_code = _task_functions()
    for frame in frames:
        if frame.f_code in task_code:
            return task_code[frame.f_code]
    return next((f.f_code.co_name for f in frames if f.f_globals.get("__name__", "").startswith("tasks.")), None)


def _task_functions() -> dict:
    """Code object → task function name, for every task defined in a loaded `tasks.*` module."""
    import sys

    out = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("tasks.") or module is None:
            continue
        for obj in list(vars(module).values()):
            fn = getattr(obj, "fn", None)
            code = getattr(fn, "__code__", None)
            if code is not None and getattr(fn, "__module__", "") == name:
                out[code] = fn.__name__
    return out

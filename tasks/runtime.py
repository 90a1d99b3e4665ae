"""The runtime seam: `@flow` and `@task` that are Prefect flows/tasks only when Prefect is in play.

seawall's flows and tasks are the one definition of each DAG. They are written once, with these
decorators instead of Prefect's, and run two ways:

- **Prefect mode** (a run inside Prefect, or a Prefect API configured: see `tasks/mode.py`): the
  call goes to a real `prefect.flow(...)(fn)` / `prefect.task(...)(fn)`, built on first use and
  cached. Runs appear in the UI with tags, artifacts, events, Prefect's retries and concurrency.
  Deployments load `deployments/entrypoints.py`, which exports these materialised Prefect flows.
- **Plain mode** (no API configured): the same function bodies run as plain Python, with the same
  retry policy (`tasks/plain.py`), `.submit()` on a thread pool, states for `return_state=True`;
  artifacts, tags and events are skipped. Prefect is never imported: a CLI command starts in
  ~0.1 s instead of ~1 s for `import prefect` plus ~10 CPU-s for an ephemeral API server.

Why a seam and not plain step functions that Prefect tasks wrap: with the seam there is one
function per step and one flow body per DAG, decorated once; a second set of "plain" functions
would be a second copy of every flow body to keep in step. The price is this module and the
`*Config` models of `seawall/configs/` (blocks subclass them; see below).

Writing a flow or task (the pattern for every module in flows/ and tasks/):

```python
from __future__ import annotations
from typing import TYPE_CHECKING

from seawall.configs.vault import VaultConfig, as_vault_target
from tasks.runtime import NO_CACHE, create_table_artifact, flow, label_run, task

if TYPE_CHECKING:  # block types: resolved by the seam when the Prefect flow is built (UI forms)
    from blocks.vault import VaultTarget

@task(name="count-backups", retries=2, cache_policy=NO_CACHE)
def count_backups(vault: VaultConfig) -> int:
    return len(vault.open_vault().list_backups())

@flow(name="count", stage="report", log_prints=True)
def count(vault: VaultTarget | str) -> int:
    target = as_vault_target(vault)
    label_run()                       # tags the Prefect run: seawall, stage:report
    return count_backups(target)
```

- Never `from prefect import ...` in flows/ or tasks/: use this module (`flow`, `task`,
  `NO_CACHE`, `create_markdown_artifact`, `create_table_artifact`, `run_count`, `label_run`).
- Flow parameters take a block *or* a plain value (`VaultTarget | str`); import block types under
  `TYPE_CHECKING` only. Tasks take the `*Config` models of `seawall/configs/` (every block is one).
- A flow that completes a pipeline stage calls `deployments.events.emit_completed` (a no-op in
  plain mode), so CLI, Python and deployment runs emit the same events.
- Anything else Prefect offers (`.serve()`, `.deploy()`, `.map()` ...) is reached through the
  wrapper (attribute access builds the Prefect object) and needs Prefect mode.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from tasks import plain
from tasks.mode import in_prefect_run, prefect_mode


class _NoCache:
    """Stands for `prefect.cache_policies.NO_CACHE` until a Prefect task is built."""

    def __repr__(self) -> str:
        return "NO_CACHE"


NO_CACHE: Any = _NoCache()
BASE_TAG = "seawall"


class Flow:
    """A seawall flow: a Prefect flow in Prefect mode, its plain function body otherwise."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self.fn, self.options = fn, options
        self.name: str = options.get("name") or fn.__name__.replace("_", "-")
        self.stage: str | None = getattr(fn, "__seawall_stage__", None)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not prefect_mode():
            return plain.run_flow(self.fn, args, kwargs, bool(self.options.get("log_prints")))
        import prefect

        with prefect.tags(*run_tags(self.stage)):
            return self.prefect(*args, **kwargs)

    @functools.cached_property
    def prefect(self) -> Any:
        """The real Prefect flow (imports Prefect; block types resolved for parameter schemas)."""
        import prefect

        _resolve_annotations(self.fn)
        return prefect.flow(**self.options)(self.fn)

    def with_options(self, **options: Any) -> Flow:
        return Flow(self.fn, {**self.options, **options})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("fn", "options", "prefect"):
            raise AttributeError(name)
        return getattr(self.prefect, name)


class Task:
    """A seawall task: a Prefect task in Prefect mode, a retried plain call otherwise."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self.fn, self.options = fn, options
        self.name: str = options.get("name") or fn.__name__
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, return_state: bool = False, **kwargs: Any) -> Any:
        if prefect_mode():
            return self.prefect(*args, return_state=return_state, **kwargs)
        state = plain.run_task(self.fn, args, kwargs, self.options, self.name)
        return state if return_state else state.result()

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        """A future with `.wait()`, `.state` and `.result()` (a PrefectFuture in Prefect mode)."""
        if prefect_mode():
            return self.prefect.submit(*args, **kwargs)
        return plain.submit(lambda: plain.run_task(self.fn, args, kwargs, self.options, self.name))

    def with_options(self, **options: Any) -> Task:
        return Task(self.fn, {**self.options, **options})

    @functools.cached_property
    def prefect(self) -> Any:
        import prefect
        from prefect.cache_policies import NO_CACHE as PREFECT_NO_CACHE

        options = {k: (PREFECT_NO_CACHE if v is NO_CACHE else v) for k, v in self.options.items()}
        return prefect.task(**options)(self.fn)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("fn", "options", "prefect"):
            raise AttributeError(name)
        return getattr(self.prefect, name)


def flow(fn: Callable[..., Any] | None = None, *, stage: str | None = None, **options: Any) -> Any:
    """`@flow(name=..., stage="backup", log_prints=True)`: Prefect's flow options, plus the stage
    this flow stands for in the pipeline (tagged `stage:<stage>` on its runs)."""

    def decorate(f: Callable[..., Any]) -> Flow:
        f.__seawall_stage__ = stage  # type: ignore[attr-defined] - read back from the Prefect run
        return Flow(f, options)

    return decorate(fn) if fn is not None else decorate


def task(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """`@task(name=..., **RETRYABLE, cache_policy=NO_CACHE)`: Prefect's task options."""

    def decorate(f: Callable[..., Any]) -> Task:
        return Task(f, options)

    return decorate(fn) if fn is not None else decorate


# ---- what a run publishes: tags, artifacts, retry count (no-ops in plain mode) -------------------
def run_tags(stage: str | None, *datasets: str | None) -> list[str]:
    return [BASE_TAG, *([f"stage:{stage}"] if stage else []), *(f"dataset:{d}" for d in datasets if d)]


def label_run(*datasets: str | None) -> None:
    """Tag the current Prefect flow run `seawall`, `stage:<stage>` and `dataset:<name>` (deployment,
    CLI and Python runs alike, so alerts and the UI filter them the same way)."""
    if not in_prefect_run():
        return
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    stage = getattr(context.flow.fn, "__seawall_stage__", None) if context.flow else None
    run = context.flow_run
    tags = sorted(set(run.tags or []) | set(run_tags(stage, *datasets)))
    if tags != sorted(run.tags or []):
        with get_client(sync_client=True) as client:
            client.update_flow_run(run.id, tags=tags)
        run.tags = tags


def create_markdown_artifact(**kwargs: Any) -> Any:
    """Prefect's markdown artifact in Prefect mode; nothing in plain mode (the CLI prints reports)."""
    if not prefect_mode():
        return None
    from prefect.artifacts import create_markdown_artifact as create

    return create(**kwargs)


def create_table_artifact(**kwargs: Any) -> Any:
    """Prefect's table artifact in Prefect mode; nothing in plain mode."""
    if not prefect_mode():
        return None
    from prefect.artifacts import create_table_artifact as create

    return create(**kwargs)


def run_count() -> int:
    """The attempt number of the running task (1 = first try), in either mode."""
    if in_prefect_run():
        from prefect.runtime import task_run

        return task_run.run_count or 1
    return plain.run_count()


def _resolve_annotations(fn: Callable[..., Any]) -> None:
    """Evaluate string annotations with the block types in scope, so Prefect builds parameter
    schemas (and UI block selectors) from real types although flows import blocks only for typing."""
    import blocks

    namespace = {**fn.__globals__, **{name: getattr(blocks, name) for name in blocks.__all__}}
    for name, annotation in list(fn.__annotations__.items()):
        if isinstance(annotation, str):
            try:
                fn.__annotations__[name] = eval(annotation, namespace)
            except Exception:
                continue

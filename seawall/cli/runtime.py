"""Process set-up for the CLI: Prefect defaults set before anything can import Prefect, and the
runtime choice for job commands.

`prepare_environment()` runs first thing in `seawall.cli.entry.main` (Prefect reads its settings
when first imported). It never lets Prefect start an ephemeral API server behind the user's back
(`PREFECT_SERVER_ALLOW_EPHEMERAL_MODE=false`): with no API configured, job commands run their flows
in plain mode (`tasks/mode.py`) and never import Prefect; with one configured, they run as flow
runs on it, after a health probe that turns a down server into one line and exit 2 at once.
"""

from __future__ import annotations

import logging
import os

_DEFAULTS = {
    "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    # Only reached when a user allows ephemeral mode: its first start migrates a database (~9 s here).
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # pydantic looks for plugins (logfire...) by scanning every installed distribution's entry
    # points when the first model is built: ~10 ms of every CLI process, for plugins seawall never uses.
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
}


def prepare_environment() -> None:
    """Set seawall's Prefect defaults unless the user set them (must run before Prefect is imported)."""
    for name, value in _DEFAULTS.items():
        os.environ.setdefault(name, value)


def start_runtime(verbose: bool) -> bool:
    """Get the process ready to run a flow; returns True in Prefect mode.

    Prefect mode: probe the configured API (ConfigError, exit 2, when it does not answer), import
    Prefect and quieten its console logs. Plain mode: route the runs' log lines (prints, retries)
    to stderr only with --verbose.
    """
    from tasks.mode import check_api, configured_api_url, prefect_mode

    prepare_environment()
    if not prefect_mode():
        _quiet_plain_runs(verbose)
        return False
    url = configured_api_url()
    if url:
        check_api(url)
    import prefect.main  # noqa: F401  - loads Prefect and configures its logging, which we then quieten

    quiet_prefect_console(verbose)
    return True


def _quiet_plain_runs(verbose: bool) -> None:
    logger = logging.getLogger("seawall.runs")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.CRITICAL + 1)
    logger.propagate = False


def quiet_prefect_console(verbose: bool) -> None:
    """Hide Prefect's console logs (they carry tracebacks) unless asked; API logging is untouched."""
    if verbose:
        return
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.server", "uvicorn"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.CRITICAL + 1)

"""Which runtime a flow call uses, decided without importing Prefect (`import prefect` costs ~1 s).

Prefect mode: the call runs as a Prefect flow/task run (UI, artifacts, events, retries by Prefect).
Plain mode: the same function bodies run as plain Python (retries by `tasks.plain`), no server.

Prefect mode when, in this order:

1. `SEAWALL_PREFECT=off` → plain, always; `SEAWALL_PREFECT=on` → Prefect, always (with no API
   configured Prefect then refuses, unless you also allow its ephemeral server); `auto` (default):
2. we are inside a Prefect flow or task run (a deployment run, a flow under the test harness);
3. a Prefect API is configured where Prefect itself looks: `PREFECT_API_URL` in the environment
   (set but empty means none), a `.env` file, `prefect.toml` (`[api] url`) or `pyproject.toml`
   (`[tool.prefect.api] url`) in the working directory, or the active profile
   (`PREFECT_PROFILE`, else the `active` key of `$PREFECT_PROFILES_PATH`, default
   `$PREFECT_HOME/profiles.toml`, `PREFECT_HOME` default `~/.prefect`);
4. Prefect is already imported and its current settings carry an API URL (`prefect_test_harness`,
   `temporary_settings`).

Otherwise plain. A Prefect Cloud workspace is an API URL like any other.

Example:
    ```python
    from tasks.mode import prefect_mode, configured_api_url
    prefect_mode()          # False on a machine with no Prefect server configured
    configured_api_url()    # None, or "http://127.0.0.1:4200/api"
    ```
"""

from __future__ import annotations

import os
import sys
import tomllib
from functools import lru_cache
from pathlib import Path

from seawall.errors import ConfigError

MODE_ENV = "SEAWALL_PREFECT"
_MODES = ("auto", "on", "off")


def mode_setting() -> str:
    value = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if value not in _MODES:
        raise ConfigError(f"{MODE_ENV}={value!r} is not a runtime mode", hint="use auto, on or off")
    return value


def prefect_mode() -> bool:
    """True when a flow or task called now should run through Prefect (see the module docstring)."""
    setting = mode_setting()
    if setting != "auto":
        return setting == "on"
    return in_prefect_run() or configured_api_url() is not None or _imported_api_url() is not None


def in_prefect_run() -> bool:
    """Inside a Prefect flow or task run (only possible once Prefect is imported)."""
    if "prefect.context" not in sys.modules:
        return False
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def _imported_api_url() -> str | None:
    if "prefect.settings" not in sys.modules:
        return None
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def configured_api_url() -> str | None:
    """The API URL Prefect would use, read from its configuration sources without importing it."""
    if "PREFECT_API_URL" in os.environ:
        return os.environ["PREFECT_API_URL"].strip() or None
    key = (os.environ.get("PREFECT_PROFILES_PATH"), os.environ.get("PREFECT_HOME"),
           os.environ.get("PREFECT_PROFILE"), os.getcwd())
    return _file_api_url(*key)


@lru_cache(maxsize=8)
def _file_api_url(profiles_path: str | None, home: str | None, profile: str | None, cwd: str) -> str | None:
    for finder in (lambda: _dotenv_url(Path(cwd) / ".env"),
                   lambda: _toml_get(Path(cwd) / "prefect.toml", ("api", "url")),
                   lambda: _toml_get(Path(cwd) / "pyproject.toml", ("tool", "prefect", "api", "url")),
                   lambda: _profile_url(profiles_path, home, profile)):
        url = finder()
        if url is not None:
            return url.strip() or None
    return None


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _toml_get(path: Path, keys: tuple[str, ...]) -> str | None:
    node: object = _read_toml(path)
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return str(node) if node is not None else None


def _dotenv_url(path: Path) -> str | None:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        name, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and name.strip() == "PREFECT_API_URL":
            return value.strip().strip("'\"")
    return None


def _profile_url(profiles_path: str | None, home: str | None, profile: str | None) -> str | None:
    """PREFECT_API_URL of the active profile (user file first, then Prefect's packaged defaults)."""
    home_dir = Path(home).expanduser() if home else Path.home() / ".prefect"
    user = _read_toml(Path(profiles_path).expanduser() if profiles_path else home_dir / "profiles.toml")
    defaults = _read_toml(_packaged_profiles()) if not user or profile else {}
    active = profile or user.get("active") or defaults.get("active")
    for source in (user, defaults):
        settings = source.get("profiles", {}).get(active) if active else None
        if isinstance(settings, dict):
            url = settings.get("PREFECT_API_URL")
            return str(url) if url else None
    return None


def _packaged_profiles() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("prefect")  # locates the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0], "settings", "profiles.toml") if locations else Path("/nonexistent")


def check_api(url: str, timeout: float = 5.0) -> None:
    """Raise ConfigError (exit 2) at once when the configured API does not answer.

    Any HTTP answer counts as reachable (Prefect Cloud answers `/health` with its own codes); only a
    refused connection, a timeout or a bad URL is an error, so a down server never hangs a command.
    """
    import urllib.error  # only in Prefect mode: urllib.request costs ~40 ms to import
    import urllib.request

    health = url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(f"the Prefect API at {_safe(url)} is unreachable ({reason})",
                          hint="start it (prefect server start), fix PREFECT_API_URL / the active Prefect "
                          f"profile, or set {MODE_ENV}=off to run without Prefect") from None


def _safe(url: str) -> str:
    from seawall.stores import redact_url

    return redact_url(url)

"""The Prefect API that `seawall deploy` writes to: configured, answering, or one clear error.

A deploy never starts an ephemeral API (it would write into a database no server serves) and
never waits on Prefect's client retries: the API must be configured (`PREFECT_API_URL` or the
active Prefect profile) and answer `/health` within a few seconds, else `ConfigError` (exit 2).

Example:
    ```python
    from deployments.api import connect
    with connect() as client:
        print(client.read_work_pools())
    ```
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from seawall.errors import ConfigError

PROBE_TIMEOUT_S = 5.0
START_HINT = ("start a server (`prefect server start`) and point seawall at it: "
              "`export PREFECT_API_URL=http://127.0.0.1:4200/api`")


def configured_api_url() -> str | None:
    """The API URL from the environment or the active Prefect profile; None when none is configured."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def probe(url: str) -> None:
    """One GET of `<url>/health` with a short timeout; ConfigError naming the URL when it fails."""
    import httpx

    from seawall.redact import redact

    shown = redact(url)
    try:
        response = httpx.get(url.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S, headers=_auth())
    except httpx.TimeoutException:
        raise ConfigError(f"the Prefect API at {shown} did not answer within {PROBE_TIMEOUT_S:.0f} s",
                          hint=f"check PREFECT_API_URL, or {START_HINT}") from None
    except httpx.HTTPError as exc:
        raise ConfigError(f"the Prefect API at {shown} is unreachable ({type(exc).__name__}: {exc})",
                          hint=f"check PREFECT_API_URL, or {START_HINT}") from None
    if response.status_code >= 400:
        raise ConfigError(f"the Prefect API at {shown} answered HTTP {response.status_code} on /health",
                          hint="PREFECT_API_URL must be the API's URL, ending in /api")


@contextlib.contextmanager
def connect() -> Iterator:
    """A sync Prefect client for the configured, answering API (ConfigError when there is none)."""
    from prefect.client.orchestration import get_client

    url = configured_api_url()
    if url is None:
        raise ConfigError("no Prefect API configured: seawall deploys into a running Prefect server",
                          hint=START_HINT)
    probe(url)
    with get_client(sync_client=True) as client:
        yield client


def _auth() -> dict[str, str]:
    from prefect.settings import get_current_settings

    key = get_current_settings().api.key
    return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}

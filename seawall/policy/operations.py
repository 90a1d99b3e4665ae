"""`drills:` and `alerts:` — the drills deployed beside the backups, and who hears about problems."""

from __future__ import annotations

from pydantic import Field

from seawall.policy.fields import EnvName, OneOf, Strict
from seawall.policy.schedule import Schedule


class RestoreDrillSpec(Strict):
    """The weekly restore drill (restore at a random point in time in the DR region)."""

    schedule: Schedule
    datasets: list[str] | None = Field(None, description="Datasets to drill (default: every dataset).")


class FailoverDrillSpec(Strict):
    """Defaults for the failover drill deployment (run on demand from the Prefect UI)."""

    primary: str = Field(description="Name of the primary's saved `seawall-postgres-node` block.")
    standby: str = Field(description="Name of the standby's saved `seawall-postgres-node` block.")
    switch_command: str | None = Field(None, description="Command that moves traffic to the promoted node.")
    dataset: str | None = Field(None, description="The dataset this cluster serves: its RTO/RPO judge the drill "
                                "(default: the strictest of the PostgreSQL datasets).")


class DrillsSpec(Strict):
    restore: RestoreDrillSpec | None = None
    failover: FailoverDrillSpec | None = None


class WebhookSpec(OneOf):
    """A webhook: its URL in an environment variable (Slack-style URLs are secrets) or, for a sink, inline."""

    one_of = ("url", "url_env")

    url: str | None = Field(None, description="Webhook URL (only for URLs that are not secret).")
    url_env: EnvName | None = Field(None, description="Environment variable holding the URL at deploy time.")


class AlertsSpec(Strict):
    """Who hears about failed or crashed runs and stale datasets."""

    webhooks: list[WebhookSpec] = Field(default_factory=list)
    blocks: list[str] = Field(default_factory=list, description="Names of saved Prefect notification blocks "
                              "(slug/name, e.g. 'slack-webhook/ops').")
    on_failure: bool = True
    on_staleness: bool = True

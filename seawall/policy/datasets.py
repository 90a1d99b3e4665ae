"""`datasets:` — what to back up (one source each), where to, and the objectives it must meet."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from seawall.policy.fields import Duration, EnvName, OneOf, Strict
from seawall.policy.schedule import Schedule
from seawall.retention import RetentionPolicy


class PostgresSpec(OneOf):
    """A PostgreSQL source: a `PostgresSource` block name or the env var holding the DSN."""

    one_of = ("block", "dsn_env")

    block: str | None = Field(None, description="Name of a saved PostgresSource block.")
    dsn_env: EnvName | None = Field(None, description="Environment variable holding the DSN on the worker.")
    mode: Literal["logical", "physical"] = "logical"
    jobs: int = Field(2, ge=1, le=64, description="pg_dump parallel jobs (logical); reader threads (physical).")
    method: Literal["datadir", "basebackup"] = Field(
        "datadir", description="Physical: read the data directory (the worker runs on the database host) "
                               "or stream pg_basebackup (from any host).")


class MariaDBSpec(OneOf):
    """A MariaDB/MySQL source: a `MariaDBSource` block name or the env var holding the DSN."""

    one_of = ("block", "dsn_env")

    block: str | None = Field(None, description="Name of a saved MariaDBSource block.")
    dsn_env: EnvName | None = Field(None, description="Environment variable holding the DSN on the worker.")
    mode: Literal["logical", "physical"] = "logical"
    binlog_schedule: Schedule | None = Field(None, description="Archive binlogs on this schedule (PITR; its "
                                             "interval bounds the RPO of a point-in-time restore).")


class RedisSpec(OneOf):
    """A Redis source: a `RedisSource` block name or the env var holding the URL."""

    one_of = ("block", "url_env")

    block: str | None = Field(None, description="Name of a saved RedisSource block.")
    url_env: EnvName | None = Field(None, description="Environment variable holding the URL on the worker.")


class FilesSpec(Strict):
    """A file tree: a local absolute path or ssh://user@host[:port]/path."""

    path: str = Field(description="Absolute local path or ssh://user@host[:port]/path.")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not (value.startswith("/") or value.startswith("ssh://")):
            raise ValueError(f"{value!r} is neither an absolute path nor ssh://user@host/path")
        return value


class DatasetSpec(Strict):
    """One dataset: its source, vaults, objectives, schedule and retention."""

    postgres: PostgresSpec | None = None
    files: FilesSpec | None = None
    mariadb: MariaDBSpec | None = None
    redis: RedisSpec | None = None
    vault: str = Field(description="Name of the vault (under `vaults`) the backups go to.")
    copy_to: str | None = Field(None, description="Name of the DR vault the backups are copied to.")
    rpo: Duration = Field(description="Recovery point objective, e.g. 26h.")
    rto: Duration = Field(description="Recovery time objective, e.g. 30m.")
    schedule: Schedule
    retention: RetentionPolicy | None = None
    verify: bool = Field(True, description="Run restore verification after each copy.")
    tier: str | None = Field(None, description="Criticality tier shown in the readiness report, e.g. tier-1.")

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if sum(x is not None for x in (self.postgres, self.files, self.mariadb, self.redis)) != 1:
            raise ValueError("give exactly one of postgres, files, mariadb or redis")
        return self

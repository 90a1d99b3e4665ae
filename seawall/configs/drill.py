"""Drill configuration: a PostgreSQL node, a traffic switch, the objectives (the fields of the
`PostgresNode`, `TrafficSwitchBlock` and `DrillObjectives` blocks). No drill logic lives here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr, model_validator

from seawall.configs.postgres import split_password
from seawall.configs.ssh import SshConfig
from seawall.errors import ConfigError
from seawall.postgres.conn import PgConn


class PostgresNodeConfig(BaseModel):
    """A PostgreSQL server a drill can query and operate (locally with pg_ctl, or over SSH).

    Example:
        ```python
        from seawall.configs.drill import PostgresNodeConfig

        node = PostgresNodeConfig(name="primary", dsn="host=/run/pg port=5432", datadir="/srv/pg").get_node()
        ```
    """

    name: str = Field(description="Label used in reports, e.g. primary or db-eu-1.")
    dsn: str = Field(description="libpq conninfo or URI to reach the server (also used for replication).")
    password: SecretStr | None = Field(default=None, description="Password (empty: .pgpass or trust).")
    datadir: str = Field(description="The server's data directory on its host.")
    bindir: str | None = Field(default=None, description="Directory of pg_ctl/pg_rewind; empty: local pg_config.")
    logfile: str | None = Field(default=None, description="Server log written by pg_ctl; empty: <datadir>.log.")
    ssh: SshConfig | None = Field(default=None, description="Reach the host over SSH; empty: this machine.")
    server_user: str = Field(default="postgres", description="OS user owning the data directory (SSH: via sudo).")
    endpoint: str | None = Field(default=None, description="What the traffic switch points at (DNS name or IP).")

    @model_validator(mode="after")
    def _password_out_of_dsn(self) -> Any:
        """A password written into the DSN moves into the secret field (never a visible parameter)."""
        self.dsn, secret = split_password(self.dsn)
        if secret is not None and self.password is None:
            self.password = SecretStr(secret)
        return self

    def get_pgconn(self) -> PgConn:
        return PgConn(self.dsn, self.password)

    def get_node(self):
        """The `PgNode` (LocalNode or SshNode) for this server."""
        from seawall.drill.node import LocalNode, SshNode

        if self.ssh is None:
            return LocalNode(self.name, self.get_pgconn(), self.datadir, self.bindir or "", self.logfile or "")
        if not self.bindir:
            raise ConfigError(f"node {self.name}: give bindir for an SSH node (e.g. /usr/lib/postgresql/15/bin)")
        return SshNode(self.name, self.get_pgconn(), self.datadir, self.bindir, ssh=self.ssh.ssh_options(),
                       logfile=self.logfile or "", server_user=self.server_user)

    def display(self) -> str:
        where = self.ssh.display() if self.ssh else "local"
        return f"{self.name} ({where}, {self.get_pgconn().display()}, {self.datadir})"


class TrafficSwitchConfig(BaseModel):
    """Where client traffic goes: a Route53 record (UPSERT through boto3) or a user command.

    Example:
        ```python
        from seawall.configs.drill import TrafficSwitchConfig

        switch = TrafficSwitchConfig(command="/usr/local/bin/point-db-at").get_switch()
        ```
    """

    route53_zone_id: str | None = Field(default=None, description="Hosted zone id, e.g. Z0123456789ABC.")
    record_name: str | None = Field(default=None, description="Record to UPSERT, e.g. db.example.com.")
    record_type: str = Field(default="CNAME", description="CNAME (a host name) or A (an IPv4 address).")
    ttl: int = Field(default=30, description="TTL of the record, in seconds.")
    aws_access_key_id: str | None = Field(default=None, description="Access key; empty: the default AWS chain.")
    aws_secret_access_key: SecretStr | None = Field(default=None, description="Secret key of that access key.")
    region: str | None = Field(default=None, description="AWS region for the client (Route53 is global).")
    endpoint_url: str | None = Field(default=None, description="Custom endpoint (tests: a moto server).")
    command: str | None = Field(default=None, description="Shell command run with SEAWALL_DRILL_TARGET set.")

    def get_switch(self):
        from seawall.drill.switch import CommandSwitch, Route53Switch

        if bool(self.command) == bool(self.route53_zone_id):
            raise ConfigError("traffic switch: give either route53_zone_id + record_name, or command")
        if self.command:
            return CommandSwitch(self.command)
        if not self.record_name:
            raise ConfigError("traffic switch: record_name is required with route53_zone_id")
        creds = {}
        if self.aws_access_key_id and self.aws_secret_access_key is not None:
            creds = {"aws_access_key_id": self.aws_access_key_id,
                     "aws_secret_access_key": self.aws_secret_access_key.get_secret_value()}
        return Route53Switch(self.route53_zone_id, self.record_name, self.record_type, self.ttl,
                             self.endpoint_url, self.region, creds)


class DrillObjectivesConfig(BaseModel):
    """The recovery objectives a drill is judged against.

    Example:
        ```python
        from seawall.configs.drill import DrillObjectivesConfig

        objectives = DrillObjectivesConfig(rto_seconds=120, rpo_seconds=5)
        ```
    """

    rto_seconds: float = Field(default=300, description="Longest acceptable outage: fence to checks passed.")
    rpo_seconds: float = Field(default=60, description="Most data loss acceptable, in seconds of commits.")
    max_verified_backup_age_seconds: float | None = Field(
        default=None, description="Preflight: newest verified backup must be younger (needs a vault + dataset).")

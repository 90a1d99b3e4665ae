"""Prefect blocks: configuration, secrets and client factories. No backup logic lives here."""

from blocks.drill import DrillObjectives, PostgresNode, TrafficSwitchBlock
from blocks.mariadb import MariaDBSource
from blocks.postgres import PostgresSource
from blocks.redis import RedisSource
from blocks.ssh import SshHost
from blocks.vault import VaultTarget

__all__ = ["DrillObjectives", "MariaDBSource", "PostgresNode", "PostgresSource", "RedisSource", "SshHost",
           "TrafficSwitchBlock", "VaultTarget"]

"""Blocks for failover drills: a PostgreSQL node, a traffic switch, and the drill's objectives.

Fields and factories are those of `seawall.configs.drill`; the blocks add Prefect's storage and UI
(a node's `ssh` field is an `SshHost` block, so the UI offers a block selector).
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from blocks.ssh import SshHost
from seawall.configs.drill import DrillObjectivesConfig, PostgresNodeConfig, TrafficSwitchConfig


class PostgresNode(PostgresNodeConfig, Block):
    """A PostgreSQL server a drill can query and operate (locally with pg_ctl, or over SSH).

    Example:
        ```python
        from blocks.drill import PostgresNode

        primary = PostgresNode.load("BLOCK_NAME")
        node = primary.get_node()
        ```
    """

    _block_type_name = "Seawall PostgreSQL Node"
    _block_type_slug = "seawall-postgres-node"
    _description = "A PostgreSQL server seawall's failover drill queries and operates (pg_ctl, pg_rewind)."

    ssh: SshHost | None = Field(default=None, description="Reach the host over SSH; empty: this machine.")


class TrafficSwitchBlock(TrafficSwitchConfig, Block):
    """Where client traffic goes: a Route53 record (UPSERT through boto3) or a user command.

    Example:
        ```python
        from blocks.drill import TrafficSwitchBlock

        switch = TrafficSwitchBlock.load("BLOCK_NAME").get_switch()
        ```
    """

    _block_type_name = "Seawall Traffic Switch"
    _block_type_slug = "seawall-traffic-switch"
    _description = "Points client traffic at a PostgreSQL node during a drill (Route53 or a command)."


class DrillObjectives(DrillObjectivesConfig, Block):
    """The recovery objectives a drill is judged against.

    Example:
        ```python
        from blocks.drill import DrillObjectives

        objectives = DrillObjectives.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Seawall Drill Objectives"
    _block_type_slug = "seawall-drill-objectives"
    _description = "Recovery time and recovery point objectives for seawall's drills."

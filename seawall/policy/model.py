"""The whole policy file as one model; each section's model lives in its own module."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator

from seawall.policy.datasets import DatasetSpec
from seawall.policy.fields import Duration, Strict
from seawall.policy.operations import AlertsSpec, DrillsSpec
from seawall.policy.problems import Problem, dotted, line_of
from seawall.policy.schedule import Schedule
from seawall.policy.vaults import VaultSpec
from seawall.readiness import settings as _readiness
from seawall.readiness.settings import ReadinessSpec

# readiness.settings refers to Schedule by name only: importing it from here would be circular.
_readiness.rebuild(Schedule)


class Policy(Strict):
    """The whole policy file (`readiness`: see `seawall.readiness.settings`)."""

    version: Literal[1] = 1
    work_pool: str = Field("seawall", description="Process work pool the deployments run on.")
    vaults: dict[str, VaultSpec]
    datasets: dict[str, DatasetSpec]
    drills: DrillsSpec = Field(default_factory=DrillsSpec)
    alerts: AlertsSpec = Field(default_factory=AlertsSpec)
    unresponsive_after: Duration | None = Field(
        timedelta(minutes=10), description="A run whose heartbeats stop this long is marked Crashed (workers "
        "send them every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds: Prefect's default 180, minimum 30).")
    readiness: ReadinessSpec = Field(default_factory=lambda: ReadinessSpec())
    # (file name, YAML node tree) of the text this policy was parsed from, to locate later problems
    _source: tuple[str, Any] = PrivateAttr(default=("seawall.yaml", None))

    @field_validator("unresponsive_after")
    @classmethod
    def _beyond_a_heartbeat(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value.total_seconds() <= 30:
            raise ValueError("must be longer than 30s, Prefect's shortest heartbeat interval (e.g. 10m)")
        return value

    def problem(self, loc: tuple, message: str) -> Problem:
        """A Problem located at `loc` (e.g. `("vaults", "dr", "block")`) in the file this policy came from."""
        filename, root = self._source
        return Problem(filename, line_of(root, loc), dotted(loc), message)

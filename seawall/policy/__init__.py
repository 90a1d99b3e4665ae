"""The policy file, `seawall.yaml`: what to back up, where, how often, and who hears about problems.

A pydantic model of the file, and `load_policy(path)`, which reports every problem at once with
the file, the LINE, the field and what is allowed — typo'd keys, wrong types, unknown vault names,
invalid cron expressions or time zones, an RPO the schedule cannot meet — before anything is
deployed. Secrets never live in the file: it names Prefect blocks or environment variables.

One module per concern: `fields` (durations, shared bases), `schedule`, `vaults`, `datasets`,
`operations` (drills, alerts), `model` (the whole file), `problems` (locating errors by line) and
`load` (parsing and the checks across sections).

Example:
    ```python
    from seawall.policy import load_policy
    policy = load_policy("seawall.yaml")          # raises PolicyError listing every problem
    for name, ds in policy.datasets.items():
        print(name, ds.schedule.cron, ds.rpo)
    ```
"""

from seawall.policy.datasets import DatasetSpec, FilesSpec, MariaDBSpec, PostgresSpec, RedisSpec
from seawall.policy.fields import Duration, EnvName, parse_duration
from seawall.policy.load import cross_checks, load_policy, parse_policy
from seawall.policy.model import Policy
from seawall.policy.operations import AlertsSpec, DrillsSpec, FailoverDrillSpec, RestoreDrillSpec, WebhookSpec
from seawall.policy.problems import PolicyError, Problem
from seawall.policy.schedule import Schedule
from seawall.policy.vaults import TransitionSpec, VaultSpec

__all__ = [
    "AlertsSpec", "DatasetSpec", "DrillsSpec", "Duration", "EnvName", "FailoverDrillSpec", "FilesSpec",
    "MariaDBSpec", "Policy", "PolicyError", "PostgresSpec", "Problem", "RedisSpec", "RestoreDrillSpec",
    "Schedule", "TransitionSpec", "VaultSpec", "WebhookSpec", "cross_checks", "load_policy", "parse_duration",
    "parse_policy",
]

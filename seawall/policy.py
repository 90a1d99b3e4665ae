"""The policy file, `seawall.yaml`: what to back up, where, how often, and who hears about problems.

A pydantic model of the file, and `load_policy(path)`, which reports every problem at once with
the file, the LINE, the field and what is allowed — typo'd keys, wrong types, unknown vault names,
invalid cron expressions or time zones, an RPO the schedule cannot meet — before anything is
deployed. Secrets never live in the file: it names Prefect blocks or environment variables.

Example:
    ```python
    from seawall.policy import load_policy
    policy = load_policy("seawall.yaml")          # raises PolicyError listing every problem
    for name, ds in policy.datasets.items():
        print(name, ds.schedule.cron, ds.rpo)
    ```
"""

from __future__ import annotations

import itertools
import re
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from seawall.errors import ConfigError
from seawall.readiness import settings as _readiness
from seawall.readiness.settings import ReadinessSpec

try:  # the retention planner's policy model, when that module is installed
    from seawall.retention import RetentionPolicy
except ImportError:  # pragma: no cover - older trees
    RetentionPolicy = dict[str, Any]  # type: ignore[misc,assignment]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(value: Any) -> timedelta:
    """`90s`, `30m`, `26h`, `7d`, `2w`, or a number of seconds → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a duration (allowed: a positive number with s, m, h, d or w, e.g. 26h)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$", description="An environment variable name.")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_cron(expr: str) -> str:
    from cronsim import CronSim, CronSimError

    try:
        CronSim(expr, datetime(2026, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError) as exc:
        raise ValueError(f"invalid cron {expr!r}: {exc} (allowed: 5 fields 'minute hour day month weekday', "
                         "e.g. '0 2 * * *')") from None
    return expr


class Schedule(_Strict):
    """A cron schedule with an explicit time zone (no silent UTC-vs-local surprises)."""

    cron: str = Field(description="Five-field cron expression, e.g. '0 2 * * *'.")
    timezone: str = Field(description="IANA time zone, e.g. 'Europe/Berlin' or 'UTC'.")

    _cron = field_validator("cron")(_check_cron)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} "
                             "(allowed: an IANA name like 'UTC' or 'Europe/Berlin')") from None
        return value

    def longest_gap(self, horizon: timedelta = timedelta(days=35)) -> timedelta:
        """The longest time between two consecutive runs over the next `horizon` (RPO bound)."""
        from cronsim import CronSim

        start = datetime(2026, 1, 5, tzinfo=ZoneInfo(self.timezone))
        times, it = [], CronSim(self.cron, start)
        for when in it:
            times.append(when)
            if when - start > horizon or len(times) > 5000:
                break
        return max((b - a for a, b in itertools.pairwise(times)), default=horizon)


_readiness.rebuild(Schedule)


class TransitionSpec(_Strict):
    """A lifecycle step: the vault's chunks move to `storage_class` once they are `after` old."""

    after: Duration = Field(description="Age of an object when it moves, in whole days, e.g. 30d.")
    storage_class: str = Field(description="S3 storage class it moves to, e.g. STANDARD_IA or DEEP_ARCHIVE.")

    @field_validator("storage_class")
    @classmethod
    def _class(cls, value: str) -> str:
        from seawall.stores.s3_tiers import TRANSITION_CLASSES

        if value.upper() not in TRANSITION_CLASSES:
            raise ValueError(f"{value!r} is not a storage class S3 lifecycle rules move objects to "
                             f"(allowed: {', '.join(TRANSITION_CLASSES)})")
        return value.upper()


class VaultSpec(_Strict):
    """A vault: a URL (passphrase from an env var) or a `seawall-vault` block name."""

    url: str | None = Field(None, description="file:///path, s3://bucket/prefix?region=..., sftp://user@host/path.")
    block: str | None = Field(None, description="Name of a saved VaultTarget block (holds URL and secrets).")
    passphrase_env: EnvName = "SEAWALL_PASSPHRASE"
    role: Literal["primary", "dr"] = "primary"
    region: str | None = Field(None, description="Region or site of the vault (default: from an s3:// URL's "
                               "region; `local` for file://). The offsite-copy control compares it.")
    media: str | None = Field(None, description="Storage medium for 3-2-1 (default: object-storage for s3://, "
                              "disk for file:// and sftp://), e.g. tape, nas.")
    lifecycle: list[TransitionSpec] = Field(default_factory=list, description="S3 lifecycle steps for the "
                                            "vault's chunks, applied to the bucket by `seawall deploy`.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("file", "s3", "sftp"):
            raise ValueError(f"unsupported vault URL scheme {parts.scheme!r} (allowed: file, s3, sftp)")
        if parts.password:
            raise ValueError("the URL holds a password: secrets do not belong in the policy file "
                             "(allowed: a block name, or credentials from the environment)")
        from seawall.stores import parse_query
        from seawall.stores.s3_tiers import CLASSES

        storage_class = parse_query(value).get("storage_class")
        if storage_class and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{1,40}", storage_class):
            raise ValueError(f"storage_class={storage_class!r} is not a storage class name "
                             f"(allowed: {', '.join(CLASSES)}, or one your endpoint offers)")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> VaultSpec:
        if (self.url is None) == (self.block is None):
            raise ValueError("give exactly one of url or block")
        return self


class PostgresSpec(_Strict):
    """A PostgreSQL source: a `PostgresSource` block name or the env var holding the DSN."""

    block: str | None = Field(None, description="Name of a saved PostgresSource block.")
    dsn_env: EnvName | None = Field(None, description="Environment variable holding the DSN on the worker.")
    mode: Literal["logical", "physical"] = "logical"
    jobs: int = Field(2, ge=1, le=64, description="pg_dump parallel jobs (logical); reader threads (physical).")
    method: Literal["datadir", "basebackup"] = Field(
        "datadir", description="Physical: read the data directory (the worker runs on the database host) "
                               "or stream pg_basebackup (from any host).")

    @model_validator(mode="after")
    def _one_of(self) -> PostgresSpec:
        if (self.block is None) == (self.dsn_env is None):
            raise ValueError("give exactly one of block or dsn_env")
        return self


class MariaDBSpec(_Strict):
    """A MariaDB/MySQL source: a `MariaDBSource` block name or the env var holding the DSN."""

    block: str | None = Field(None, description="Name of a saved MariaDBSource block.")
    dsn_env: EnvName | None = Field(None, description="Environment variable holding the DSN on the worker.")
    mode: Literal["logical", "physical"] = "logical"
    binlog_schedule: Schedule | None = Field(None, description="Archive binlogs on this schedule (PITR; its "
                                             "interval bounds the RPO of a point-in-time restore).")

    @model_validator(mode="after")
    def _one_of(self) -> MariaDBSpec:
        if (self.block is None) == (self.dsn_env is None):
            raise ValueError("give exactly one of block or dsn_env")
        return self


class RedisSpec(_Strict):
    """A Redis source: a `RedisSource` block name or the env var holding the URL."""

    block: str | None = Field(None, description="Name of a saved RedisSource block.")
    url_env: EnvName | None = Field(None, description="Environment variable holding the URL on the worker.")

    @model_validator(mode="after")
    def _one_of(self) -> RedisSpec:
        if (self.block is None) == (self.url_env is None):
            raise ValueError("give exactly one of block or url_env")
        return self


class FilesSpec(_Strict):
    """A file tree: a local absolute path or ssh://user@host[:port]/path."""

    path: str = Field(description="Absolute local path or ssh://user@host[:port]/path.")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not (value.startswith("/") or value.startswith("ssh://")):
            raise ValueError(f"{value!r} is neither an absolute path nor ssh://user@host/path")
        return value


class DatasetSpec(_Strict):
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


class RestoreDrillSpec(_Strict):
    """The weekly restore drill (restore at a random point in time in the DR region)."""

    schedule: Schedule
    datasets: list[str] | None = Field(None, description="Datasets to drill (default: every dataset).")


class FailoverDrillSpec(_Strict):
    """Defaults for the failover drill deployment (run on demand from the Prefect UI)."""

    primary: str = Field(description="Name of the primary's saved `seawall-postgres-node` block.")
    standby: str = Field(description="Name of the standby's saved `seawall-postgres-node` block.")
    switch_command: str | None = Field(None, description="Command that moves traffic to the promoted node.")
    dataset: str | None = Field(None, description="The dataset this cluster serves: its RTO/RPO judge the drill "
                                "(default: the strictest of the PostgreSQL datasets).")


class DrillsSpec(_Strict):
    restore: RestoreDrillSpec | None = None
    failover: FailoverDrillSpec | None = None


class WebhookSpec(_Strict):
    """A webhook: its URL in an environment variable (Slack-style URLs are secrets) or, for a sink, inline."""

    url: str | None = Field(None, description="Webhook URL (only for URLs that are not secret).")
    url_env: EnvName | None = Field(None, description="Environment variable holding the URL at deploy time.")

    @model_validator(mode="after")
    def _one_of(self) -> WebhookSpec:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        return self


class AlertsSpec(_Strict):
    """Who hears about failed or crashed runs and stale datasets."""

    webhooks: list[WebhookSpec] = Field(default_factory=list)
    blocks: list[str] = Field(default_factory=list, description="Names of saved Prefect notification blocks "
                              "(slug/name, e.g. 'slack-webhook/ops').")
    on_failure: bool = True
    on_staleness: bool = True


class Policy(_Strict):
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
        return Problem(filename, _line(root, loc), _dotted(loc), message)
    readiness: ReadinessSpec = Field(default_factory=lambda: ReadinessSpec())


@dataclass(frozen=True)
class Problem:
    """One problem in a policy file, located."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field or '(top level)'}: {self.message}"


class PolicyError(ConfigError):
    """The policy file is invalid; `.problems` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        if len(problems) == 1:  # one problem, one line
            super().__init__(f"{problems[0]} (nothing deployed)", hint="fix it and run `seawall plan` again")
            return
        head = f"{len(problems)} problem(s) in the policy file, nothing deployed"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems),
                         hint="fix the lines above and run `seawall plan` again")


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; raises PolicyError listing every located problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc.strerror}") from None
    return parse_policy(text, str(path))


def parse_policy(text: str, filename: str = "seawall.yaml") -> Policy:
    """Validate policy text (see `load_policy`)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError([Problem(filename, mark.line + 1 if mark else 1, "", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise PolicyError([Problem(filename, 1, "", "the file must be a mapping with vaults and datasets")])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError([_locate(filename, root, e) for e in exc.errors()]) from None
    policy._source = (filename, root)
    problems = [policy.problem(loc, msg) for loc, msg in cross_checks(policy)]
    if problems:
        raise PolicyError(problems)
    return policy


def cross_checks(policy: Policy) -> list[tuple[tuple, str]]:
    """Checks across fields: vault names exist, roles fit, the schedule can meet the RPO."""
    out: list[tuple[tuple, str]] = []
    names = sorted(policy.vaults)
    for name, ds in policy.datasets.items():
        if not _dataset_name_ok(name):
            out.append((("datasets", name), f"invalid dataset name {name!r} (allowed: lowercase letters, digits, "
                        "'.', '_' or '-', at most 100; it names the dataset in the vaults)"))
        for key in ("vault", "copy_to"):
            ref = getattr(ds, key)
            if ref is not None and ref not in policy.vaults:
                out.append((("datasets", name, key), f"unknown vault {ref!r} (allowed: {', '.join(names)})"))
        if ds.copy_to is not None and ds.copy_to == ds.vault:
            out.append((("datasets", name, "copy_to"), "copy_to must name another vault than vault"))
        gap = ds.schedule.longest_gap()
        if gap > ds.rpo:
            out.append((("datasets", name, "rpo"), f"rpo {_human(ds.rpo)} cannot be met: the schedule "
                        f"{ds.schedule.cron!r} leaves up to {_human(gap)} between backups (allowed: rpo ≥ "
                        f"{_human(gap)}, or a more frequent cron)"))
    for name in policy.readiness.vault_prices:
        if name not in policy.vaults:
            out.append((("readiness", "vault_prices", name), f"unknown vault {name!r} (allowed: {', '.join(names)})"))
    from seawall.tiering import lifecycle_problems

    out += lifecycle_problems(policy)
    failover = policy.drills.failover
    if failover is not None and failover.dataset is not None and failover.dataset not in policy.datasets:
        out.append((("drills", "failover", "dataset"), f"unknown dataset {failover.dataset!r} "
                    f"(allowed: {', '.join(sorted(policy.datasets))})"))
    drill = policy.drills.restore
    for i, ds_name in enumerate(drill.datasets or [] if drill else []):
        if ds_name not in policy.datasets:
            out.append((("drills", "restore", "datasets", i), f"unknown dataset {ds_name!r} "
                        f"(allowed: {', '.join(sorted(policy.datasets))})"))
    return out


def _dataset_name_ok(name: str) -> bool:
    from seawall.manifest import validate_dataset

    try:
        validate_dataset(name)
    except ConfigError:
        return False
    return True


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ---- locating problems -----------------------------------------------------------------------------

def _locate(filename: str, root: yaml.Node | None, error: dict) -> Problem:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        message = f"unknown key {loc[-1]!r}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    elif error["type"] == "missing":
        message = "required field is missing"
    elif "input" in error and error["type"] not in ("value_error", "assertion_error"):
        message = f"{message} (got {error['input']!r})"
    return Problem(filename, _line(root, loc), _dotted(loc), message)


def _dotted(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))


def _line(root: yaml.Node | None, loc: tuple) -> int:
    """1-based line of the node at `loc` (the deepest existing one; a key's own line for keys)."""
    node, line = root, (root.start_mark.line + 1 if root else 1)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _allowed_keys(loc: tuple) -> list[str]:
    """Field names allowed at `loc` (walking the models, skipping dict keys)."""
    model: Any = Policy
    for part in loc:
        model = _model_in(model)
        if model is None:
            return []
        if isinstance(part, str) and part in model.model_fields:
            model = model.model_fields[part].annotation
        elif typing.get_origin(model) is dict or isinstance(part, int):
            continue
    model = _model_in(model)
    return sorted(model.model_fields) if model else []


def _model_in(tp: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return next((m for a in typing.get_args(tp) if (m := _model_in(a))), None)
    if origin in (dict, list):
        return _model_in(typing.get_args(tp)[-1])
    return None

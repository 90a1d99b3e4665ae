"""The drill's state record and report: written after every step, so a rerun continues, never repeats.

`DrillState` lives at `drills/<drill-id>/state` (a sealed record in the vault) or, without a vault,
as JSON in a local state directory. Re-entry decisions are pure functions of it (`next_step`,
`promotion_needed`), unit-tested without servers. `DrillReport` is the scorecard: each step's
timing, RTO/RPO measured against the objectives, and a status derived from them.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from seawall.errors import ConfigError, ExitCode, ObjectNotFound, PermanentError

SCHEMA_VERSION = 1
PREFIX = "drills/"
STEPS = ("preflight", "heartbeat", "fence", "promote", "switch", "checks", "measure", "fail_back",
         "final_health", "report")
Status = Literal["RUNNING", "PASSED", "OBJECTIVE_MISSED", "FAILED", "ABORTED"]


def new_drill_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class StepRecord(BaseModel):
    name: str
    started_at: datetime
    finished_at: datetime | None = None
    seconds: float | None = None
    ok: bool = False
    detail: str = ""


class Measurements(BaseModel):
    fence_at: datetime | None = None
    writable_at: datetime | None = None
    checks_passed_at: datetime | None = None
    rto_writable_s: float | None = Field(None, description="Fence -> the new primary accepts writes.")
    rto_s: float | None = Field(None, description="Fence -> the new primary passed its checks.")
    rpo_s: float | None = Field(None, description="Newest committed heartbeat minus newest one present after.")
    rpo_lost_transactions: int | None = None
    heartbeats_committed: int = 0


class DrillState(BaseModel):
    """Everything a rerun needs: which steps are done, what they found, which node is primary."""

    schema_version: int = SCHEMA_VERSION
    drill_id: str
    primary: str
    standby: str
    started_at: datetime
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    substeps: list[str] = Field(default_factory=list, description="Fail-back/abort stages done.")
    promotions: dict[str, int] = Field(default_factory=dict, description="Promotions the drill issued, per node.")
    rewindable: dict[str, bool] = Field(default_factory=dict)
    heartbeats: list[datetime] = Field(default_factory=list, description="Committed on the old primary.")
    measurements: Measurements = Field(default_factory=Measurements)
    preflight: list[dict] = Field(default_factory=list)
    checks: list[dict] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    switched_to: str | None = None
    status: Status = "RUNNING"
    error: str | None = None

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.drill_id}/state"

    def done(self, step: str) -> bool:
        record = self.steps.get(step)
        return bool(record and record.ok)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def next_step(state: DrillState) -> str | None:
    """The first step not yet done (None: the drill is complete)."""
    return next((s for s in STEPS if not state.done(s)), None)


def promotion_needed(state: DrillState, standby_in_recovery: bool | None, primary_in_recovery: bool | None) -> bool:
    """Decide whether to promote the standby now (never twice, never two writable primaries).

    Raises:
        ConfigError: the old primary is still writable (not fenced): promoting would split the brain.
    """
    if state.done("promote") or standby_in_recovery is False:
        return False
    if primary_in_recovery is False:
        raise ConfigError(f"{state.primary} is still writable: refusing to promote {state.standby} "
                          "(two writable primaries)", hint="fence the primary first")
    if standby_in_recovery is None:
        raise ConfigError(f"{state.standby} is not reachable: cannot promote it")
    return True


class DrillReport(BaseModel):
    """The drill's scorecard (stored next to its state, published as a Prefect artifact)."""

    schema_version: int = SCHEMA_VERSION
    drill_id: str
    kind: str = "failover"
    primary: str
    standby: str
    started_at: datetime
    finished_at: datetime
    steps: list[StepRecord]
    preflight: list[dict] = Field(default_factory=list)
    checks: list[dict] = Field(default_factory=list)
    measurements: Measurements
    rto_objective_s: float | None = None
    rpo_objective_s: float | None = None
    rto_met: bool | None = None
    rpo_met: bool | None = None
    promotions: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    status: Status = "FAILED"
    error: str | None = None

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.drill_id}/report"


def judge(state: DrillState, rto_objective: float | None, rpo_objective: float | None) -> tuple[Status, bool | None,
                                                                                              bool | None]:
    """Status from the steps and the objectives: a missed objective is not a failed step."""
    m = state.measurements
    rto_met = None if rto_objective is None or m.rto_s is None else m.rto_s <= rto_objective
    rpo_met = None if rpo_objective is None or m.rpo_s is None else m.rpo_s <= rpo_objective
    if state.status in ("ABORTED", "FAILED"):
        return state.status, rto_met, rpo_met
    if not all(state.done(s) for s in STEPS if s != "report"):
        return "FAILED", rto_met, rpo_met
    return ("OBJECTIVE_MISSED" if rto_met is False or rpo_met is False else "PASSED"), rto_met, rpo_met


class StateStore(Protocol):
    def load(self, key: str) -> bytes | None: ...
    def save(self, key: str, payload: bytes) -> None: ...


class VaultStateStore:
    """Sealed records in the vault (key bound into the seal, like manifests and ledger reports)."""

    def __init__(self, vault):
        self.vault = vault

    def load(self, key: str) -> bytes | None:
        from seawall.crypto import ObjType

        try:
            return self.vault.get_record(key, ObjType.RECORD)
        except ObjectNotFound:
            return None

    def save(self, key: str, payload: bytes) -> None:
        from seawall.crypto import ObjType

        self.vault.put_record(key, payload, ObjType.RECORD)


class DirStateStore:
    """JSON files in a local folder (no vault given): SEAWALL_DRILL_STATE_DIR or ~/.local/state/seawall."""

    def __init__(self, root: str | None = None):
        default = Path.home() / ".local/state/seawall"
        self.root = Path(root or os.environ.get("SEAWALL_DRILL_STATE_DIR") or default)

    def load(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def save(self, key: str, payload: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def load_state(store: StateStore, drill_id: str) -> DrillState | None:
    payload = store.load(f"{PREFIX}{drill_id}/state")
    return None if payload is None else DrillState.model_validate_json(payload)


def save_state(store: StateStore, state: DrillState) -> None:
    store.save(state.key, state.model_dump_json().encode())


def save_report(store: StateStore, report: DrillReport) -> str:
    store.save(report.key, report.model_dump_json().encode())
    return report.key


def load_report(store: StateStore, drill_id: str) -> DrillReport | None:
    payload = store.load(f"{PREFIX}{drill_id}/report")
    return None if payload is None else DrillReport.model_validate(json.loads(payload))


class DrillFailed(PermanentError):
    """The drill failed or was aborted; `.report` is the stored scorecard."""

    def __init__(self, message: str, *, report: DrillReport | None = None, hint: str | None = None,
                 exit_code: int | None = None):
        super().__init__(message, hint=hint, exit_code=exit_code)
        self.report = report


class ObjectiveMissed(DrillFailed):
    """Every step passed, but the measured RTO or RPO missed its objective."""

    exit_code = ExitCode.PARTIAL

"""Readiness controls: each one PASS, FAIL or UNKNOWN for a dataset, with the evidence it used.

A control never passes on missing evidence: a vault that could not be read, no DR vault configured,
no verification ledger or drill record yet all give UNKNOWN with the reason. FAIL means the
evidence is there and says no. Pure: every input is a record, `now` is a parameter.

    backup-within-rpo            newest DONE backup in the primary vault is younger than the RPO
    offsite-copy                 the DR vault, in another region, holds a copy younger than the RPO
    immutable-copy               a vault holds the newest backup under an active Object Lock
    three-copies-two-media       live data + vaults with a backup >= 3 copies, on >= 2 media
    restore-tested-within-days   a VERIFIED restore verification within `restore_tested_within`
    rto-measured-under-target    newest measured restore-and-verify time (ledger, drills) <= RTO
    rpo-measured-under-target    newest measured achieved RPO <= RPO
    encrypted-with-valid-key     every key wrapper of every vault of the dataset is usable
    drill-within-days            a drill of the dataset completed (PASSED or OBJECTIVE_MISSED) within `drill_within`
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from seawall.policy import DatasetSpec
from seawall.readiness.evidence import Status, VaultEvidence
from seawall.readiness.settings import ReadinessSpec
from seawall.units import human_seconds

LIVE_MEDIA = "disk"  # the live data itself (a database's or file server's disks) counts as one copy


class ControlResult(BaseModel):
    control: str
    status: Status
    summary: str
    evidence: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Context:
    """One dataset and the evidence of its vaults (`dr` None: no copy_to configured)."""

    dataset: str
    spec: DatasetSpec
    settings: ReadinessSpec
    primary: VaultEvidence
    dr: VaultEvidence | None
    now: datetime

    @property
    def vaults(self) -> list[VaultEvidence]:
        return [v for v in (self.primary, self.dr) if v is not None]


def _result(name: str, status: Status, summary: str, *evidence: str) -> ControlResult:
    return ControlResult(control=name, status=status, summary=summary, evidence=[e for e in evidence if e])


def _age(ctx: Context, when: datetime | None) -> timedelta | None:
    return None if when is None else ctx.now - when


def _h(delta: timedelta | float | None) -> str:
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else delta
    return human_seconds(seconds)


def _unreadable(name: str, *vaults: VaultEvidence) -> ControlResult | None:
    broken = [v for v in vaults if v.error]
    if not broken:
        return None
    return _result(name, "UNKNOWN", f"vault {broken[0].name} could not be read: {broken[0].error}")


def backup_within_rpo(ctx: Context) -> ControlResult:
    name = "backup-within-rpo"
    if (bad := _unreadable(name, ctx.primary)) is not None:
        return bad
    done = ctx.primary.done(ctx.dataset)
    if not done:
        return _result(name, "FAIL", f"no DONE backup of {ctx.dataset} in {ctx.primary.name}",
                       f"RPO {_h(ctx.spec.rpo)}")
    newest = done[-1]
    age = _age(ctx, newest.finished_at or newest.started_at)
    ok = age <= ctx.spec.rpo
    return _result(name, "PASS" if ok else "FAIL", f"newest backup {_h(age)} old, RPO {_h(ctx.spec.rpo)}",
                   f"backup {newest.backup_id} in {ctx.primary.name} ({ctx.primary.url})")


def offsite_copy(ctx: Context) -> ControlResult:
    name = "offsite-copy"
    if ctx.dr is None:
        return _result(name, "UNKNOWN", "no DR vault configured (datasets.<name>.copy_to)")
    if (bad := _unreadable(name, ctx.primary, ctx.dr)) is not None:
        return bad
    regions = f"{ctx.primary.name} in {ctx.primary.region or '?'}, {ctx.dr.name} in {ctx.dr.region or '?'}"
    if ctx.primary.region is None or ctx.dr.region is None:
        return _result(name, "UNKNOWN", "region of a vault unknown (set vaults.<name>.region)", regions)
    if ctx.primary.region == ctx.dr.region:
        return _result(name, "FAIL", f"the DR vault is in the same region ({ctx.dr.region})", regions)
    done = ctx.dr.done(ctx.dataset)
    if not done:
        return _result(name, "FAIL", f"no copy of {ctx.dataset} in {ctx.dr.name}", regions)
    age = _age(ctx, done[-1].finished_at or done[-1].started_at)
    ok = age <= ctx.spec.rpo
    return _result(name, "PASS" if ok else "FAIL", f"newest copy {_h(age)} old in {ctx.dr.region}, "
                   f"RPO {_h(ctx.spec.rpo)}", regions, f"copy {done[-1].backup_id}")


def immutable_copy(ctx: Context) -> ControlResult:
    name = "immutable-copy"
    facts, unknown = [], []
    for v in ctx.vaults:
        lock = v.locks.get(ctx.dataset)
        if v.error:
            unknown.append(f"{v.name}: {v.error}")
        elif lock is None:
            facts.append(f"{v.name}: holds no DONE backup of {ctx.dataset}")
        elif lock.error:
            unknown.append(f"{v.name}: {lock.error}")
        elif not lock.supported:
            facts.append(f"{v.name}: no Object Lock here (a bucket without it, or a file:// or sftp:// vault)")
        elif lock.mode and lock.retain_until and lock.retain_until > ctx.now:
            return _result(name, "PASS", f"backup {lock.backup_id} in {v.name} is locked ({lock.mode}) until "
                           f"{lock.retain_until:%Y-%m-%d %H:%M} UTC", *facts)
        else:
            facts.append(f"{v.name}: backup {lock.backup_id} has no active Object Lock")
    if unknown:
        return _result(name, "UNKNOWN", "lock state not readable in every vault", *unknown, *facts)
    return _result(name, "FAIL", "no vault holds the newest backup under Object Lock", *facts)


def three_copies_two_media(ctx: Context) -> ControlResult:
    name = "three-copies-two-media"
    if (bad := _unreadable(name, *ctx.vaults)) is not None:
        return bad
    holding = [v for v in ctx.vaults if v.done(ctx.dataset)]
    copies = 1 + len(holding)
    media = sorted({LIVE_MEDIA, *(v.media for v in holding)})
    evidence = [f"live data on {LIVE_MEDIA}", *(f"{v.name}: {v.media}" for v in holding)]
    ok = copies >= 3 and len(media) >= 2
    return _result(name, "PASS" if ok else "FAIL", f"{copies} copies on {len(media)} media ({', '.join(media)})",
                   *evidence)


def _verifications(ctx: Context) -> list:
    return sorted((r for v in ctx.vaults for r in v.reports if r.dataset == ctx.dataset),
                  key=lambda r: r.finished_at)


def restore_tested(ctx: Context) -> ControlResult:
    name = "restore-tested-within-days"
    window = ctx.settings.restore_tested_within
    reports = _verifications(ctx)
    if not reports:
        if (bad := _unreadable(name, *ctx.vaults)) is not None:
            return bad
        return _result(name, "UNKNOWN", "no verification ledger yet (run `seawall verify-restore`)")
    verified = [r for r in reports if r.status == "VERIFIED"]
    if not verified:
        return _result(name, "FAIL", f"no VERIFIED restore among {len(reports)} verification(s)",
                       f"newest {reports[-1].verification_id}: {reports[-1].error or 'a check failed'}")
    newest = verified[-1]
    age = _age(ctx, newest.finished_at)
    ok = age <= window
    return _result(name, "PASS" if ok else "FAIL", f"newest verified restore {_h(age)} ago, window {_h(window)}",
                   f"backup {newest.backup_id} verified ({newest.verification_id}) from {newest.vault}")


def _measurements(ctx: Context, attr_report: str, attr_drill: str) -> list[tuple[datetime, float, str]]:
    out = [(r.finished_at, getattr(r, attr_report), f"verification {r.verification_id}")
           for r in _verifications(ctx) if getattr(r, attr_report) is not None]
    out += [(d.finished_at, getattr(d.measurements, attr_drill), f"{d.kind} drill {d.drill_id}")
            for d in _drills(ctx) if getattr(d.measurements, attr_drill) is not None]
    return sorted(out, key=lambda m: m[0])


def _measured(name: str, ctx: Context, target: timedelta, attrs: tuple[str, str], what: str) -> ControlResult:
    measured = _measurements(ctx, *attrs)
    if not measured:
        if (bad := _unreadable(name, *ctx.vaults)) is not None:
            return bad
        return _result(name, "UNKNOWN", f"no {what} measured yet (verify-restore or a drill measures it)")
    when, value, source = measured[-1]
    ok = value <= target.total_seconds()
    return _result(name, "PASS" if ok else "FAIL", f"{what} {_h(value)} measured, target {_h(target)}",
                   f"{source}, {when:%Y-%m-%d %H:%M} UTC")


def rto_measured(ctx: Context) -> ControlResult:
    return _measured("rto-measured-under-target", ctx, ctx.spec.rto, ("rto_verified_s", "rto_s"), "RTO")


def rpo_measured(ctx: Context) -> ControlResult:
    return _measured("rpo-measured-under-target", ctx, ctx.spec.rpo, ("rpo_s", "rpo_s"), "achieved RPO")


def encrypted_with_valid_key(ctx: Context) -> ControlResult:
    name = "encrypted-with-valid-key"
    if (bad := _unreadable(name, *ctx.vaults)) is not None:
        return bad
    checks = [(v.name, w) for v in ctx.vaults for w in v.wrappers]
    evidence = [f"{vault}: {w.kind} wrapper {w.id} {w.status}: {w.detail}" for vault, w in checks]
    if not checks:
        return _result(name, "FAIL", "no key wrapper found")
    failed = [w for _, w in checks if w.status == "FAIL"]
    if failed:
        return _result(name, "FAIL", f"{len(failed)} of {len(checks)} key wrapper(s) unusable", *evidence)
    unknown = [w for _, w in checks if w.status == "UNKNOWN"]
    if unknown:
        return _result(name, "UNKNOWN", f"{len(unknown)} of {len(checks)} key wrapper(s) could not be checked",
                       *evidence)
    kinds = sorted({w.kind for _, w in checks})
    return _result(name, "PASS", f"all {len(checks)} key wrapper(s) usable ({', '.join(kinds)}); AES-256-GCM",
                   *evidence)


def _drills(ctx: Context) -> list:
    """Restore drills of this dataset, and failover drills recorded in its vaults."""
    drills = {d.drill_id: d for v in ctx.vaults for d in v.drills
              if (d.kind == "restore" and d.primary == ctx.dataset) or d.kind == "failover"}
    return sorted(drills.values(), key=lambda d: d.finished_at)


def drill_within(ctx: Context) -> ControlResult:
    name = "drill-within-days"
    window = ctx.settings.drill_within
    drills = _drills(ctx)
    if not drills:
        if (bad := _unreadable(name, *ctx.vaults)) is not None:
            return bad
        return _result(name, "UNKNOWN", "no drill recorded yet (`seawall drill restore` or `drill failover`)")
    passed = [d for d in drills if d.status in ("PASSED", "OBJECTIVE_MISSED")]
    newest = drills[-1]
    if not passed:
        return _result(name, "FAIL", f"no drill completed among {len(drills)}",
                       f"newest {newest.kind} drill {newest.drill_id}: {newest.status}")
    age = _age(ctx, passed[-1].finished_at)
    ok = age <= window
    return _result(name, "PASS" if ok else "FAIL", f"newest drill {_h(age)} ago ({passed[-1].status}), "
                   f"window {_h(window)}", f"{passed[-1].kind} drill {passed[-1].drill_id}")


CONTROLS: dict[str, Callable[[Context], ControlResult]] = {
    "backup-within-rpo": backup_within_rpo,
    "offsite-copy": offsite_copy,
    "immutable-copy": immutable_copy,
    "three-copies-two-media": three_copies_two_media,
    "restore-tested-within-days": restore_tested,
    "rto-measured-under-target": rto_measured,
    "rpo-measured-under-target": rpo_measured,
    "encrypted-with-valid-key": encrypted_with_valid_key,
    "drill-within-days": drill_within,
}


def evaluate(ctx: Context) -> list[ControlResult]:
    """Every control for one dataset, in the documented order."""
    return [control(ctx) for control in CONTROLS.values()]

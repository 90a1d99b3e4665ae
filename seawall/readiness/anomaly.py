"""Anomaly detection: backups whose change statistics fall outside the dataset's own recent range.

Each backup records how it differs from its parent (`manifest.stats.changes`: new, changed and
deleted files, the compression ratio and the entropy of the new data). A backup is compared with
the dataset's previous `window` clean backups using robust statistics — the median and the median
absolute deviation (MAD), which a single earlier outlier cannot drag along — and flagged SUSPICIOUS
when one of these signatures stands out:

- high-entropy rewrite: many files changed or much new data, and the new data looks random
  (ransomware: files rewritten encrypted);
- mass rewrite: far more files changed than usual (without the entropy);
- mass delete or rename: far more files gone than usual (a rename shows as deleted + new);
- size collapse: the backup is a fraction of the usual size.

"Stands out" means a robust z-score above `z` and an absolute floor (so a dataset that never
changes is not alarmed by two edited files). Fewer than `min_history` comparable backups: not
evaluated (said so, never flagged). Flagged backups are left out of later baselines, so one attack
does not make the next look normal. Pure: no I/O, no clock.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from seawall.manifest import BackupStatus, Manifest

MAD_SCALE = 1.4826  # MAD of a normal distribution x 1.4826 = its standard deviation


@dataclass(frozen=True)
class DetectorSettings:
    window: int = 20
    min_history: int = 5
    z: float = 6.0
    min_fraction: float = 0.10  # changed / deleted / new-byte share that can ever be alarming
    high_entropy: float = 7.2  # bits per byte: compressed or encrypted data
    collapse_ratio: float = 0.5


@dataclass
class Verdict:
    backup_id: str
    suspicious: bool = False
    evaluated: bool = True
    reasons: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class _Features:
    changed: float | None
    deleted: float | None
    new_files: float | None
    new_bytes: float
    entropy: float | None
    size: float


def features(m: Manifest) -> _Features | None:
    """The comparable figures of one backup (None: it recorded no change statistics)."""
    ch, s = m.stats.changes, m.stats
    if ch is None or m.parent is None:
        return None
    previous = s.files - ch.files_new + ch.files_deleted
    per_file = (lambda n: n / previous) if previous > 0 else (lambda n: None)
    return _Features(changed=per_file(ch.files_changed), deleted=per_file(ch.files_deleted),
                     new_files=per_file(ch.files_new), new_bytes=s.bytes_new / max(s.bytes_total, 1),
                     entropy=ch.entropy_bits if s.bytes_new else None, size=float(s.bytes_total))


def _robust(values: Sequence[float]) -> tuple[float, float]:
    median = statistics.median(values)
    return median, MAD_SCALE * statistics.median(abs(v - median) for v in values)


def _high(value: float | None, history: list[float | None], floor: float, z: float,
          scale_floor: float = 0.01) -> tuple[bool, float]:
    """(outlier above the range, median) for one feature; absent values never alarm."""
    known = [v for v in history if v is not None]
    if value is None or not known:
        return False, 0.0
    median, spread = _robust(known)
    return value >= floor and value > median + z * max(spread, scale_floor), median


def _judge(f: _Features, base: list[_Features], cfg: DetectorSettings) -> list[str]:
    reasons: list[str] = []
    changed, med_changed = _high(f.changed, [b.changed for b in base], cfg.min_fraction, cfg.z)
    new_bytes, med_new = _high(f.new_bytes, [b.new_bytes for b in base], cfg.min_fraction, cfg.z)
    deleted, med_deleted = _high(f.deleted, [b.deleted for b in base], cfg.min_fraction, cfg.z)
    entropy = f.entropy or 0.0
    if (changed or new_bytes) and entropy >= cfg.high_entropy:
        reasons.append(f"high-entropy rewrite: {_pct(f.changed)} of files changed (usual {_pct(med_changed)}), "
                       f"{_pct(f.new_bytes)} of bytes new (usual {_pct(med_new)}), new data {entropy:.2f} bits/byte")
    elif changed:
        reasons.append(f"mass rewrite: {_pct(f.changed)} of files changed (usual {_pct(med_changed)})")
    if deleted:
        renamed = f.new_files is not None and f.deleted is not None and f.new_files >= 0.8 * f.deleted
        reasons.append(f"mass {'rename' if renamed else 'delete'}: {_pct(f.deleted)} of files gone "
                       f"(usual {_pct(med_deleted)})")
    sizes = [b.size for b in base]
    median_size, spread = _robust(sizes)
    if median_size > 0 and f.size < cfg.collapse_ratio * median_size and f.size < median_size - cfg.z * spread:
        reasons.append(f"size collapse: {_pct(f.size / median_size)} of the usual size")
    return reasons


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def detect(backups: Iterable[Manifest], settings: DetectorSettings | None = None) -> dict[str, Verdict]:
    """A verdict for every DONE backup of ONE dataset, judged against the clean ones before it."""
    cfg = settings or DetectorSettings()
    done = sorted((m for m in backups if m.status == BackupStatus.DONE), key=lambda m: (m.started_at, m.backup_id))
    clean: list[_Features] = []
    out: dict[str, Verdict] = {}
    for m in done:
        f = features(m)
        if f is None:
            out[m.backup_id] = Verdict(m.backup_id, evaluated=False, note="no change statistics (first backup of "
                                       "the dataset, or written before seawall recorded them)")
            continue
        base = clean[-cfg.window:]
        if len(base) < cfg.min_history:
            note = f"only {len(base)} earlier backups to compare with (needs {cfg.min_history})"
            out[m.backup_id] = Verdict(m.backup_id, evaluated=False, note=note)
            clean.append(f)
            continue
        reasons = _judge(f, base, cfg)
        out[m.backup_id] = Verdict(m.backup_id, suspicious=bool(reasons), reasons=reasons)
        if not reasons:
            clean.append(f)
    return out


def suspicious_ids(backups: Iterable[Manifest], stored: dict[str, str] | None = None,
                   settings: DetectorSettings | None = None) -> dict[str, str]:
    """backup id → reason, over every dataset: recomputed verdicts plus those stored in the vault.

    Stored ones count even when a recomputation no longer flags them (retention may since have
    removed the baseline they were judged against).
    """
    by_dataset: dict[str, list[Manifest]] = {}
    for m in backups:
        by_dataset.setdefault(m.dataset, []).append(m)
    out = dict(stored or {})
    for items in by_dataset.values():
        for backup_id, verdict in detect(items, settings).items():
            if verdict.suspicious:
                out.setdefault(backup_id, "; ".join(verdict.reasons))
    return out


def last_clean(backups: Sequence[Manifest], suspicious: dict[str, str]) -> tuple[Manifest | None, list[Manifest]]:
    """(the newest clean DONE backup before the newest anomaly, the suspicious backups of that run).

    After an attack, later backups carry its damage while looking ordinary, so the answer is the
    newest backup older than the newest suspicious one that is not itself suspicious. No anomaly:
    the newest DONE backup, and no suspects.
    """
    done = sorted((m for m in backups if m.status == BackupStatus.DONE), key=lambda m: (m.started_at, m.backup_id))
    flagged = [i for i, m in enumerate(done) if m.backup_id in suspicious]
    if not flagged:
        return (done[-1] if done else None), []
    i = flagged[-1]
    suspects = []
    while i >= 0 and done[i].backup_id in suspicious:
        suspects.append(done[i])
        i -= 1
    return (done[i] if i >= 0 else None), list(reversed(suspects))

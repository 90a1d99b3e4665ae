"""Where anomaly verdicts live in a vault: a sealed record per SUSPICIOUS backup (retention keeps it).

Apart from `seawall.readiness.evidence` (which re-exports these): every backup's anomaly check reads
and writes these records, and evidence's models (drills, the verification ledger, storage tiers)
cost a backup process ~15 ms of imports it has no use for.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from seawall.errors import IntegrityError, ObjectNotFound

if TYPE_CHECKING:
    from seawall.vault import Vault

ANOMALY_PREFIX = "anomalies/"


def anomaly_key(dataset: str, backup_id: str) -> str:
    return f"{ANOMALY_PREFIX}{dataset}/{backup_id}"


def store_anomaly(vault: Vault, dataset: str, backup_id: str, reasons: list[str]) -> str:
    """Record a SUSPICIOUS verdict in the vault (sealed): retention keeps the backup from then on."""
    from seawall.crypto import ObjType

    key = anomaly_key(dataset, backup_id)
    payload = {"dataset": dataset, "backup_id": backup_id, "reasons": reasons,
               "flagged_at": datetime.now(UTC).isoformat()}
    vault.put_record(key, json.dumps(payload).encode(), ObjType.RECORD)
    return key


def read_anomalies(vault: Vault, dataset: str | None = None) -> dict[str, str]:
    """Stored verdicts: backup id → reasons (one line)."""
    from seawall.crypto import ObjType

    out = {}
    for info in vault.store.list(f"{ANOMALY_PREFIX}{dataset}/" if dataset else ANOMALY_PREFIX):
        try:
            record = json.loads(vault.get_record(info.key, ObjType.RECORD))
            out[record["backup_id"]] = "; ".join(record["reasons"])
        except (IntegrityError, ObjectNotFound, ValueError, KeyError, TypeError):
            continue
    return out

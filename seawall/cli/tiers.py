"""The storage tier a restore starts from, and the RTO it implies, for `restore` and `status`."""

from __future__ import annotations

from seawall.cli.common import open_vault_cli
from seawall.cli.output import console
from seawall.units import human_seconds


def _measured_restore_s(vault, dataset: str) -> float | None:
    from seawall.errors import IntegrityError, ObjectNotFound
    from seawall.ledger import read_report, report_keys

    for key in reversed(report_keys(vault, dataset)):
        try:
            return read_report(vault, key).rto_restore_s
        except (IntegrityError, ObjectNotFound, ValueError):
            continue
    return None


def restore_tier(vault_url: str, backup_id: str) -> dict:
    """The backup's tier, its retrieval time, the last measured restore and the implied RTO."""
    from seawall.retrieval import backup_tier

    v = open_vault_cli(vault_url, None)
    manifest = v.require_done(backup_id)
    tier = backup_tier(v, manifest)
    measured = _measured_restore_s(v, manifest.dataset)
    return tier.to_dict() | {"measured_restore_s": measured, "implied_rto_s": tier.implied_rto(measured)}


def tier_line(backup_id: str, tier: dict) -> str:
    """One line: where the backup is, what a restore waits for, the RTO that implies."""
    wait = tier["retrieval_s"] if tier["archived"] else 0.0
    head = f"backup {backup_id}: chunks in {tier['storage_class']}"
    if tier["archived"]:
        more = "" if tier["complete"] else " or more"
        head += (f", {tier['archived']}{more} of {tier['objects']} objects need a retrieval first (up to "
                 f"{human_seconds(wait) if wait is not None else 'an unknown time'}, {tier['retrieval_tier']} tier)")
    measured = tier["measured_restore_s"]
    if measured is None:
        return head + "; implied RTO unknown until a verify-restore measures this dataset's restore"
    return head + (f"; implied RTO {human_seconds(tier['implied_rto_s'])} (measured restore "
                   f"{human_seconds(measured)} + retrieval {human_seconds(wait or 0.0)})")


def show_restore_tier(vault_url: str, backup_id: str, json_out: bool) -> dict:
    tier = restore_tier(vault_url, backup_id)
    if not json_out and (tier["storage_class"] != "STANDARD" or tier["archived"]):
        console.print(tier_line(backup_id, tier), highlight=False)
    return tier

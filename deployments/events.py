"""seawall's own Prefect events: the pipeline's links, and hooks for users' own automations.

    seawall.backup.completed        → triggers the dataset's cross-region copy deployment
    seawall.copy.completed          → triggers the dataset's restore verification deployment
    seawall.verification.completed  → (for users: dashboards, notifications)
    seawall.backup.suspicious       → the alert automation (a backup outside its dataset's usual range)

Every event's resource is the dataset, `seawall.dataset.<name>` (so triggers and staleness alerts
match one dataset); related resources name the vault and the backup; the payload carries sizes,
durations and ids. The flows emit them with `emit_completed(...)` at their end, in every Prefect
run (deployment, CLI with an API, Python with an API); in plain mode (no Prefect) nothing is sent.
`completion_hook` remains for users' own flows.

Example:
    ```python
    from deployments.events import emit_completed
    emit_completed("backup", manifest)        # at the end of a backup flow
    ```
"""

from __future__ import annotations

from typing import Any

BACKUP, COPY, VERIFICATION = "seawall.backup.completed", "seawall.copy.completed", "seawall.verification.completed"
EVENTS = {"backup": BACKUP, "copy": COPY, "verification": VERIFICATION}
SUSPICIOUS = "seawall.backup.suspicious"


def dataset_resource_id(dataset: str) -> str:
    """The resource id every seawall event about `dataset` carries (what triggers match on)."""
    return f"seawall.dataset.{dataset}"


def backup_payload(manifest: Any) -> dict[str, Any]:
    """Sizes and ids of a DONE backup manifest."""
    s = manifest.stats
    return {"dataset": manifest.dataset, "backup_id": manifest.backup_id, "kind": str(manifest.kind),
            "bytes_total": s.bytes_total, "stored_bytes_new": s.stored_bytes_new, "files": s.files,
            "duration_s": manifest.duration_s,
            "started_at": manifest.started_at.isoformat() if manifest.started_at else None}


def copy_payloads(report: Any) -> list[dict[str, Any]]:
    """One payload per dataset a copy report touched (copied or already present)."""
    per: dict[str, dict[str, Any]] = {}
    for b in report.backups:
        entry = per.setdefault(b.dataset, {"dataset": b.dataset, "backup_ids": [], "bytes_copied": 0,
                                           "chunks_copied": 0, "source": report.source, "dest": report.dest})
        entry["backup_ids"].append(b.backup_id)
        entry["bytes_copied"] += getattr(b, "bytes_copied", 0) or 0
        entry["chunks_copied"] += getattr(b, "chunks_copied", 0) or 0
        entry["backup_id"] = b.backup_id
    return list(per.values())


def verification_payload(report: Any) -> dict[str, Any]:
    """Verdict, RTO and RPO of a verification report."""
    return {"dataset": report.dataset, "backup_id": report.backup_id, "status": report.status,
            "verification_id": report.verification_id, "rto_restore_s": report.rto_restore_s,
            "rto_verified_s": report.rto_verified_s, "rpo_s": report.rpo_s, "vault": report.vault}


def payloads(stage: str, result: Any) -> list[dict[str, Any]]:
    """The event payloads for a stage's flow result (a manifest, a copy report, a verification report)."""
    if stage == "backup":
        return [backup_payload(result)]
    if stage == "copy":
        return copy_payloads(result)
    if stage == "verification":
        return [verification_payload(result)]
    raise ValueError(f"unknown stage {stage!r} (allowed: {', '.join(EVENTS)})")


def emit_completed(stage: str, result: Any, vault: str | None = None) -> list[str]:
    """Emit `seawall.<stage>.completed` for each dataset in `result`; returns the event ids.

    Emitting never fails the caller's run: without a Prefect API (or with events disabled)
    `emit_event` returns None and nothing is sent.

    Args:
        stage: "backup", "copy" or "verification".
        result: The flow's result: a Manifest, a CopyReport or a VerificationReport.
        vault: The vault URL or block name, added as a related resource (no secrets: URLs only).

    Example:
        ```python
        emit_completed("copy", report)
        ```
    """
    emit_event = _emitter()
    if emit_event is None:
        return []
    ids = []
    for payload in payloads(stage, result):
        dataset = payload["dataset"]
        related = [{"prefect.resource.id": f"seawall.backup.{payload['backup_id']}",
                    "prefect.resource.role": "backup"}] if payload.get("backup_id") else []
        if vault:
            related.append({"prefect.resource.id": f"seawall.vault.{_strip_secrets(vault)}",
                            "prefect.resource.role": "vault"})
        event = emit_event(EVENTS[stage], resource={"prefect.resource.id": dataset_resource_id(dataset),
                                                    "prefect.resource.name": dataset},
                           related=related, payload=payload)
        if event is not None:
            ids.append(str(event.id))
    return ids


def emit_suspicious(manifest: Any, reasons: list[str], vault: str | None = None) -> list[str]:
    """Emit `seawall.backup.suspicious` for a backup the anomaly detector flagged; returns the event id(s).

    Example:
        ```python
        emit_suspicious(manifest, ["high-entropy rewrite: 30.0% of files changed ..."], vault_url)
        ```
    """
    emit_event = _emitter()
    if emit_event is None:
        return []
    related = [{"prefect.resource.id": f"seawall.backup.{manifest.backup_id}", "prefect.resource.role": "backup"}]
    if vault:
        related.append({"prefect.resource.id": f"seawall.vault.{_strip_secrets(vault)}",
                        "prefect.resource.role": "vault"})
    payload = backup_payload(manifest) | {"reasons": reasons}
    event = emit_event(SUSPICIOUS, resource={"prefect.resource.id": dataset_resource_id(manifest.dataset),
                                             "prefect.resource.name": manifest.dataset},
                       related=related, payload=payload)
    return [str(event.id)] if event is not None else []


def _emitter():
    """Prefect's `emit_event` inside a Prefect run; None in plain mode (no events, no `import prefect`)."""
    from tasks.mode import in_prefect_run

    if not in_prefect_run():
        return None
    from prefect.events import emit_event

    return emit_event


def completion_hook(stage: str):
    """An `on_completion` flow hook emitting the stage's event from the flow run's result.

    Example:
        ```python
        @flow(on_completion=[completion_hook("backup")])
        def backup_postgres(...): ...
        ```
    """

    def hook(flow, flow_run, state) -> None:  # Prefect's hook signature
        result = state.result(raise_on_failure=False)
        if result is not None and not isinstance(result, BaseException):
            emit_completed(stage, result)

    hook.__name__ = f"emit_{stage}_completed"
    return hook


def _strip_secrets(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

"""Options of `seawall restore` that only PostgreSQL restores take (declared here, used by app.py)."""

from __future__ import annotations

import typer

TargetOpt = typer.Option(None, "--target", help="PITR: `immediate` (stop as soon as the backup is consistent).")
TimelineOpt = typer.Option("latest", "--target-timeline",
                           help="PITR: latest (newest in the archive), current (the backup's) or a number.")
ActionOpt = typer.Option("promote", "--target-action", help="PITR: promote, pause or shutdown at the target.")
ExclusiveOpt = typer.Option(False, "--target-exclusive", help="PITR: stop just before the target time/LSN/xid.")
NoArchiveOpt = typer.Option(False, "--no-archive",
                            help="Physical: the promoted copy does not archive its WAL into the vault.")
StandbyOpt = typer.Option(False, "--standby", help="Physical: a standby fed from the archive (no target).")
PrimaryOpt = typer.Option(None, "--primary-conninfo",
                          help="Standby: also stream from this primary (no password: use ~/.pgpass).")
TablespaceOpt = typer.Option(None, "--tablespace-map",
                             help="Physical: OLD=NEW location of a tablespace (repeatable; NEW new or empty).")
RolesOpt = typer.Option("create", "--roles", help="Logical: create the missing roles (default) or skip roles.")
RoleMapOpt = typer.Option(None, "--role-map", help="Logical: restore role OLD as NEW (OLD=NEW, repeatable).")
# --delta applies to file trees (--to) and physical backups (--to-datadir): declared here with the others.
DeltaOpt = typer.Option(False, "--delta", help="Files/physical: bring an EXISTING folder or stopped data "
                        "directory to the backup's state, writing only what differs and removing what it lacks.")
TrustMtimeOpt = typer.Option(False, "--delta-trust-mtime",
                             help="With --delta: keep files whose size and mtime match the backup unread.")
ForceOpt = typer.Option(False, "--force", help="With --delta: accept a data directory of another cluster "
                        "(another system identifier), or a non-empty folder that is no data directory.")

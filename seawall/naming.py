"""Default dataset names derived from sources (dataset names must be stable across runs).

One rule everywhere (CLI, Python flows, the policy's examples): a folder's dataset is its own name,
`/srv/www` → `www`, the same name a policy gives it (`datasets: {www: {files: {path: /srv/www}}}`),
so a backup from the CLI or Python and a nightly deployment add to one history. A folder on an SSH
host is `<host>-<folder>` (`web1`, `/srv/www` → `web1-www`). Before this rule the defaults were
`files-<folder>` and `files-<host>-<folder>`: pass `--dataset files-www` (or `dataset=`) to continue
such a history.
"""

from __future__ import annotations

import os
import re

from seawall.manifest import validate_dataset


def slug(text: str) -> str:
    out = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return out[:100] or "root"


def dataset_for_path(path: str) -> str:
    """`/srv/www/` → `www` (the default dataset of a folder backup)."""
    base = os.path.basename(os.path.normpath(os.path.abspath(path)))
    return validate_dataset(slug(base))


def dataset_for_remote(host: str, path: str) -> str:
    """`web1`, `/srv/www` → `web1-www` (the default dataset of a folder on an SSH host)."""
    base = path.rstrip("/").rsplit("/", 1)[-1] or "root"
    return validate_dataset(slug(f"{host}-{base}"))

"""Checks of a local source folder that need nothing but the file system (the CLI runs them before
loading the vault stack, so a usage error costs no more than `--help`)."""

from __future__ import annotations

import os
from pathlib import Path

from seawall.errors import ConfigError


def check_source(root: str | os.PathLike) -> Path:
    """The absolute root, or a one-line ConfigError saying what is wrong with it."""
    path = Path(root).absolute()
    if not path.exists():
        raise ConfigError(f"source path {path} does not exist", hint="check the path")
    if not path.is_dir():
        raise ConfigError(f"source path {path} is not a directory", hint="give the folder to back up")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(f"source path {path} is not readable", hint="run as a user that can read it")
    return path

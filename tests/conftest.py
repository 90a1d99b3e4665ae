"""Root test configuration: a clean environment for every test and the shared fixtures.

The user's own SEAWALL_* / AWS_* / PG* variables never leak into tests (borg `clean_env`).
Fixtures that start real services live in tests/fixtures/ and are loaded as plugins.

Parallel runs (pytest-xdist: `make test PYTEST_WORKERS=3`, i.e. `-n 3 --dist loadfile`: a file's tests
run in one worker, in file order, so module-scoped servers and harnesses are started once):
- every xdist worker gets its own TMPDIR (mode 1777, so the postgres/mysql/test OS users can use it),
  removed at exit: folders the code makes with `tempfile` (scratch clusters, sshd dirs, servers) and
  any glob over the temp dir see only this process's files, not another worker's or another run's;
  and its own PREFECT_HOME in it (fixtures that start a `prefect server` give it its own home too).
(`--dist loadgroup` would split files further, but with pytest 9 xdist 3.8 drops the group from
the node ids it schedules by, so the groups are silently ignored.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.prefect",
    "tests.fixtures.postgres",
    "tests.fixtures.sshd",
    "tests.fixtures.sources",
]

_LEAKY_PREFIXES = ("SEAWALL_", "AWS_", "PG")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_LEAKY_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    # boto3 must never find real credentials or config files on this machine.
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def pytest_configure(config: pytest.Config) -> None:
    """A private TMPDIR for each xdist worker (a serial run keeps the environment it was given)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return  # serial, or the xdist controller (which runs no test)
    path = Path(tempfile.mkdtemp(prefix=f"seawall-{worker}-", dir=tempfile.gettempdir()))
    path.chmod(0o1777)  # like /tmp: the servers' own OS users make their folders here too
    config.stash[_TMPDIR] = path
    os.environ["TMPDIR"] = str(path)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    # Prefect is not imported yet: in-process flows, harnesses and their result storage use this
    # process's own home, not ~/.prefect (shared with the other workers and with the user's profile).
    os.environ["PREFECT_HOME"] = str(path / "prefect-home")


def pytest_unconfigure(config: pytest.Config) -> None:
    path = config.stash.get(_TMPDIR, None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


_TMPDIR = pytest.StashKey[Path]()

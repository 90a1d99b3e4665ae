"""Root test configuration: a clean environment for every test and the shared fixtures.

The user's own SEAWALL_* / AWS_* / PG* variables never leak into tests (borg `clean_env`).
Fixtures that start real services live in tests/fixtures/ and are loaded as plugins.
"""

from __future__ import annotations

import os

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

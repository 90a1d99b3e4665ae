"""Unit tests start with no registered secrets: a password an earlier test (or an integration
fixture in the same session) registered would otherwise be masked in these tests' expected text."""

from __future__ import annotations

import pytest

from seawall.redact import forget_secrets


@pytest.fixture(autouse=True)
def no_registered_secrets() -> None:
    forget_secrets()

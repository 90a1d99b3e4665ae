"""Flows run under Prefect's test harness (one temporary API for the whole session)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def prefect_harness():
    # Imported here, not at the top: it loads Prefect's whole server (~2 CPU-s), and every xdist
    # worker imports every test module to collect it, most of them never running these tests.
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield

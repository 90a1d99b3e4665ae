"""The locked and installed stack stays on versions known to work with Prefect 3.8's server.

Each range carries its reason; widening one needs the e2e test that proves the reason gone
(tests/e2e/test_schedule.py for the scheduler, tests/e2e/test_deploy.py for the API).
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]

KNOWN_GOOD = {
    # name: (lowest, first excluded, why)
    "sqlalchemy": ("2.0", "2.1", "SQLAlchemy 2.1 breaks Prefect 3.8's scheduler: every loop fails with "
                   "\"Can't evaluate bulk DML statement\" in _insert_scheduled_flow_runs; no scheduled run is created"),
    "fastapi": ("0.100", "0.151", "Prefect 3.8.8's server fails to start on newer fastapi "
                "(Body() got an unexpected keyword argument 'min_items')"),
    "prefect": ("3.8", "3.9", "3.9 needs a newer certifi than the package index has"),
}


def _locked() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"]}


@pytest.mark.parametrize("name", sorted(KNOWN_GOOD))
def test_installed_version_is_known_good(name):
    low, high, why = KNOWN_GOOD[name]
    assert Version(low) <= Version(version(name)) < Version(high), f"{name} {version(name)}: {why}"


@pytest.mark.parametrize("name", sorted(KNOWN_GOOD))
def test_locked_version_is_known_good(name):
    low, high, why = KNOWN_GOOD[name]
    locked = _locked()[name]
    assert Version(low) <= Version(locked) < Version(high), f"uv.lock pins {name} {locked}: {why}"


@pytest.mark.parametrize("name", sorted(KNOWN_GOOD))
def test_pyproject_caps_the_range(name):
    """The cap lives in pyproject.toml, so `uv lock --upgrade` cannot move past it."""
    from packaging.requirements import Requirement

    deps = [Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    spec = next(r.specifier for r in deps if r.name.lower() == name)
    assert Version(KNOWN_GOOD[name][1]) not in spec, f"pyproject.toml lets {name} reach {KNOWN_GOOD[name][1]}"

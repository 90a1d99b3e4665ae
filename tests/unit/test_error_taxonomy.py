"""The error taxonomy: one name per class, every class in exactly one family, exit codes fixed at
creation, and the places that used to blur the families (drill commands, optional server facts)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import seawall
from seawall.drill.node import LocalNode
from seawall.errors import ExitCode, LeaseBusy, PermanentError, RetryableError, SeawallError
from seawall.gc.listing import _aborted
from seawall.postgres.conn import PgConn

ROOT = Path(seawall.__file__).parent.parent
PACKAGES = ("seawall", "flows", "tasks", "blocks", "deployments")
_SKIP = {"seawall.checks.gx"}  # Great Expectations costs seconds to import; it defines no error class


def _all_error_classes() -> list[type]:
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            if info.name not in _SKIP:
                importlib.import_module(info.name)
    found, todo = [], [SeawallError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__.split(".")[0] in PACKAGES]


def test_error_class_names_are_unique_and_each_is_in_one_family() -> None:
    classes = _all_error_classes()
    names = [c.__name__ for c in set(classes)]
    assert sorted(n for n in names if names.count(n) > 1) == []
    roots = {SeawallError, RetryableError, PermanentError}
    homeless = [c.__qualname__ for c in set(classes) - roots
                if issubclass(c, RetryableError) == issubclass(c, PermanentError)]
    assert homeless == []


def test_lease_busy_is_permanent_with_its_own_exit_code() -> None:
    assert issubclass(LeaseBusy, PermanentError) and LeaseBusy("busy").exit_code == ExitCode.BUSY


def test_exit_codes_are_never_assigned_after_creation() -> None:
    offenders = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                targets = node.targets if isinstance(node, ast.Assign) else []
                for t in targets:
                    if isinstance(t, ast.Attribute) and t.attr == "exit_code" and not (
                            isinstance(t.value, ast.Name) and t.value.id == "self"):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_restated_gc_error_keeps_family_and_exit_code() -> None:
    busy = _aborted(LeaseBusy("held"), "listing")
    assert isinstance(busy, PermanentError) and busy.exit_code == ExitCode.BUSY
    flaky = _aborted(RetryableError("slow"), "listing")
    assert isinstance(flaky, RetryableError) and flaky.exit_code == ExitCode.FAILURE


def test_drill_command_timeout_is_retryable_but_a_bug_is_not(tmp_path: Path) -> None:
    (tmp_path / "PG_VERSION").write_text("15\n")
    node = LocalNode("local", PgConn("host=127.0.0.1 port=1"), str(tmp_path), bindir="/usr/bin")
    assert node.sh("echo ok").out.strip() == "ok"
    with pytest.raises(RetryableError, match="timed out"):
        node.sh("sleep 5", timeout=0.3)
    with pytest.raises(ValueError) as caught:  # embedded NUL: a bug in the caller, never retried
        node.sh("echo \0")
    assert not isinstance(caught.value, SeawallError)

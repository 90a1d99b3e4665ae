"""Time from exec to the flow's start of a seawall command line: the process ends when the CLI calls
`run_flow` (`os._exit`, before the flow runs), so its wall time seen from the shell is its start.

    /usr/bin/time -f %e .venv/bin/python bench/start_to_flow.py restore BACKUP --vault URL --to-datadir DIR ...

Prints one line to stderr, `MARK run=... cmd=... run_flow=...`: seconds since this script started
(after the interpreter's own start) at `seawall.cli.app.run` (CLI imported), at the command's
first passphrase read (typer has parsed) and at `run_flow`. A hook on the import of
`seawall.cli.common` and `seawall.cli.app` installs the marks without changing the import order.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from types import ModuleType

T0 = time.perf_counter()
marks: dict[str, float] = {}


def after_import(name: str, patch: Callable[[ModuleType], None]) -> None:
    class Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname != name:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(fullname)
            load = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                load(module)
                patch(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, Hook())


def patch_common(module: ModuleType) -> None:
    read = module.load_passphrase

    def run_flow(flow_fn, **params) -> None:
        marks["run_flow"] = time.perf_counter()
        sys.__stderr__.write("MARK " + " ".join(f"{k}={v - T0:.3f}" for k, v in marks.items()) + "\n")
        sys.__stderr__.flush()
        os._exit(0)

    def load_passphrase(*args, **kwargs):
        marks.setdefault("cmd", time.perf_counter())
        return read(*args, **kwargs)

    module.run_flow, module.load_passphrase = run_flow, load_passphrase


def patch_app(module: ModuleType) -> None:
    run = module.run

    def timed_run() -> None:
        marks["run"] = time.perf_counter()
        run()

    module.run = timed_run


def main() -> None:
    after_import("seawall.cli.common", patch_common)
    after_import("seawall.cli.app", patch_app)
    sys.argv = ["seawall", *sys.argv[1:]]
    from seawall.cli.entry import main as entry

    entry()


if __name__ == "__main__":
    main()

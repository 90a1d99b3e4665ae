"""The restore steps of `bench.pg_phys_bench`: full and `--delta` restores, seawall's and pgBackRest's.

Each restore is timed until the copy has been promoted (recovery to `immediate`, the backup's own end):
for seawall that is the whole `seawall restore` process (it returns once the copy is promoted), for
pgBackRest `pgbackrest restore` plus starting the server and waiting for the same state with the same
poll (`recovery_modes.wait_for_end`). A delta restore starts from a stopped copy of the full backup
of the same repetition, made by the same tool before the 1% change (untimed).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.pg_common import DB as DB  # re-exported: bench.pg_phys_bench imports these from here
from bench.pg_common import (
    SEAWALL_BIN,
    Primary,
    measure,
    private_dir,
    remove_cluster_dir,
    restored_cluster,
    settle,
)
from bench.pg_common import log as log
from bench.pg_common import med as med
from bench.pg_common import new_vault as new_vault
from bench.pg_common import pg_tool as pg_tool
from seawall.postgres.cluster import LocalCluster, free_port
from seawall.postgres.recovery_modes import wait_for_end


class RestoreSteps:
    """Mixed into the benchmark: needs `self.p` (the primary), `self.root`, `self.args`, `self.copies`."""

    p: Primary
    root: Path
    args: Any
    copies: list[LocalCluster]

    def seawall_restore(self, backup_id: str, url: str, datadir: Path, *, delta: bool = False) -> tuple[float, dict]:
        port = free_port()
        out = self.root / f"restore-{time.monotonic_ns()}.json"
        settle()
        m = measure([SEAWALL_BIN, "restore", backup_id, "--vault", url, "--to-datadir", str(datadir), "--port",
                     str(port), "--target", "immediate", "--no-archive", "-j", str(self.args.jobs), "--json",
                     "--passphrase-file", str(self.p.passphrase_file), *(["--delta"] if delta else [])], stdout=out)
        report = json.loads(out.read_text() or "{}")
        out.unlink()
        self.track(restored_cluster(datadir, port))
        return m.wall_s, report

    def track(self, copy: LocalCluster) -> None:
        """The server now running on `copy.datadir` (a delta restore reuses a directory on a new port)."""
        self.copies = [c for c in self.copies if c.datadir != copy.datadir] + [copy]

    def pgbackrest_restore(self, datadir: Path, *, delta: bool = False) -> float:
        private_dir(datadir)
        copy = restored_cluster(datadir, free_port())
        settle()
        t0 = time.perf_counter()
        self.p.pgbr.run(f"--pg1-path={datadir}", "restore", "--type=immediate", "--target-action=promote",
                        "--archive-mode=off", *(["--delta"] if delta else []))
        private_dir(copy.socket_dir)
        copy.start(wait=False, timeout=3600)
        wait_for_end(copy, "promote", 3600)
        wall = time.perf_counter() - t0
        self.track(copy)
        return wall

    def stop(self, datadir: Path) -> None:
        for copy in self.copies:
            if copy.datadir == datadir and copy.is_running():
                copy.stop()

    def drop(self, datadir: Path) -> None:
        for copy in [c for c in self.copies if c.datadir == datadir]:
            remove_cluster_dir(copy)
            self.copies.remove(copy)
        shutil.rmtree(datadir.parent, ignore_errors=True)

    def full_copies(self, run: dict[str, Any], url: str) -> None:
        """Both tools restore their full backup (untimed here) and stop it: the delta restores' start."""
        k = run["rep"]
        run["seawall_base"] = private_dir(self.root / f"sw-base-{k}") / "data"
        run["restore_of_full_s"], _ = self.seawall_restore(run["full_id"], url, run["seawall_base"])
        self.stop(run["seawall_base"])
        run["pgbr_base"] = private_dir(self.root / f"br-base-{k}") / "data"
        self.pgbackrest_restore(run["pgbr_base"])
        self.stop(run["pgbr_base"])

    def dump_hash(self, conninfo: str) -> str:
        """sha256 of `pg_dumpall --data-only` (physical copies keep row order: byte-equal dumps)."""
        proc = subprocess.Popen([pg_tool("pg_dumpall"), "-d", conninfo, "--data-only",
                                 "--restrict-key=seawallbench"], stdout=subprocess.PIPE)
        digest = hashlib.sha256()
        for block in iter(lambda: proc.stdout.read(1 << 20), b""):
            digest.update(block)
        if proc.wait() != 0:
            raise RuntimeError(f"pg_dumpall of {conninfo} failed")
        return digest.hexdigest()

    def check_copy(self, datadir: Path, reference: str, amcheck: bool = True) -> dict[str, Any]:
        """The copy dumps the primary's data byte for byte and passes pg_amcheck --heapallindexed
        (`amcheck` False: the dump only; amcheck of 1 GB takes longer than the restore it checks)."""
        copy = next(c for c in self.copies if c.datadir == datadir)
        same = self.dump_hash(copy.conninfo()) == reference
        if not amcheck:
            return {"dump_equal": same, "amcheck_rc": 0, "amcheck_out": "not run"}
        amcheck = subprocess.run([pg_tool("pg_amcheck"), "-h", str(copy.socket_dir), "-p", str(copy.port), "-U",
                                  "postgres", "--all", "--heapallindexed", "--install-missing"],
                                 capture_output=True, text=True, check=False)
        return {"dump_equal": same, "amcheck_rc": amcheck.returncode, "amcheck_out": amcheck.stdout[-500:]}

    def restores(self, run: dict[str, Any], url: str, first: bool) -> None:
        k, ref = run["rep"], run["reference_sha256"]
        checks = {}
        for tool in (("seawall", "pgbackrest") if first else ("pgbackrest", "seawall")):
            if tool == "seawall":
                for delta in ((False, True) if first else (True, False)):
                    datadir = run["seawall_base"] if delta else private_dir(self.root / f"sw-full-{k}") / "data"
                    wall, report = self.seawall_restore(run["incr_id"], url, datadir, delta=delta)
                    run["restore_delta_s" if delta else "restore_full_s"] = wall
                    run["delta_report" if delta else "full_report"] = report
                    checks["delta" if delta else "full"] = self.check_copy(datadir, ref, k < self.args.amcheck_reps)
                    self.drop(datadir)
            else:
                run["pgbackrest_restore_s"] = self.pgbackrest_restore(private_dir(self.root / f"br-{k}") / "data")
                self.drop(self.root / f"br-{k}" / "data")
                run["pgbackrest_delta_s"] = self.pgbackrest_restore(run["pgbr_base"], delta=True)
                self.drop(run["pgbr_base"])
        run["checks"] = checks
        run["identical"] = all(c["dump_equal"] and c["amcheck_rc"] == 0 for c in checks.values())
        log(f"rep {k}: restore seawall full {run['restore_full_s']:.1f}s, delta {run['restore_delta_s']:.1f}s "
            f"({(run.get('delta_report') or {}).get('files', {})}); "
            f"pgbackrest full {run['pgbackrest_restore_s']:.1f}s, delta {run['pgbackrest_delta_s']:.1f}s; "
            f"identical {run['identical']} {checks}")

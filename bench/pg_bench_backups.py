"""Steps a-c of `bench.pg_bench`: logical backups (and the second one after 1% changed), physical backups.

Each repetition alternates which tool goes first; seawall runs as a measured child process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.pg_bench_report import TARGETS
from bench.pg_common import DB, MB, Measured, Primary, du, log, measure, med, new_vault, pg_tool, run_child, settle


class BackupSteps:
    """Mixed into `pg_bench.Bench`: needs `self.p`, `self.root`, `self.args`, `self.results`, `self.rss_note`."""

    p: Primary
    root: Path
    args: Any
    results: dict[str, Any]

    def rss_note(self, what: str, m: Measured) -> None:
        raise NotImplementedError

    def logical(self) -> None:
        p, args = self.p, self.args
        dump_argv = [pg_tool("pg_dump"), "-Fd", "-Z0", "-j", "2", "-d", p.conninfo(DB)]
        warm = self.root / "dump-warm"
        measure([*dump_argv, "-f", str(warm)])  # untimed: page cache and server caches warm
        dump_bytes = du(warm)
        shutil.rmtree(warm)
        base, ours, ours_op, base_cpu, ours_cpu, base_busy, ours_busy = [], [], [], [], [], [], []
        last: dict[str, Any] = {}
        for rep in range(args.reps):
            for tool in (("pg_dump", "seawall") if rep % 2 == 0 else ("seawall", "pg_dump")):
                settle()
                if tool == "pg_dump":
                    folder = self.root / f"dump-{rep}"
                    m = measure([*dump_argv, "-f", str(folder)])
                    shutil.rmtree(folder)
                    base.append(m.wall_s)
                    base_cpu.append(m.cpu_s)
                    base_busy.append(m.system_busy_s)
                    log(f"a rep {rep}: pg_dump -Fd -Z0 -j2 {m.wall_s:.1f}s (machine busy {m.system_busy_s:.1f} CPU-s)")
                else:
                    if last:
                        shutil.rmtree(last["path"], ignore_errors=True)
                    url = new_vault(self.root, f"lvault-{rep}")
                    m = run_child("logical", {"vault": url, "conninfo": p.conninfo(DB), "dataset": DB, "jobs": 2},
                                  self.root)
                    self.rss_note("logical backup", m)
                    ours.append(m.wall_s)
                    ours_op.append(m.report["op_s"])
                    ours_cpu.append(m.cpu_s)
                    ours_busy.append(m.system_busy_s)
                    last = {"url": url, "path": Path(url.removeprefix("file://")), "report": m.report}
                    log(f"a rep {rep}: seawall backup_logical {m.wall_s:.1f}s (op {m.report['op_s']:.1f}s, "
                        f"stored {m.report['stats']['stored_bytes_new'] / MB:.0f} MB, "
                        f"rss {m.report['vm_hwm'] / MB:.0f} MB, machine busy {m.system_busy_s:.1f} CPU-s)")
        first = last["report"]
        self.results["logical"] = {
            "dump_bytes": dump_bytes, "pg_dump_s": base, "seawall_s": ours, "seawall_op_s": ours_op,
            "pg_dump_median_s": med(base), "seawall_median_s": med(ours), "ratio": med(ours) / med(base),
            "ratio_op": med(ours_op) / med(base), "target": TARGETS["logical"],
            "pg_dump_cpu_s": base_cpu, "seawall_cpu_s": ours_cpu, "cores": os.cpu_count(),
            "pg_dump_machine_busy_s": base_busy, "seawall_machine_busy_s": ours_busy,
            "first_stored_bytes": first["stats"]["stored_bytes_new"], "first_bytes": first["stats"]["bytes_total"],
            "vault_bytes_after_first": du(last["path"])}
        # b: a second backup after 1% of rows changed, into the same vault, with the first as parent
        incr: dict[str, Any] = {}
        first_stored = first["stats"]["stored_bytes_new"]
        for pattern, fraction in (("recent", 0.01), ("scattered", 0.01)):
            from seawall.postgres import datagen

            touched = datagen.mutate(p.conninfo(DB), fraction, pattern=pattern)
            before = du(last["path"])
            settle()
            m = run_child("logical", {"vault": last["url"], "conninfo": p.conninfo(DB), "dataset": DB, "jobs": 2,
                                      "parent": first["backup_id"]}, self.root)
            self.rss_note("logical backup", m)
            st = m.report["stats"]
            incr[pattern] = {"rows_touched": touched, "wall_s": m.wall_s, "stored_bytes_new": st["stored_bytes_new"],
                             "bytes_new": st["bytes_new"], "chunks_new": st["chunks_new"],
                             "chunks_total": st["chunks_total"], "vault_growth": du(last["path"]) - before,
                             "share": st["stored_bytes_new"] / first_stored}
            log(f"b {pattern}: {touched} rows changed, second backup stored {st['stored_bytes_new'] / MB:.1f} MB "
                f"= {incr[pattern]['share']:.1%} of the first ({m.wall_s:.1f}s)")
        incr["share"] = incr["recent"]["share"]
        incr["target"] = TARGETS["incremental"]
        self.results["incremental"] = incr
        shutil.rmtree(last["path"], ignore_errors=True)

    # -- c --
    def physical(self) -> None:
        p, args = self.p, self.args
        ours, ours_op, base, ours_cpu, base_cpu = [], [], [], [], []
        self.phys: dict[str, Any] = {}
        for rep in range(args.reps):
            for tool in (("seawall", "pgbackrest") if rep % 2 == 0 else ("pgbackrest", "seawall")):
                if tool == "seawall":
                    old = self.phys.get("path")
                    url = new_vault(self.root, f"pvault-{rep}")
                    p.archive_into(url)  # from here on, every segment lands in the new vault
                    if old:
                        shutil.rmtree(old, ignore_errors=True)
                    settle()
                    m = run_child("physical", {"vault": url, "conninfo": p.conninfo(), "dataset": "cluster"},
                                  self.root)
                    self.rss_note("physical backup", m)
                    ours.append(m.wall_s)
                    ours_op.append(m.report["op_s"])
                    ours_cpu.append(m.cpu_s)
                    self.phys = {"url": url, "path": Path(url.removeprefix("file://")), "report": m.report}
                    log(f"c rep {rep}: seawall backup_physical {m.wall_s:.1f}s (op {m.report['op_s']:.1f}s, "
                        f"stored {m.report['stats']['stored_bytes_new'] / MB:.0f} MB, "
                        f"rss {m.report['vm_hwm'] / MB:.0f} MB)")
                else:
                    settle()
                    m = p.pgbr.run("backup", "--type=full")
                    base.append(m.wall_s)
                    base_cpu.append(m.cpu_s)
                    log(f"c rep {rep}: pgbackrest backup --type=full {m.wall_s:.1f}s")
        info = subprocess.run(p.pgbr.argv("info", "--output=json"), capture_output=True, text=True, check=False)
        pgbr_sizes = []
        with contextlib.suppress(Exception):
            for b in json.loads(info.stdout)[0]["backup"]:
                pgbr_sizes.append(b["info"]["repository"]["delta"])
        st = self.phys["report"]["stats"]
        self.results["physical"] = {
            "pgbackrest_s": base, "seawall_s": ours, "seawall_op_s": ours_op, "pgbackrest_median_s": med(base),
            "seawall_median_s": med(ours), "ratio": med(ours) / med(base), "ratio_op": med(ours_op) / med(base),
            "target": TARGETS["physical"], "seawall_cpu_s": ours_cpu, "pgbackrest_cpu_s": base_cpu,
            "base_tar_bytes": st["bytes_total"],
            "seawall_stored_bytes": st["stored_bytes_new"],
            "pgbackrest_repo_bytes_per_full": pgbr_sizes}

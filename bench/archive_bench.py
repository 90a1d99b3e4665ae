"""WAL archiving: `seawall wal-push --async` vs the synchronous `wal-push` vs pgBackRest's async archive-push.

    for r in 0 1 2; do   # one round per gated run (~9 min each on a quiet 2-vCPU machine)
      bench/gate bench .venv/bin/python -m bench.archive_bench --reps 1 --first-rep $r --seconds 120 \\
          --segments 200 --scale 20 --json bench/out/archive-r$r.json
    done
    .venv/bin/python -m bench.archive_bench --merge bench/out/archive-r[012].json --json bench/out/archive.json
    .venv/bin/python -m bench.archive_bench --reps 1 --seconds 5 --segments 6 --scale 1   # smoke, ~1.5 min

One PostgreSQL 15 primary (run as the `postgres` OS user, fsync on). The run is made of rounds
(`--reps`); in each, every tool takes each measure once (the order rotates from round to round),
each into a fresh vault / fresh pgBackRest archive, with `archive_command` switched by ALTER SYSTEM
+ reload. The JSON report is rewritten after every measure, so a run cut short keeps whole rounds.

- keep-up: `pgbench -c 4 -j 2 -T SECONDS -n` at full speed (no rate limit); every 0.5 s a sampler
  counts `pg_wal/archive_status/*.ready` (segments complete but not yet archived) and reads
  pg_stat_archiver; reports the max behind, failures, WAL written, tps, time to drain after pgbench.
- throughput: SEGMENTS segments written beforehand with archiving held back (real WAL from INSERTs
  of random md5 text, which compresses about 2x), then marked `.ready` again for each tool: the time
  until PostgreSQL has archived them all, in segments/s.

Vaults are file:// on the same disk with the default scrypt cost (what each sync wal-push pays).
pgBackRest 2.45: archive-async=y, process-max=4 (seawall --jobs 4), compress-type=zst.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster, make_private_dir
from seawall.vault import init_vault

SEAWALL_BIN = str(Path(sys.executable).with_name("seawall"))
PASSPHRASE = "archive-bench-passphrase"
STANZA = "bench"
TOOLS = ("seawall-async", "seawall-sync", "pgbackrest-async")


def private(path: Path, text: str | None = None, mode: int = 0o600) -> Path:
    if text is None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:
        path.write_text(text)
        path.chmod(mode)
    binaries.chown_to_server_user(path)
    return path


class Bench:
    def __init__(self, root: Path, jobs: int, sample_every: float = 0.5):
        self.root, self.jobs, self.sample_every = root, jobs, sample_every
        self.pass_file = private(root / "passphrase", PASSPHRASE)
        self.cluster = LocalCluster.create(root, settings={
            "archive_mode": "on", "archive_command": "true", "wal_level": "replica", "max_wal_size": "2GB",
            "wal_keep_size": "20GB", "checkpoint_timeout": "30min", "shared_buffers": "128MB"})
        self.cluster.start()
        self.status = self.cluster.datadir / "pg_wal" / "archive_status"
        self.pgbr_conf = self._pgbackrest_config()
        self.target = 0
        self.log_seen = 0

    # ---- tools ------------------------------------------------------------------------------------
    def _pgbackrest_config(self) -> Path:
        for name in ("repo", "log", "lock", "spool"):
            private(self.root / f"pgbr-{name}")
        return private(self.root / "pgbackrest.conf", "\n".join([
            "[global]", f"repo1-path={self.root / 'pgbr-repo'}", "compress-type=zst", f"process-max={self.jobs}",
            "archive-async=y", f"spool-path={self.root / 'pgbr-spool'}", f"log-path={self.root / 'pgbr-log'}",
            f"lock-path={self.root / 'pgbr-lock'}", "log-level-console=warn", "log-level-file=info",
            "archive-timeout=60", "", f"[{STANZA}]", f"pg1-path={self.cluster.datadir}",
            f"pg1-port={self.cluster.port}", f"pg1-socket-path={self.cluster.socket_dir}", "pg1-user=postgres", ""]),
            mode=0o644)

    def pgbackrest(self, *args: str) -> list[str]:
        return ["pgbackrest", f"--config={self.pgbr_conf}", f"--stanza={STANZA}", *args]

    def fresh_target(self, tool: str, rep: int) -> str:
        """A new empty vault / archive for `tool`; returns its archive_command."""
        self.target += 1
        rep = f"{rep}-{self.target}"
        spool = self.root / f"spool-{tool}-{rep}"
        if tool == "pgbackrest-async":
            for sub in ("pgbr-repo", "pgbr-spool"):
                shutil.rmtree(self.root / sub, ignore_errors=True)
                private(self.root / sub)
            as_postgres(self.pgbackrest("stanza-create"))
            return " ".join(self.pgbackrest("archive-push", "%p"))
        vault = private(self.root / f"vault-{tool}-{rep}")
        url = f"file://{vault}"
        init_vault(url, PASSPHRASE)  # the default scrypt cost: what every synchronous wal-push pays
        binaries.chown_to_server_user(vault)
        for dirpath, dirs, files in os.walk(vault):
            for name in dirs + files:
                binaries.chown_to_server_user(Path(dirpath) / name)
        base = f"{SEAWALL_BIN} wal-push %p --vault {shlex.quote(url)} --passphrase-file {self.pass_file}"
        if tool == "seawall-sync":
            return base
        private(spool)
        return f"{base} --async --jobs {self.jobs} --spool {spool}"

    def stop_daemons(self) -> None:
        for spool in self.root.glob("spool-seawall-async-*"):
            subprocess.run([SEAWALL_BIN, "wal-async", "stop", "--spool", str(spool)], capture_output=True, check=False)

    def set_archive_command(self, command: str) -> None:
        self.cluster.execute(f"ALTER SYSTEM SET archive_command = {quote(command)}")
        self.cluster.execute("SELECT pg_reload_conf()")

    # ---- measurements -----------------------------------------------------------------------------
    def ready(self) -> list[str]:
        return sorted(n[:-6] for n in os.listdir(self.status) if n.endswith(".ready"))

    def archiver(self) -> tuple[int, int]:
        return self.cluster.execute("SELECT archived_count, failed_count FROM pg_stat_archiver")[0]

    def drain(self, timeout: float = 900) -> float:
        start = time.monotonic()
        while self.ready():
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"archive not drained after {timeout}s: {self.cluster.log_tail(5)}")
            time.sleep(0.05)
        return time.monotonic() - start

    def keep_up(self, tool: str, rep: int, seconds: int) -> dict[str, Any]:
        self.set_archive_command(self.fresh_target(tool, rep))
        self.cluster.execute("SELECT pg_switch_wal()")
        self.drain()
        archived0, failed0 = self.archiver()
        lsn0 = self.cluster.execute("SELECT pg_current_wal_lsn()")[0][0]
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(self.sample_every):
                samples.append(len(self.ready()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out = pgbench(self.cluster, "-c", "4", "-j", "2", "-T", str(seconds), "-n")
        written = self.cluster.execute(f"SELECT pg_current_wal_lsn() - '{lsn0}'::pg_lsn")[0][0]
        behind_at_end = len(self.ready())
        drain_s = self.drain()
        stop.set()
        sampler.join()
        archived1, failed1 = self.archiver()
        return {"tool": tool, "rep": rep, "max_behind": max(samples, default=0), "behind_at_end": behind_at_end,
                "drain_s": round(drain_s, 2), "failures": failed1 - failed0, "archived": archived1 - archived0,
                "wal_mb": round(int(written) / 1e6, 1), "tps": tps(out), "samples": len(samples),
                "load": os.getloadavg()[0], **self.errors()}

    def premake(self, count: int) -> list[str]:
        """`count` complete segments that no tool has archived yet (the archiver is held back)."""
        self.set_archive_command("false")
        self.cluster.execute("CREATE TABLE IF NOT EXISTS filler (i int, a text, b text)")
        while len(self.ready()) < count:
            self.cluster.execute("INSERT INTO filler SELECT g, md5(random()::text), md5(random()::text)"
                                 " FROM generate_series(1, 200000) g")
        self.cluster.execute("SELECT pg_switch_wal()")
        names = [n for n in self.ready() if len(n) == 24][:count]
        for name in self.ready():  # nothing pending: each tool starts from the same state
            os.replace(self.status / f"{name}.ready", self.status / f"{name}.done")
        self.cluster.execute("TRUNCATE filler")
        return names

    def throughput(self, tool: str, rep: int, names: list[str]) -> dict[str, Any]:
        self.set_archive_command(self.fresh_target(tool, rep))
        time.sleep(1)
        failed0 = self.archiver()[1]
        start = time.monotonic()
        for name in names:  # the same segments again, as if just written
            os.replace(self.status / f"{name}.done", self.status / f"{name}.ready")
        self.cluster.execute("SELECT pg_reload_conf()")  # wakes the archiver (SIGHUP sets its latch)
        while any((self.status / f"{n}.ready").exists() for n in names):
            time.sleep(0.02)
            if time.monotonic() - start > 900:
                raise RuntimeError(f"{tool}: not archived after 900 s: {self.cluster.log_tail(5)}")
        wall = time.monotonic() - start
        return {"tool": tool, "rep": rep, "segments": len(names), "wall_s": round(wall, 2),
                "segments_per_s": round(len(names) / wall, 1), "failures": self.archiver()[1] - failed0,
                "load": os.getloadavg()[0], **self.errors()}

    def errors(self) -> dict[str, list[str]]:
        """The distinct archive_command error lines PostgreSQL logged since the last call."""
        text = self.cluster.logfile.read_text(errors="replace")
        new, self.log_seen = text[self.log_seen:], len(text)
        lines = {line.split("]", 1)[-1].strip()[:300] for line in new.splitlines()
                 if "error" in line.lower() and "archive" not in line.lower()[:40]}
        return {"errors": sorted(lines)[:5]} if lines else {}


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def as_postgres(argv: list[str]) -> str:
    result = binaries.run(argv, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}: {result.stderr.strip()[-500:]}")
    return result.stdout


def pgbench(cluster: LocalCluster, *args: str) -> str:
    argv = [binaries.tool("pgbench"), "-h", str(cluster.socket_dir), "-p", str(cluster.port), "-U", "postgres",
            *args, "postgres"]
    return binaries.run(argv, as_server_user=False).stdout


def tps(out: str) -> float:
    for line in out.splitlines():
        if line.startswith("tps = "):
            return round(float(line.split()[2]), 1)
    return 0.0


def order(rep: int, tools: tuple[str, ...] = TOOLS) -> list[str]:
    """The tools in round `rep`'s order: rotated by one each round (split runs pass --first-rep)."""
    return [tool for tool in TOOLS[rep % 3:] + TOOLS[:rep % 3] if tool in tools]


def summary(rows: list[dict], key: str) -> dict[str, Any]:
    out = {}
    for tool in TOOLS:
        values = [r[key] for r in rows if r["tool"] == tool]
        if values:
            out[tool] = {"median": statistics.median(values), "values": values}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--segments", type=int, default=200)
    ap.add_argument("--scale", type=int, default=20, help="pgbench -i -s")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--only", default="kt", help="k: keep-up, t: throughput")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    ap.add_argument("--first-rep", type=int, default=0,
                    help="number of the first round (its tool order): split runs continue the rotation")
    ap.add_argument("--sample", type=float, default=0.5, help="seconds between backlog samples (keep-up)")
    ap.add_argument("--json")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="only merge the reports of split runs into --json")
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge, args.json)
    tools = tuple(args.tools.split(","))
    if set(tools) - set(TOOLS):
        ap.error(f"unknown tool in --tools: {args.tools}")
    root = make_private_dir("archive-bench-")
    report: dict[str, Any] = {"uptime_start": os.getloadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                                                         time.gmtime())}
    bench = Bench(root, args.jobs, args.sample)
    try:
        report["pgbackrest"] = subprocess.run(["pgbackrest", "version"], capture_output=True, text=True).stdout.strip()
        pgbench(bench.cluster, "-i", "-s", str(args.scale), "-q")
        bench.drain()
        bench.errors()
        names = bench.premake(args.segments) if "t" in args.only else []
        # Rounds, each with every measure once: a run cut short (the shared machine's benchmark
        # lock) still has whole rounds. The order of the tools rotates from round to round.
        for rep in range(args.first_rep, args.first_rep + args.reps):
            ordered = order(rep, tools)
            if "k" in args.only:
                for tool in ordered:
                    record(report, "keep_up", bench.keep_up(tool, rep, args.seconds), bench, args.json)
            for tool in ordered if names else ():
                record(report, "throughput", bench.throughput(tool, rep, names), bench, args.json)
    finally:
        report["uptime_end"] = os.getloadavg()
        bench.stop_daemons()
        bench.cluster.remove()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=1))
    save(args.json, report)


KEYS = {"keep_up": ("max_behind", "failures", "tps", "wal_mb", "drain_s"), "throughput": ("segments_per_s", "wall_s")}


def record(report: dict[str, Any], measure: str, row: dict[str, Any], bench: Bench, path: str | None) -> None:
    bench.stop_daemons()
    print(json.dumps({"measure": measure, **row}), flush=True)
    rows = report.setdefault(measure, {}).setdefault("rows", [])
    rows.append(row)
    report[measure].update({k: summary(rows, k) for k in KEYS[measure]})
    save(path, report)


def merge(paths: list[str], out: str | None) -> None:
    """One report from several split runs: every row kept, medians over all of them."""
    report: dict[str, Any] = {"merged": paths, "runs": []}
    for path in paths:
        part = json.loads(Path(path).read_text())
        report["runs"].append({k: part.get(k) for k in ("started", "uptime_start", "uptime_end", "pgbackrest")})
        for measure in KEYS:
            rows = report.setdefault(measure, {}).setdefault("rows", [])
            rows.extend(part.get(measure, {}).get("rows", []))
    for measure in KEYS:
        rows = report[measure]["rows"]
        report[measure].update({k: summary(rows, k) for k in KEYS[measure]})
    print(json.dumps({m: {k: report[m][k] for k in KEYS[m]} for m in KEYS}, indent=1))
    save(out, report)


def save(path: str | None, report: dict[str, Any]) -> None:
    """Written after every run: a run stopped early keeps what it measured."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

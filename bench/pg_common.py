"""Helpers for the PostgreSQL benchmark: measured child processes, the archiving primary, pgBackRest.

Everything runs on this machine: a primary (Debian server binaries, as the `postgres` OS user) whose
`archive_command` pushes each WAL segment both into a seawall vault (`seawall wal-push`) and into a
pgBackRest repository (`pgbackrest archive-push`), so each tool restores from its own archive.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster, make_private_dir

REPO = Path(__file__).resolve().parent.parent
SEAWALL_BIN = str(Path(sys.executable).with_name("seawall"))
PASSPHRASE = "pg-bench-passphrase"
STANZA = "bench"
MB = 1_000_000
DB = "shop"  # the realistic database (seawall.postgres.datagen) both benchmarks back up


# ---- measured child processes -------------------------------------------------------------------
@dataclass
class Measured:
    """One process run to completion: wall time as seen by the parent, CPU and peak RSS from wait4."""

    wall_s: float
    cpu_s: float
    peak_rss: int  # ru_maxrss: the child or any descendant it waited for (pg_dump, pg_basebackup...)
    returncode: int
    report: dict[str, Any]
    stderr: str = ""
    system_busy_s: float = 0.0  # CPU time of the whole machine meanwhile (the server's backends too)


def measure(argv: list[str], *, user: str | None = None, cwd: str | os.PathLike | None = None,
            env: dict[str, str] | None = None, report_file: Path | None = None, check: bool = True,
            stdout: Path | None = None) -> Measured:
    """Run `argv`, wait for it with wait4 (so its rusage is its own), optionally read a JSON report;
    its standard output goes to `stdout` (a file), else to /dev/null."""
    kwargs: dict[str, Any] = {}
    if user:
        import pwd

        kwargs.update(user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=[])
        cwd = cwd or "/"
    errfile = Path(os.environ.get("TMPDIR", "/tmp")) / f"pgbench-err-{os.getpid()}-{time.monotonic_ns()}"
    busy0 = system_busy()
    start = time.perf_counter()
    with open(errfile, "w+") as err, open(stdout or os.devnull, "wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, **kwargs)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        busy = system_busy() - busy0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    errfile.unlink(missing_ok=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {proc.returncode}: {stderr.strip()[-2000:]}")
    report = json.loads(report_file.read_text()) if report_file and report_file.exists() else {}
    return Measured(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, proc.returncode, report, stderr,
                    busy)


def system_busy() -> float:
    """Seconds of CPU the whole machine has spent busy since boot (/proc/stat: all but idle and iowait).

    Beside a step's wall time this shows whether the step was CPU-bound: on 2 cores, a step whose
    machine-wide busy time is close to 2x its wall time had no idle core left to use.
    """
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def run_child(op: str, args: dict[str, Any], workdir: Path) -> Measured:
    """`python -m bench.pg_bench --child OP ARGS-JSON --out FILE` (its report goes to a file: a server it
    leaves running must not hold our pipes)."""
    out = workdir / f"child-{op}-{time.monotonic_ns()}.json"
    argv = [sys.executable, "-m", "bench.pg_bench", "--child", op, json.dumps(args), "--out", str(out)]
    profile_dir = os.environ.get("PG_BENCH_PYSPY")  # profiling runs only: timings then include py-spy
    if profile_dir:
        prof = Path(profile_dir) / f"{op}-{time.monotonic_ns()}.txt"
        argv = ["py-spy", "record", "--format", "raw", "-r", "100", "--threads", "--gil", "-o", str(prof), "--",
                *argv]
    try:
        return measure(argv, cwd=REPO, report_file=out)
    finally:
        out.unlink(missing_ok=True)


def vm_hwm() -> int:
    """This process's peak RSS in bytes (VmHWM)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def settle() -> None:
    """Flush the previous phase's dirty pages so they do not slow the next timed phase."""
    os.sync()
    time.sleep(1.0)


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    binaries.chown_to_server_user(path)
    path.chmod(mode)
    return path


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    binaries.chown_to_server_user(path)
    return path


def du(path: Path) -> int:
    """Bytes of the regular files under `path`."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def segno(walfile: str) -> int:
    """Segment number of a 16 MiB WAL segment name (timeline ignored)."""
    return int(walfile[8:16], 16) * 0x100 + int(walfile[16:24], 16)


# ---- pgBackRest -------------------------------------------------------------------------------
class PgBackRest:
    """A local pgBackRest repository (zstd, process-max=2) for one stanza, run as the postgres user."""

    def __init__(self, root: Path, cluster: LocalCluster, process_max: int = 2):
        self.root = root
        self.repo = private_dir(root / "pgbr-repo")
        for name in ("log", "lock", "spool"):
            private_dir(root / f"pgbr-{name}")
        self.config = private_file(root / "pgbackrest.conf", "\n".join([
            "[global]",
            f"repo1-path={self.repo}",
            "repo1-retention-full=99",
            "compress-type=zst",
            f"process-max={process_max}",
            "start-fast=y",
            f"log-path={root / 'pgbr-log'}",
            f"lock-path={root / 'pgbr-lock'}",
            f"spool-path={root / 'pgbr-spool'}",
            "log-level-console=warn",
            "log-level-file=off",
            "",
            f"[{STANZA}]",
            f"pg1-path={cluster.datadir}",
            f"pg1-port={cluster.port}",
            f"pg1-socket-path={cluster.socket_dir}",
            "pg1-user=postgres",
            "",
        ]), mode=0o640)

    def argv(self, *args: str) -> list[str]:
        return [shutil.which("pgbackrest") or "pgbackrest", f"--config={self.config}", f"--stanza={STANZA}", *args]

    def run(self, *args: str) -> Measured:
        return measure(self.argv(*args), user=binaries.os_user())

    def archive_push_command(self) -> str:
        return " ".join(self.argv("archive-push"))

    @staticmethod
    def version() -> str:
        out = subprocess.run(["pgbackrest", "version"], capture_output=True, text=True, check=False).stdout
        return out.strip()


# ---- the primary --------------------------------------------------------------------------------
@dataclass
class Primary:
    cluster: LocalCluster
    root: Path
    passphrase_file: Path
    vault_url_file: Path  # which vault `seawall wal-push` writes to (switched per backup repetition)
    pgbr: PgBackRest

    @property
    def vault_url(self) -> str:
        return self.vault_url_file.read_text().strip()

    def switch_vault(self, url: str) -> None:
        """Point the archive at another vault (read per segment by the archive script)."""
        tmp = self.vault_url_file.with_suffix(".tmp")
        private_file(tmp, url + "\n", mode=0o644)
        os.replace(tmp, self.vault_url_file)

    def archive_into(self, url: str) -> None:
        """Point the archive at vault `url` and return once the server has archived a segment there.

        As in a deployment, whose archive goes into one vault, the server's last archived file is then
        in the vault the next backup writes to: a data-directory backup pushes the WAL it needs itself
        only when it is (`seawall.postgres.backup_wal.archives_here`), and otherwise waits for the
        archiver (~0.3 s a segment here: one `wal-push` and one `archive-push` process). Switching the
        vault alone is not enough: `pg_switch_wal()` on an empty segment archives nothing, so the last
        archived file would stay in the vault before (the odd repetitions' slower incrementals,
        bench/POSTGRES.md 2026-12-07). A transaction id is taken first, so its commit record makes the
        segment non-empty.
        """
        self.switch_vault(url)
        self.sql("SELECT pg_current_xact_id()")
        self.switch_and_wait_archived()

    def sql(self, query: str, dbname: str = "postgres") -> list[tuple]:
        return self.cluster.execute(query, dbname=dbname)

    def conninfo(self, dbname: str = "postgres") -> str:
        return self.cluster.conninfo(dbname)

    def switch_and_wait_archived(self, timeout: float = 900) -> str:
        """Close the current segment and wait until the archiver has pushed it; returns its name.

        pg_switch_wal() is a no-op on an empty segment; pg_walfile_name() of the LSN it returns is
        then the segment before (already complete), so either way the name is a finished segment.
        """
        seg = self.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        wait_archived(self, seg, timeout)
        return seg


def wait_archived(primary: Primary, segment: str, timeout: float = 900) -> None:
    """Wait until `segment` is archived.

    pg_stat_archiver's last_archived_wal alone is not enough: it is the file archived *last*, and a
    `.backup` file may be archived after a later segment (seen after pgBackRest's backups: BA archived,
    then B9.00000028.backup), so the archive_status `.done` marker is checked too.
    """
    status = primary.cluster.datadir / "pg_wal" / "archive_status"
    deadline = time.monotonic() + timeout
    while True:
        last, failed = primary.sql("SELECT last_archived_wal, failed_count FROM pg_stat_archiver")[0]
        if (last and last[:24] >= segment) or (status / f"{segment}.done").exists():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{segment} not archived after {timeout:.0f}s (last {last}, {failed} failures); "
                               f"log: {primary.cluster.log_tail(5)}")
        time.sleep(0.5)


def archive_script(root: Path, pgbr: PgBackRest, passphrase_file: Path, vault_url_file: Path) -> Path:
    """The archive_command: seawall wal-push into the current vault, then pgbackrest archive-push."""
    text = "\n".join([
        "#!/bin/sh",
        "# $1 = %p (relative to the data directory, the archiver's working directory)",
        f'{SEAWALL_BIN} wal-push "$1" --vault "$(cat {vault_url_file})" --passphrase-file {passphrase_file} || exit 1',
        f'exec {pgbr.archive_push_command()} "$1"',
        "",
    ])
    # (pgBackRest's backup refuses an archive_command that does not mention "pgbackrest": the name does)
    return private_file(root / "seawall-and-pgbackrest-archive.sh", text, mode=0o755)


def start_primary(root: Path, first_vault_url: str, settings: dict[str, Any] | None = None) -> Primary:
    passphrase_file = private_file(root / "passphrase", PASSPHRASE)
    vault_url_file = private_file(root / "vault-url", first_vault_url + "\n", mode=0o644)
    cluster = LocalCluster.create(root, settings={"archive_mode": "on", "wal_level": "replica",
                                                  "max_wal_size": "1GB", **(settings or {})})
    pgbr = PgBackRest(root, cluster)
    script = archive_script(root, pgbr, passphrase_file, vault_url_file)
    cluster.configure({"archive_command": f"{script} %p"})
    cluster.start()
    primary = Primary(cluster, root, passphrase_file, vault_url_file, pgbr)
    pgbr.run("stanza-create")
    return primary


def new_root() -> Path:
    """A work directory the postgres user owns (vaults, data dirs and repos go below it)."""
    return make_private_dir("seawall-pgbench-")


def restored_cluster(datadir: Path, port: int) -> LocalCluster:
    return LocalCluster(datadir, port, socket_dir=str(datadir.parent / f"{datadir.name}.sock"))


def remove_cluster_dir(cluster: LocalCluster) -> None:
    """Stop a restored copy and delete its data directory, socket dir and log (not the parent)."""
    if cluster.is_running():
        cluster.stop("immediate")
        if cluster.is_running():
            cluster.kill()
    shutil.rmtree(cluster.datadir, ignore_errors=True)
    shutil.rmtree(cluster.socket_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        cluster.logfile.unlink()


# ---- small shared helpers ------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def new_vault(root: Path, name: str) -> str:
    from seawall.vault import init_vault

    path = private_dir(root / name)
    url = f"file://{path}"
    init_vault(url, PASSPHRASE)  # default scrypt cost: what a real vault pays per wal-push / wal-get
    return url


def pg_tool(name: str) -> str:
    return binaries.tool(name)

"""Small files: seawall beside restic on the same tree, to a local folder and to S3 (issue #17).

A tree of `--files` files of 1-16 KiB (half text made of the vault benchmark's Zipf vocabulary, half
incompressible bytes) is backed up by seawall and by restic, to a local folder and to S3 on a moto
server on loopback, in the same run. Per tool and target: objects in the repository after the first
backup, PUT requests it made (moto's request log), first backup, no-change re-backup and restore
wall time (whole processes, as a user runs them), repeated `--reps` times into fresh repositories
with the two tools alternating (restic first on even repetitions, seawall first on odd ones) and
reported as medians; then, on the last repositories, 8 more backups each changing 1% of the files,
and forgetting the 5 oldest of the 10 plus GC (`restic forget --keep-last 5 --prune`; seawall:
delete the manifests, `collect_garbage`): its time and the objects left. `uptime` is recorded
before and after (a shared machine's load is part of the result).

    .venv/bin/python -m bench.packs_bench --files 100000 --reps 3 --json bench/out/packs.json

Needs `restic` on PATH (Debian: apt-get install restic). Run it on a quiet machine: nothing else on
the cores. `--targets local` / `--targets s3` and `--skip-gc` split a long run into parts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import blake3

from bench.common import REPO
from bench.datagen import _GENERATORS, _Words

PASSPHRASE = "benchmark only"
DATASET = "small"
BUCKET = "packs-bench"
ROUNDS = 10  # backups in the forget/GC step (the first two included)


# ---- data -------------------------------------------------------------------------------------------
def generate(root: Path, files: int, seed: int) -> int:
    """`files` files of 1-16 KiB (log-uniform), 500 per folder; returns the bytes written."""
    rng, total = random.Random(seed), 0
    kinds = list(_GENERATORS)
    for i in range(files):
        folder = root / f"d{i // 500:04d}"
        if i % 500 == 0:
            folder.mkdir(parents=True)
        size = int(1024 * 16 ** rng.random())
        total += _write(folder / f"f{i:06d}.{'txt' if i % 2 else 'bin'}", size, rng.getrandbits(64), i % 2,
                        kinds[i % len(kinds)])
    return total


def _write(path: Path, size: int, seed: int, text: bool, kind: str) -> int:
    if text:
        lines = _GENERATORS[kind](random.Random(seed), _Words(random.Random(seed ^ 0x5EED)))
        data = b""
        while len(data) < size:
            data += next(lines).encode()
        data = data[:size]
    else:
        data = blake3.blake3(seed.to_bytes(8, "little")).digest(length=size)
    path.write_bytes(data)
    return size


def touch_one_percent(root: Path, round_no: int) -> None:
    """Rewrite 1% of the files with new content (a night's changes on a file server)."""
    paths = sorted(root.rglob("f*"))
    rng = random.Random(round_no)
    for path in rng.sample(paths, max(1, len(paths) // 100)):
        path.write_bytes(blake3.blake3(f"{round_no}{path}".encode()).digest(length=path.stat().st_size))


# ---- moto -------------------------------------------------------------------------------------------
class Moto:
    """moto_server in its own process; its request log tells how many PUTs were made."""

    def __init__(self, work: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log = work / "moto.log"
        self.proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1",
                                      "-p", str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "wb"))  # noqa: SIM115 - the child owns it
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while b"Running on" not in self.log.read_bytes():
            if time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start")
            time.sleep(0.1)

    def puts(self) -> int:
        return self.log.read_bytes().count(b'"PUT ')

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


# ---- the two tools ----------------------------------------------------------------------------------
def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    return time.perf_counter() - start


class Restic:
    name = "restic"

    def __init__(self, repo: str, env: dict):
        self.repo, self.env = repo, dict(env, RESTIC_PASSWORD=PASSPHRASE)

    def run(self, *args: str) -> float:
        return timed(["restic", "-q", "-r", self.repo, *args], self.env)

    def init(self) -> None:
        self.run("init")

    def backup(self, data: Path) -> float:
        return self.run("backup", "--host", "bench", str(data))

    def restore(self, target: Path) -> float:
        return self.run("restore", "latest", "--target", str(target))

    def forget_and_gc(self) -> float:
        return self.run("forget", "--keep-last", str(ROUNDS // 2), "--prune")


class Seawall:
    name = "seawall"

    def __init__(self, url: str, env: dict):
        self.url, self.env = url, dict(env, SEAWALL_PASSPHRASE=PASSPHRASE)

    def child(self, *args: str) -> float:
        return timed([sys.executable, "-m", "bench.packs_bench", "--child", self.url, *args], self.env)

    def init(self) -> None:
        self.child("init")

    def backup(self, data: Path) -> float:
        return self.child("backup", str(data))

    def restore(self, target: Path) -> float:
        return self.child("restore", str(target))

    def forget_and_gc(self) -> float:
        return self.child("gc")


def child(url: str, what: str, arg: str | None) -> None:
    """One seawall step in its own process (what a CLI run costs, without Prefect)."""
    from seawall.vault import init_vault, open_vault

    if what == "init":
        init_vault(url, PASSPHRASE)
        return
    vault = open_vault(url, PASSPHRASE)
    if what == "backup":
        from seawall.sources.files import backup_tree

        backup_tree(vault, arg, DATASET, parent=vault.latest_backup(DATASET))
    elif what == "restore":
        from seawall.sources.files import restore_tree

        restore_tree(vault, vault.latest_backup(DATASET), arg)
    elif what == "gc":
        from seawall.gc import collect_garbage, delete_manifests

        backups = sorted(vault.list_backups(dataset=DATASET), key=lambda m: m.started_at)
        delete_manifests(vault, [m.key for m in backups[:-(ROUNDS // 2)]])
        collect_garbage(vault)


# ---- one tool on one target ------------------------------------------------------------------------
def measure_once(tool, data: Path, work: Path, count_objects, puts, keep_restores: bool = True) -> dict:
    """init, first backup (objects and PUTs it made), no-change re-backup, restore.

    Restored trees are kept until the run ends (`run` removes the work folder), unless
    `keep_restores` is False (the method before 2026-12-07 16:30 UTC): ext4 without a journal (this
    machine's root) skips recently freed inodes when it allocates one, scanning past each
    (`recently_deleted`), so a restore that came soon after the previous one's 100,000 deletions
    paid 35-53% of its CPU there, for either tool, by luck of the order (bench/PACKS.md)."""
    tool.init()
    objects0, puts0 = count_objects(), puts()
    out: dict = {"first_backup_s": tool.backup(data)}
    out["objects"], out["puts"] = count_objects() - objects0, puts() - puts0
    out["rebackup_s"] = tool.backup(data)
    target = work / f"restore-{tool.name}-{len(list(work.glob(f'restore-{tool.name}-*')))}"
    out["restore_s"] = tool.restore(target)
    if not keep_restores:
        shutil.rmtree(target)
    return out


def measure_gc(tool, data: Path, work: Path, count_objects) -> dict:
    """8 more backups changing 1% of the files each, then forget the 5 oldest of 10 and collect garbage."""
    changed = work / f"changed-{tool.name}"
    shutil.copytree(data, changed, symlinks=True)
    for round_no in range(2, ROUNDS):
        touch_one_percent(changed, round_no)
        tool.backup(changed)
    out = {"objects_before_gc": count_objects()}
    out["gc_s"] = tool.forget_and_gc()
    out["objects_after_gc"] = count_objects()
    shutil.rmtree(changed)
    return out


def medians(reps: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in reps) for k in reps[0]}


def compare(make_tools, data: Path, work: Path, counters, puts, reps: int, label: str, gc: bool = True,
            keep_restores: bool = True) -> dict:
    """Both tools, `reps` times alternating, each into fresh repositories; then GC on the last ones."""
    runs: dict[str, list[dict]] = {"restic": [], "seawall": []}
    tools: dict = {}
    for rep in range(reps):
        order = make_tools(rep)
        for tool in order if rep % 2 == 0 else list(reversed(order)):
            runs[tool.name].append(measure_once(tool, data, work, counters(tool), puts, keep_restores))
            tools[tool.name] = tool
            print(label, rep, tool.name, runs[tool.name][-1], flush=True)
    out = {}
    for name in ("restic", "seawall"):
        out[name] = {**medians(runs[name]), "reps": runs[name]}
    for name in (("seawall", "restic") if reps % 2 else ("restic", "seawall")) if gc else ():
        out[name].update(measure_gc(tools[name], data, work, counters(tools[name])))
        print(label, "gc", name, {k: v for k, v in out[name].items() if k != "reps"}, flush=True)
    return out


def count_files(root: Path):
    return lambda: sum(len(files) for _, _, files in os.walk(root))


def count_s3(endpoint: str, prefix: str, env: dict):
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1",
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def count() -> int:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sum(len(page.get("Contents", ())) for page in pages)

    return count


def run(files: int, work: Path, seed: int, reps: int, targets: tuple[str, ...] = ("local", "s3"),
        gc: bool = True, keep_restores: bool = True) -> dict:
    if not shutil.which("restic"):
        raise SystemExit("restic is not on PATH (apt-get install restic)")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = work / "data"
    start = time.perf_counter()
    size = generate(data, files, seed)
    print(f"{files} files, {size / 1e6:.0f} MB generated in {time.perf_counter() - start:.0f} s", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAWALL_", "RESTIC_", "AWS_"))}
    result: dict = {"files": files, "bytes": size, "reps": reps, "uptime_before": _uptime(),
                    "restic": subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip()}

    def local_tools(rep: int) -> list:
        return [Restic(str(work / f"restic-repo-{rep}"), env), Seawall(f"file://{work / f'seawall-vault-{rep}'}", env)]

    def local_count(tool):
        return count_files(Path(tool.repo if isinstance(tool, Restic) else tool.url.removeprefix("file://")))

    if "local" in targets:
        result["local"] = compare(local_tools, data, work, local_count, lambda: 0, reps, "local", gc, keep_restores)
    if "s3" in targets:
        result["s3"] = _s3(data, work, env, reps, gc, keep_restores)
    result["uptime_after"] = _uptime()
    shutil.rmtree(work, ignore_errors=True)
    return result


def _s3(data: Path, work: Path, env: dict, reps: int, gc: bool, keep_restores: bool) -> dict:
    moto = Moto(work)
    try:
        s3env = dict(env, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                     AWS_DEFAULT_REGION="eu-west-1")
        import boto3

        boto3.client("s3", endpoint_url=moto.url, region_name="eu-west-1", aws_access_key_id="bench",
                     aws_secret_access_key="bench").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})

        def s3_tools(rep: int) -> list:
            return [Restic(f"s3:{moto.url}/{BUCKET}/restic-{rep}", s3env),
                    Seawall(f"s3://{BUCKET}/seawall-{rep}?region=eu-west-1&endpoint={moto.url}", s3env)]

        def s3_count(tool):
            prefix = tool.repo.rsplit("/", 1)[1] if isinstance(tool, Restic) else tool.url.split("/")[3].split("?")[0]
            return count_s3(moto.url, prefix + "/", s3env)

        return compare(s3_tools, data, work, s3_count, moto.puts, reps, "s3", gc, keep_restores)
    finally:
        moto.stop()


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def ratios(result: dict) -> dict:
    out = {}
    for target in ("local", "s3"):
        if target not in result:
            continue
        s, r = result[target]["seawall"], result[target]["restic"]
        out[target] = {k: round(s[k] / r[k], 2) if r[k] else None for k in r if k != "reps"}
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[1], argv[2], argv[3] if len(argv) > 3 else None)
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/seawall-packs-bench"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--targets", default="local,s3", help="comma-separated: local, s3 (to split long runs)")
    p.add_argument("--skip-gc", action="store_true", help="leave out the 10-backup forget + GC step")
    p.add_argument("--delete-restores", action="store_true",
                   help="delete each restored tree right after it (the method before 2026-12-07 16:30 UTC)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    targets = tuple(t.strip() for t in a.targets.split(",") if t.strip())
    if not targets or set(targets) - {"local", "s3"}:
        p.error(f"--targets takes local and/or s3, not {a.targets!r}")
    result = run(a.files, a.workdir, a.seed, a.reps, targets, not a.skip_gc, not a.delete_restores)
    result["restores_kept"] = not a.delete_restores
    result["seawall_over_restic"] = ratios(result)
    print(json.dumps(result["seawall_over_restic"], indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The scrypt of a local vault's passphrase wrapper, started before the CLI's imports.

scrypt (~0.08 s at the default cost, GIL released) is the one long computation at the start of a
short job: a delta restore (~1.2 s in all) or an incremental backup. Started once typer had parsed
the command line, it began ~0.2 s into the process (typer's parsing imports pydantic) and the job
then waited ~0.05-0.07 s for it to finish (py-spy: the main thread in `_derive_cached` while the
thread derived). Started from `seawall.cli.entry` straight from `argv`, it runs while the CLI is
imported. This module is stdlib only for that reason: the derivation is `hashlib.scrypt` (the same
RFC 7914 function as `cryptography`'s Scrypt, both OpenSSL), so nothing heavy is imported on the
thread (an earlier try that imported the vault there lost to the import contention it caused).

Only `file://` vaults: on a remote one, reading the wrappers ahead would add requests. Only the
first passphrase wrapper found (the one unlocking tries first is derived anyway; with one wrapper,
the usual case, never wasted work). `seawall.crypto._derive` takes the result (waiting for it if
still running); any failure here only means the job derives the key itself, as before.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from urllib.parse import unquote, urlsplit

_Key = tuple[str, bytes, int, int, int]  # passphrase, salt, n, r, p


class _Job:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.key: bytes | None = None


_jobs: dict[_Key, _Job] = {}
_lock = threading.Lock()


def scrypt(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    """The 32-byte scrypt key, as `cryptography`'s Scrypt(salt, 32, n, r, p) derives it."""
    # OpenSSL refuses by default above 32 MiB, and n=2**15, r=8 needs just over that.
    maxmem = min(2**31 - 1, 128 * r * (n + p + 2) + (1 << 20))
    return hashlib.scrypt(passphrase.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=32)


def take(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes | None:
    """The key a derivation started here made for these inputs (waiting for it), else None."""
    with _lock:
        job = _jobs.get((passphrase, salt, n, r, p))
    if job is None:
        return None
    job.done.wait()
    return job.key


def pending() -> bool:
    """Whether a derivation started here is still running (the CLI imports meanwhile what it needs
    after the vault opens, rather than wait for the key first)."""
    with _lock:
        return any(not job.done.is_set() for job in _jobs.values())


def start(url: str | None, passphrase: str | None) -> None:
    """Derive the first passphrase wrapper's key of the `file://` vault at `url` on a daemon thread.

    The wrapper is read here (a directory listing and a small file) so that a `take` that comes
    later always finds the job, however soon; only the scrypt runs on the thread."""
    if not passphrase or not url or not url.startswith("file://"):
        return
    try:
        key = _first_wrapper(url, passphrase)
    except (OSError, ValueError, TypeError, KeyError):  # the job's own open reports it, in its words
        return
    if key is None:
        return
    with _lock:
        if key in _jobs:
            return
        job = _jobs[key] = _Job()

    def derive() -> None:
        try:
            job.key = scrypt(*key)
        except (ValueError, MemoryError):  # parameters OpenSSL refuses: the job derives them itself
            pass
        finally:
            job.done.set()

    threading.Thread(target=derive, name="seawall-kdf-ahead", daemon=True).start()


def _first_wrapper(url: str, passphrase: str) -> _Key | None:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        return None
    keys = os.path.join(unquote(parts.path), "keys")
    for name in sorted(os.listdir(keys)):
        if name.startswith("."):  # a store's temporary file
            continue
        with open(os.path.join(keys, name), "rb") as fh:
            record = json.loads(fh.read(65536))
        if isinstance(record, dict) and record.get("kind") == "passphrase":
            kdf = record["kdf"]
            return passphrase, base64.b64decode(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    return None


def hot_command(argv: list[str]) -> bool:
    """`seawall restore ...` or `seawall backup postgres ...`: every delta restore and physical
    backup, short jobs that open a vault right after start (the CLI also pauses GC for them)."""
    return argv[:1] == ["restore"] or argv[:2] == ["backup", "postgres"]


def start_from_argv(argv: list[str]) -> None:
    """`start` for a `hot_command`, from the raw arguments (`--vault`/`-v`, `--passphrase-file`,
    else SEAWALL_PASSPHRASE), before typer has parsed them. A command line typer later rejects only
    wasted a derivation."""
    if not hot_command(argv):
        return
    url = _option(argv, ("--vault", "-v"))
    pass_file = _option(argv, ("--passphrase-file",))
    try:
        if pass_file is not None:
            with open(pass_file, encoding="utf-8") as fh:
                passphrase = fh.read().rstrip("\r\n")
        else:
            passphrase = os.environ.get("SEAWALL_PASSPHRASE", "")
    except (OSError, ValueError):
        return
    start(url, passphrase)


def _option(argv: list[str], names: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg[len(name) + 1:]
    return None

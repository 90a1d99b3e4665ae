"""Redis backups as RDB snapshots, and their restore.

Backup: `redis-cli --rdb -` asks the server for a replication snapshot (a fork: point in time, the
server keeps serving) and the RDB bytes are chunked straight into the vault as one stream. This
works the same whether the server persists with RDB, AOF or nothing: the snapshot is the whole
dataset. Facts for the checks are taken before and after (`seawall.redis.facts`).

redis-cli 7.0 writes the transfer's 40-byte end-of-file mark after the RDB when it writes to
stdout; the stream holds back its last 40 bytes and drops them when redis-cli's "Transfer finished
... after N bytes" says the RDB ended before them.

Restore: into a throwaway server (`dump.rdb` loaded at start), or into a running, empty server: a
throwaway server loads the RDB and the keys move server to server with `MIGRATE ... COPY` in
batches (DUMP/RESTORE through this process for a unix-socket target, which MIGRATE cannot reach),
TTLs kept; MIGRATE was 3x faster than DUMP/RESTORE for 200k keys. A failed copy flushes the target
again: nothing half-restored is left.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seawall.errors import AuthError, ConfigError, PermanentError, RetryableError
from seawall.lifecycle import recording
from seawall.manifest import BackupStatus, Manifest, new_manifest
from seawall.redis import facts
from seawall.redis.conn import RedisConn, translate_redis_errors
from seawall.redis.server import LocalRedis, tool
from seawall.streams import ChunkReader, ChunkWriter
from seawall.vault import Vault

KIND = "redis-rdb"
STREAM = "dump.rdb"
Progress = Callable[[int], None]
_EOF_MARK = 40
_FINISHED = re.compile(rb"Transfer finished with success after (\d+) bytes")


class RdbReader:
    """redis-cli's stdout without the trailing end-of-file mark (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen, stderr: Any):
        self.proc, self.stderr = proc, stderr
        self.tail, self.sent, self.ended = b"", 0, False

    def readinto(self, view: memoryview) -> int:
        while not self.ended:
            data = self.proc.stdout.read1(len(view)) if len(self.tail) <= _EOF_MARK else b""
            if not data and len(self.tail) <= _EOF_MARK:
                return self._finish(view)
            self.tail += data
            if len(self.tail) > _EOF_MARK:
                n = min(len(view), len(self.tail) - _EOF_MARK)
                view[:n], self.tail = self.tail[:n], self.tail[n:]
                self.sent += n
                return n
        return 0

    def _finish(self, view: memoryview) -> int:
        self.ended = True
        self.proc.wait()
        self.stderr.seek(0)
        match = _FINISHED.search(self.stderr.read())
        keep = len(self.tail) if not match else max(0, min(len(self.tail), int(match[1]) - self.sent))
        view[:keep] = self.tail[:keep]
        self.sent += keep
        return keep


def _cli_error(stderr: bytes, conn: RedisConn) -> Exception:
    text = stderr.decode(errors="replace").strip()
    last = text.splitlines()[-1] if text else "no error output"
    message = f"redis-cli --rdb failed on {conn.display()}: {last}"
    lowered = text.lower()
    if "auth" in lowered or "wrongpass" in lowered or "noperm" in lowered:
        return AuthError(message, hint="check the user and password (the ACL needs SYNC)")
    if "could not connect" in lowered or "connection refused" in lowered or "i/o error" in lowered:
        return RetryableError(message)
    return PermanentError(message)


def backup_rdb(vault: Vault, conn: RedisConn | str, dataset: str, *, backup_id: str | None = None,
               progress: Progress | None = None, sample: int = 1000, workers: int = 3) -> Manifest:
    """Snapshot a Redis server into the vault as a new `redis-rdb` backup; returns the DONE manifest.

    Example:
        >>> backup_rdb(vault, "redis://cache1:6379", "redis-cache1")  # doctest: +SKIP
    """
    conn = conn if isinstance(conn, RedisConn) else RedisConn.parse(conn)
    before = facts.take(conn, sample)  # bad credentials / an unreachable server fail here
    manifest = new_manifest(dataset, KIND, source={"server": conn.display()})
    if backup_id:
        manifest.backup_id = backup_id
    with recording(vault, manifest) as phase:
        manifest.transition(BackupStatus.UPLOADING)
        vault.known_chunks(refresh=True)
        phase("transferring the RDB snapshot")
        with ChunkWriter(vault, workers=workers) as writer:
            manifest.streams = [_stream_rdb(writer, conn, progress)]
            writer.fill_stats(manifest.stats)
        phase("reading facts after the snapshot")
        manifest.source |= facts.stable(before, facts.take(conn, 0) | {"sample": _resample(conn, before)})
        stats = manifest.stats
        stats.files, stats.bytes_total = 1, manifest.streams[0].size
        stats.bytes_read, stats.chunks_total = stats.bytes_total, len(manifest.streams[0].chunks)
    return manifest


def _resample(conn: RedisConn, before: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The digests, now, of the keys sampled before the snapshot."""
    out = {}
    with translate_redis_errors(f"re-reading sampled keys of {conn.display()}"):
        for db, keys in before["sample"].items():
            client = conn.client(db=int(db))
            out[db] = {k.hex(): d for k, d in facts.value_digests(client, [bytes.fromhex(h) for h in keys]).items()}
            client.close()
    return out


def _stream_rdb(writer: ChunkWriter, conn: RedisConn, progress: Progress | None):
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([tool("redis-cli"), *conn.cli_argv(), "--rdb", "-"], stdout=subprocess.PIPE,
                                stderr=err, stdin=subprocess.DEVNULL, env=conn.cli_env())
        try:
            ref = writer.write(RdbReader(proc, err), STREAM, progress=progress)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.wait()
        if proc.returncode != 0 or not ref.size:
            err.seek(0)
            raise _cli_error(err.read(), conn)
    return ref


# ---- restore ------------------------------------------------------------------------------------
def _check(manifest: Manifest) -> None:
    if manifest.kind != KIND or manifest.status != BackupStatus.DONE:
        raise ConfigError(f"backup {manifest.backup_id} is a {manifest.status} {manifest.kind} backup, "
                          f"not a complete {KIND} one")


def write_rdb(vault: Vault, manifest: Manifest, path: Path, progress: Progress | None = None) -> None:
    """The backup's RDB file at `path` (checked against its recorded size and hash as it is read)."""
    _check(manifest)
    with ChunkReader(vault) as reader, open(path, "wb") as out:
        for data in reader.iter_stream(manifest.stream(STREAM)):
            out.write(data)
            if progress:
                progress(len(data))


def start_from_backup(vault: Vault, manifest: Manifest, *, port: int | None = None, base: str | None = None,
                      progress: Progress | None = None) -> LocalRedis:
    """A started throwaway redis-server (new private directory under `base`) loaded from the backup.

    The caller removes it (`.remove()`).
    """
    server = LocalRedis.create(base, port=port)
    try:
        write_rdb(vault, manifest, server.rdb, progress)
        server.start(timeout=600)
    except BaseException:
        server.remove()
        raise
    return server


def _require_empty(target: RedisConn) -> None:
    with translate_redis_errors(f"inspecting {target.display()}", endpoint=target.endpoint()):
        client = target.client()
        spaces = facts.keyspace(client)
        client.close()
    if spaces:
        total = sum(spaces.values())
        raise ConfigError(f"restore target {target.display()} is not empty ({total} keys)",
                          hint="restore into an empty server (FLUSHALL it if it is a scratch server)")


def migrate_keys(source, target_conn: RedisConn, db: int, batch: int = 1000) -> int:
    """MIGRATE ... COPY every key of database `db` from the scratch server to a TCP target, in batches:
    the values move server to server (no decoding here), TTLs kept. The target's credentials go to
    the scratch server over its private socket, never onto a command line."""
    auth: list = []
    if target_conn.password is not None:
        secret = target_conn.password.get_secret_value()
        auth = ["AUTH2", target_conn.user, secret] if target_conn.user else ["AUTH", secret]
    copied, cursor = 0, 0
    while True:
        cursor, keys = source.scan(cursor, count=batch)
        if keys:
            source.execute_command("MIGRATE", target_conn.host, target_conn.port, "", db, 60000, "COPY", *auth,
                                   "KEYS", *keys)
            copied += len(keys)
        if cursor == 0:
            return copied


def copy_keys(source, target_conn: RedisConn, db: int, batch: int = 1000) -> int:
    """DUMP/RESTORE every key of database `db` from `source` (a client) to the target, TTLs kept."""
    if not target_conn.socket:
        return migrate_keys(source, target_conn, db, batch)
    target, copied, cursor = target_conn.client(db=db), 0, 0
    while True:
        cursor, keys = source.scan(cursor, count=batch)
        if keys:
            pipe = source.pipeline(transaction=False)
            for key in keys:
                pipe.dump(key)
                pipe.pttl(key)
            got = pipe.execute()
            out = target.pipeline(transaction=False)
            for key, payload, ttl in zip(keys, got[0::2], got[1::2], strict=True):
                if payload is not None and ttl != -2:
                    out.restore(key, max(ttl, 0), payload)
                    copied += 1
            out.execute()
        if cursor == 0:
            break
    target.close()
    return copied


def restore_to_server(vault: Vault, manifest: Manifest, target: RedisConn | str, *,
                      progress: Progress | None = None) -> dict[str, Any]:
    """Restore into a running, empty server; returns `{"keys": {db: copied}}`.

    Example:
        >>> restore_to_server(vault, manifest, "redis://scratch:6380")  # doctest: +SKIP
    """
    target = target if isinstance(target, RedisConn) else RedisConn.parse(target)
    _check(manifest)
    _require_empty(target)
    scratch = start_from_backup(vault, manifest, progress=progress)
    try:
        with translate_redis_errors(f"restoring into {target.display()}"):
            copied = {db: copy_keys(scratch.client(int(db)), target, int(db))
                      for db in facts.keyspace(scratch.client())}
    except BaseException:
        _flush(target)
        raise
    finally:
        scratch.remove()
    return {"target": target.display(), "keys": copied}


def _flush(target: RedisConn) -> None:
    try:
        client = target.client()
        client.flushall()
        client.close()
    except Exception:  # the original error matters more
        pass

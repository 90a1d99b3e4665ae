"""Facts about a Redis dataset that a restored copy is checked against.

- **keyspace**: keys per database (`INFO keyspace`).
- **digest**: `DEBUG DIGEST`, one hash over the whole dataset (values and expiry), where the server
  allows DEBUG; None otherwise.
- **sample**: for up to N random keys per database, a digest of the value read type by type
  (string, hash, list, set, sorted set, stream; members sorted where order is not part of the
  value) and whether the key has a TTL. Computed in Python, so it works where DEBUG is disabled.

A backup takes the facts before and after its snapshot and keeps what did not change in between:
the keyspace and digest only if equal, and the sampled keys whose digest is the same both times
(a key written meanwhile may hold either value in the snapshot).
"""

from __future__ import annotations

import re
from typing import Any

import blake3

from seawall.redis.conn import RedisConn, translate_redis_errors

_DB = re.compile(r"^db(\d+)$")


def keyspace(client) -> dict[str, int]:
    """`{"0": keys, ...}` for every non-empty database."""
    info = client.info("keyspace")
    return {m[1]: int(v["keys"]) for k, v in info.items() if (m := _DB.match(k))}


def dataset_digest(client) -> str | None:
    """`DEBUG DIGEST` (hex), or None where DEBUG is not allowed."""
    import redis

    try:
        value = client.execute_command("DEBUG", "DIGEST")
    except redis.ResponseError:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


_READ = {b"string": ("GET",), b"hash": ("HGETALL",), b"list": ("LRANGE", 0, -1), b"set": ("SMEMBERS",),
         b"zset": ("ZRANGE", 0, -1, "WITHSCORES"), b"stream": ("XRANGE", "-", "+")}


def _canonical(kind: bytes, value: Any) -> bytes:
    if kind == b"hash":
        value = sorted(value.items()) if isinstance(value, dict) else value
    elif kind == b"set":
        value = sorted(value)
    return kind + b"\0" + repr(value).encode()


def value_digests(client, keys: list[bytes]) -> dict[bytes, str]:
    """`{key: digest}` of the keys' values (missing keys are left out)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.pttl(key)
    meta = pipe.execute()
    pipe = client.pipeline(transaction=False)
    present = []
    for key, kind, ttl in zip(keys, meta[0::2], meta[1::2], strict=True):
        kind = kind if isinstance(kind, bytes) else str(kind).encode()
        if kind in _READ:
            present.append((key, kind, ttl))
            pipe.execute_command(*_READ[kind][:1], key, *_READ[kind][1:])
    values = pipe.execute(raise_on_error=False)
    out = {}
    for (key, kind, ttl), value in zip(present, values, strict=True):
        if isinstance(value, Exception):
            continue
        out[key] = blake3.blake3(_canonical(kind, value) + (b"\0ttl" if ttl > 0 else b"")).hexdigest()
    return out


def sample_keys(client, count: int) -> list[bytes]:
    pipe = client.pipeline(transaction=False)
    for _ in range(count):
        pipe.randomkey()
    return sorted({k for k in pipe.execute() if k is not None})


def take(conn: RedisConn, sample: int = 1000) -> dict[str, Any]:
    """Version, persistence settings, keyspace, digest and a value sample of every database."""
    with translate_redis_errors(f"reading facts of {conn.display()}", endpoint=conn.endpoint()):
        client = conn.client()
        info = client.info("server") | client.info("persistence")
        spaces = keyspace(client)
        samples = {}
        for db in spaces:
            c = conn.client(db=int(db))
            samples[db] = {k.hex(): d for k, d in value_digests(c, sample_keys(c, sample)).items()}
            c.close()
        digest = dataset_digest(client)
        client.close()
    return {"redis_version": info.get("redis_version"), "aof_enabled": bool(info.get("aof_enabled")),
            "keyspace": spaces, "digest": digest, "sample": samples}


def stable(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What held both before and after the snapshot (see the module docstring)."""
    sample = {db: {k: d for k, d in keys.items() if after["sample"].get(db, {}).get(k) == d}
              for db, keys in before["sample"].items()}
    same_space = before["keyspace"] == after["keyspace"]
    return {"redis_version": before["redis_version"], "aof_enabled": before["aof_enabled"],
            "keyspace": before["keyspace"] if same_space else None,
            "keyspace_range": {db: [min(before["keyspace"].get(db, 0), after["keyspace"].get(db, 0)),
                                    max(before["keyspace"].get(db, 0), after["keyspace"].get(db, 0))]
                               for db in before["keyspace"].keys() | after["keyspace"].keys()},
            "digest": before["digest"] if before["digest"] and before["digest"] == after["digest"] else None,
            "sample": {db: keys for db, keys in sample.items() if keys}}

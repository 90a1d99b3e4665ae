"""Checks of a restored Redis copy (a throwaway server loaded from the snapshot).

See `seawall.checks.sources` for what each check proves.
"""

from __future__ import annotations

from seawall.checks import CheckResult, result
from seawall.redis import facts


def loaded(server, manifest) -> list[CheckResult]:
    info = server.client().info("persistence")
    ok = not info.get("loading") and info.get("rdb_last_load_keys_loaded", 0) >= 0
    return [result("rdb-load", None, ok, f"snapshot of {manifest.streams[0].size} bytes loaded "
                   f"({info.get('rdb_last_load_keys_loaded', '?')} keys, "
                   f"{info.get('rdb_last_load_keys_expired', 0)} expired at load)")]


def keys_per_db(server, manifest) -> list[CheckResult]:
    found = facts.keyspace(server.client())
    expired = int(server.client().info("persistence").get("rdb_last_load_keys_expired", 0) or 0)
    exact = manifest.source.get("keyspace")
    ranges = manifest.source.get("keyspace_range") or {}
    out = []
    for db in sorted(set(found) | set(exact or ranges), key=int):
        have = found.get(db, 0)
        if exact is not None:
            want = exact.get(db, 0)
            ok = have == want or (have < want <= have + expired)
            detail = f"{have} keys" + ("" if have == want else f" (recorded {want}, {expired} expired at load)")
        else:
            low, high = ranges.get(db, [0, 0])
            ok = low - expired <= have <= high
            detail = f"{have} keys, source had {low}..{high} during the backup"
        out.append(result("keys-per-db", f"db{db}", ok, detail))
    return out


def sampled_values(server, manifest) -> list[CheckResult]:
    out = []
    for db, sample in sorted((manifest.source.get("sample") or {}).items()):
        client = server.client(int(db))
        got = facts.value_digests(client, [bytes.fromhex(k) for k in sample])
        bad = [k for k, d in sample.items() if got.get(bytes.fromhex(k)) != d]
        detail = f"{len(sample) - len(bad)} of {len(sample)} sampled values identical"
        if bad:
            detail += "; differ: " + ", ".join(repr(bytes.fromhex(k))[:60] for k in bad[:5])
        out.append(result("sampled-values", f"db{db}", not bad, detail))
    return out or [result("sampled-values", None, True, "no keys to sample")]


def dataset_digest(server, manifest) -> list[CheckResult]:
    want = manifest.source.get("digest")
    got = facts.dataset_digest(server.client())
    return [result("dataset-digest", None, got == want, f"DEBUG DIGEST {got} (recorded {want})")]

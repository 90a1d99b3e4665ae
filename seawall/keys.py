"""Object key validation, applied by every store in both directions.

A key is a relative, '/'-separated path of printable ASCII segments. Keys that could escape the
vault (absolute, `..`), collide with temporary files, or that other tools left in the bucket are
rejected on write and skipped on listing (borgstore `validate_name`).
"""

from __future__ import annotations

import re

from seawall.errors import ConfigError

TMP_SUFFIX = ".tmp-seawall"
_SEGMENT = re.compile(r"^[A-Za-z0-9._=+@,-]+$")
MAX_KEY_LEN = 512
# Chunk and pack keys are most of the traffic and always valid when they match this: checked first, one
# regex call instead of a loop over segments.
_CHUNK_KEY = re.compile(r"(?:chunks|data)/[0-9a-f]{2}/[0-9a-f]{64}")


def key_problem(key: str) -> str | None:
    """Why `key` is not a valid object key, or None if it is."""
    if isinstance(key, str) and _CHUNK_KEY.fullmatch(key):
        return None
    if not isinstance(key, str) or not key:
        return "empty key"
    if len(key) > MAX_KEY_LEN:
        return "key longer than 512 characters"
    if key.startswith("/") or key.endswith("/"):
        return "key must be relative and must not end with '/'"
    for seg in key.split("/"):
        if seg in ("", ".", ".."):
            return f"key segment {seg!r} is not allowed"
        if not _SEGMENT.fullmatch(seg):
            return "key segments may use only ASCII letters, digits and ._=+@,-"
        if seg.endswith(TMP_SUFFIX) or seg.startswith(".tmp"):
            return "key looks like a temporary file"
    return None


def validate_key(key: str) -> str:
    """Return `key` unchanged, or raise ConfigError naming the problem."""
    problem = key_problem(key)
    if problem:
        raise ConfigError(f"invalid object key {key!r}: {problem}")
    return key


def is_valid_key(key: str) -> bool:
    return key_problem(key) is None

"""S3 vault URLs and store options: `s3://bucket/prefix?region=..&endpoint=..&profile=..`.

Credentials never travel in a URL (they would end up in logs, shell history and manifests): a URL
carrying `user:secret@` is refused, and credentials come from the environment, a profile or the
S3 block (`seawall.stores.s3.from_url` options).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from seawall.errors import ConfigError

URL_PARAMS = frozenset({"region", "endpoint", "profile", "storage_class"})
OPTIONS = frozenset(
    {"access_key_id", "secret_access_key", "session_token", "session", "object_lock_mode", "object_lock_days",
     "storage_class"}
)


def check_endpoint(endpoint: str | None) -> None:
    """An endpoint must be an http(s) URL with a host: `htp://`, `localhost:9000` are typos (exit 2)."""
    if endpoint is None:
        return
    parts = urlsplit(endpoint)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        from seawall.stores import redact_url

        raise ConfigError(f"S3 endpoint {redact_url(endpoint)!r} is not an http:// or https:// URL with a host",
                          hint="use endpoint=http://host:port or endpoint=https://host")


def check_options(options: dict[str, Any]) -> None:
    """ConfigError for keyword options `S3Store` does not take from a URL's caller."""
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ConfigError(
            f"unknown S3 store option(s): {', '.join(unknown)}", hint=f"use {', '.join(sorted(OPTIONS))}"
        )


def parse_s3_url(url: str) -> dict[str, Any]:
    """Split `s3://bucket/prefix?region=..&endpoint=..&profile=..` into S3Store arguments."""
    from seawall.stores import parse_query, redact_url

    parts = urlsplit(url)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise ConfigError(f"not an S3 vault URL: {redact_url(url)!r}", hint="use s3://bucket/prefix?region=...")
    if "@" in parts.netloc:
        raise ConfigError(
            f"S3 vault URL {redact_url(url)!r} carries credentials",
            hint="pass credentials through the environment, a profile or the S3 block, never in the URL",
        )
    query = parse_query(url)
    unknown = sorted(set(query) - URL_PARAMS)
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} in {redact_url(url)!r}",
            hint="S3 vault URLs accept region, endpoint, profile and storage_class",
        )
    return {
        "bucket": parts.netloc,
        "prefix": parts.path,
        **{name: query[name] for name in URL_PARAMS if query.get(name)},
    }

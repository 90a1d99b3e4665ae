"""Object stores and the URL registry that opens them.

`open_store("file:///srv/vault")`, `open_store("s3://bucket/prefix?region=eu-west-1")`.
Backends are imported lazily, so `wal-push` never pays for boto3 unless the vault is on S3, and a
missing optional dependency gives a helpful "install X" line (fsspec's registry).
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from seawall.errors import ConfigError
from seawall.redact import add_url_secret, redact
from seawall.stores.base import ObjectInfo, ObjectStore

__all__ = ["ObjectInfo", "ObjectStore", "open_store", "redact_url", "register_scheme"]

# scheme -> (module, factory function name, pip package providing it)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "file": ("seawall.stores.local", "from_url", "seawall"),
    "s3": ("seawall.stores.s3", "from_url", "boto3"),
    "sftp": ("seawall.stores.sftp", "from_url", "paramiko"),
    "memory": ("seawall.stores.memory_registry", "from_url", "seawall"),
}


def register_scheme(scheme: str, module: str, factory: str = "from_url", package: str = "seawall") -> None:
    """Register a backend for `scheme://` URLs (imported on first use)."""
    _REGISTRY[scheme] = (module, factory, package)


def redact_url(url: str) -> str:
    """The URL with any password / secret query values masked (restic StripPassword), else as given."""
    return redact(url)


def parse_query(url: str) -> dict[str, str]:
    """Single-valued query parameters of a vault URL."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def open_store(url: str, **options: Any) -> ObjectStore:
    """Open the object store a vault URL points at (does not create anything)."""
    add_url_secret(url)
    scheme, colon, rest = url.partition(":")
    if colon and scheme.lower() in _REGISTRY and not rest.startswith("//"):
        fixed = f"{scheme}:///{rest.lstrip('/')}" if scheme.lower() == "file" else f"{scheme}://{rest.lstrip('/')}"
        raise ConfigError(f"vault URL {redact_url(url)!r} needs '//' after '{scheme}:'",
                          hint=f"did you mean {redact_url(fixed)!r}?")
    if "://" not in url:
        raise ConfigError(
            f"vault URL {redact_url(url)!r} has no scheme",
            hint="use file:///path, s3://bucket/prefix?region=... or sftp://user@host/path",
        )
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _REGISTRY:
        known = ", ".join(f"{s}://" for s in sorted(_REGISTRY) if s != "memory")
        raise ConfigError(f"unknown vault URL scheme {scheme!r} in {redact_url(url)!r}", hint=f"use one of {known}")
    module_name, factory, package = _REGISTRY[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"the {scheme}:// backend is not available ({exc.name} missing)", hint=f"pip install {package}"
        ) from exc
    return getattr(module, factory)(url, **options)


def local_path_from_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"file URL {url!r} names a host", hint="use file:///absolute/path")
    path = unquote(parts.path)
    if not path:
        raise ConfigError(f"file URL {url!r} has no path", hint="use file:///absolute/path")
    return path

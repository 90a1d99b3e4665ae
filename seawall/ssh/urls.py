"""`ssh://user@host[:port]/path` URLs and the options of one SSH connection (no secret in either's repr)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from seawall.errors import ConfigError


@dataclass(frozen=True)
class SshUrl:
    """`ssh://user@host[:port]/path`, parsed."""

    host: str
    path: str
    username: str | None = None
    port: int = 22

    def display(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port != 22 else ""
        return f"ssh://{user}{host}{port}{self.path}"


def is_ssh_url(text: str) -> bool:
    return str(text).startswith("ssh://")


def parse_ssh_url(url: str) -> SshUrl:
    """Parse `ssh://user@host[:port]/absolute/path` (no password: keys only)."""
    parts = urlsplit(url)
    try:
        port = parts.port or 22
    except ValueError:
        raise ConfigError(f"invalid port in {url!r}", hint="use ssh://user@host:port/path") from None
    if parts.scheme != "ssh" or not parts.hostname:
        raise ConfigError(f"invalid SSH URL {url!r}", hint="use ssh://user@host[:port]/path")
    if parts.password is not None:
        raise ConfigError("passwords in SSH URLs are not supported", hint="authenticate with a key (--identity FILE)")
    if parts.query or parts.fragment or not parts.path.startswith("/"):
        raise ConfigError(f"invalid SSH URL {parts.hostname}: give an absolute path",
                          hint="use ssh://user@host[:port]/path")
    path = unquote(parts.path)
    path = "/" + path.strip("/") if path.strip("/") else "/"
    return SshUrl(host=parts.hostname, path=path, port=port,
                  username=unquote(parts.username) if parts.username else None)


@dataclass
class SshOptions:
    """Everything needed to open one SSH connection. Secrets are kept out of repr."""

    host: str
    port: int = 22
    username: str | None = None
    private_key: str | None = field(default=None, repr=False)  # key text (OpenSSH or PEM)
    key_path: str | None = None
    passphrase: str | None = field(default=None, repr=False)
    known_hosts: str | None = None  # known_hosts-format content
    known_hosts_path: str | None = None
    host_key: str | None = None  # pinned: "ssh-ed25519 AAAA..." or "SHA256:..."
    system_host_keys: bool = True
    connect_timeout: float = 15.0
    banner_timeout: float = 15.0
    auth_timeout: float = 15.0
    channel_timeout: float = 60.0
    keepalive: int = 15

    @property
    def username_or_default(self) -> str:
        return self.username or _local_user()

    def display(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.username_or_default}@{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH and paramiko name this host in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def _local_user() -> str:
    import getpass

    return getpass.getuser()

"""`SshConfig`: how to reach a host over SSH (the fields of the `SshHost` block).

Host keys are verified against known_hosts (the system files plus the content or file given here)
or a pinned key, never auto-added. `.get_secret_value()` is called only inside `ssh_options()`.
paramiko is imported only when a connection is made.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, SecretStr

from seawall.errors import ConfigError

if TYPE_CHECKING:
    from seawall.ssh import SshOptions

KEY_PASSPHRASE_ENV = "SEAWALL_SSH_KEY_PASSPHRASE"  # as seawall.ssh (not imported here: it loads paramiko)


class SshConfig(BaseModel):
    """A host reachable over SSH with a key, its host key checked against known_hosts or a pin.

    Give the private key as a secret (`private_key`) or as a file on the worker (`key_path`); with
    neither, the SSH agent and ~/.ssh keys are tried. An encrypted key's passphrase comes from
    `key_passphrase`, else from the SEAWALL_SSH_KEY_PASSPHRASE environment variable.

    Example:
        ```python
        from seawall.configs.ssh import SshConfig

        client = SshConfig.from_url("ssh://backup@web1/srv/www").get_client()
        ```
    """

    host: str = Field(description="Host name or IP address.")
    port: int = Field(default=22, description="SSH port.")
    username: str | None = Field(default=None, description="User to log in as; empty means the local user name.")
    private_key: SecretStr | None = Field(
        default=None, description="Private key text (OpenSSH or PEM: ed25519, ECDSA or RSA).")
    key_path: str | None = Field(default=None, description="Path of a private key file on the worker.")
    key_passphrase: SecretStr | None = Field(
        default=None, description="Passphrase of an encrypted key; empty means SEAWALL_SSH_KEY_PASSPHRASE.")
    known_hosts: str | None = Field(
        default=None, description="known_hosts lines for this host, added to ~/.ssh/known_hosts.")
    known_hosts_path: str | None = Field(default=None, description="Path of an extra known_hosts file on the worker.")
    host_key: str | None = Field(
        default=None, description="Pinned host key: a public key line 'ssh-ed25519 AAAA...' or 'SHA256:...'.")
    use_system_known_hosts: bool = Field(
        default=True, description="Also trust ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts.")
    connect_timeout: float = Field(default=15.0, description="Seconds to wait for the TCP connection.")
    banner_timeout: float = Field(default=15.0, description="Seconds to wait for the SSH banner.")
    auth_timeout: float = Field(default=15.0, description="Seconds to wait for authentication.")
    channel_timeout: float = Field(
        default=60.0, description="Seconds a read or a channel open may stall before it counts as a dead link.")
    keepalive_interval: int = Field(default=15, description="Seconds between SSH keepalive packets (0: off).")

    @classmethod
    def from_url(cls, url: str, **fields: Any) -> Any:
        """A model (or block) for the host of `ssh://user@host[:port]/path` (the path is not part of it)."""
        from seawall.ssh import parse_ssh_url

        parsed = parse_ssh_url(url)
        return cls(host=parsed.host, port=parsed.port, username=parsed.username, **fields)

    def display(self) -> str:
        """`user@host:port` (safe to log)."""
        return self.ssh_options(secrets=False).display()

    def ssh_options(self, *, secrets: bool = True) -> SshOptions:
        """The connection options for seawall's SSH layer (secrets unwrapped only here)."""
        from seawall.ssh import SshOptions

        if self.private_key is not None and self.key_path:
            raise ConfigError(f"SSH host {self.host}: give private_key or key_path, not both")
        passphrase = None
        if secrets:
            passphrase = (self.key_passphrase.get_secret_value() if self.key_passphrase is not None
                          else os.environ.get(KEY_PASSPHRASE_ENV))
        return SshOptions(
            host=self.host, port=self.port, username=self.username,
            private_key=self.private_key.get_secret_value() if secrets and self.private_key is not None else None,
            key_path=self.key_path, passphrase=passphrase or None, known_hosts=self.known_hosts,
            known_hosts_path=self.known_hosts_path, host_key=self.host_key,
            system_host_keys=self.use_system_known_hosts, connect_timeout=self.connect_timeout,
            banner_timeout=self.banner_timeout, auth_timeout=self.auth_timeout,
            channel_timeout=self.channel_timeout, keepalive=self.keepalive_interval,
        )

    def get_client(self) -> Any:
        """A new authenticated paramiko SSHClient (errors are seawall's AuthError/ConfigError/RetryableError)."""
        from seawall.ssh import connect

        return connect(self.ssh_options())


def as_ssh_host(host: SshConfig | str) -> SshConfig:
    """Accept a block, an `SshConfig` or an `ssh://user@host[:port]/...` URL."""
    return host if isinstance(host, SshConfig) else SshConfig.from_url(host)

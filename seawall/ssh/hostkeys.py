"""Host keys: known_hosts sources, a pinned key or fingerprint, and a RejectPolicy for everything else.

An unknown host is refused after the key exchange and before any authentication, so no credential
is offered to an impostor.
"""

from __future__ import annotations

import base64
import binascii

import paramiko

from seawall.errors import ConfigError
from seawall.ssh.urls import SshOptions

SYSTEM_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")


class UnknownHostKey(paramiko.SSHException):
    """The server's host key is in no known_hosts source and matches no pin."""

    def __init__(self, hostname: str, key: paramiko.PKey):
        self.hostname, self.key = hostname, key
        super().__init__(f"host {hostname} is not in known_hosts")


class RejectUnknown(paramiko.RejectPolicy):
    """RejectPolicy with a typed exception (plain SSHException would look transient) and pins.

    Called by paramiko after the key exchange and before authentication, only when no known_hosts
    entry exists for the host: a key that differs from an entry raises BadHostKeyException earlier.
    """

    def __init__(self, pinned_fingerprint: str | None):
        self.pinned = pinned_fingerprint

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.pinned and key.fingerprint == self.pinned:
            return
        if self.pinned:
            raise paramiko.BadHostKeyException(hostname, key, _FingerprintOnly(self.pinned))
        raise UnknownHostKey(hostname, key)


class _FingerprintOnly:
    """Stands in for the expected key when only its fingerprint was pinned."""

    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint

    def get_base64(self) -> str:
        return self.fingerprint


def add_known_hosts(keys: paramiko.HostKeys, text: str) -> None:
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
        except (paramiko.SSHException, binascii.Error, ValueError):
            entry = None
        if entry is None:  # unsupported key type (e.g. DSS) or a malformed line: not ours to judge
            continue
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)


def pin_host_key(options: SshOptions, keys: paramiko.HostKeys) -> str | None:
    """Add a pinned public key to `keys`; returns a pinned SHA256 fingerprint instead, if that was given."""
    pin = (options.host_key or "").strip()
    if not pin:
        return None
    if pin.startswith("SHA256:"):
        return pin
    try:
        key_type, data = pin.split()[:2]
        key = paramiko.PKey.from_type_string(key_type, base64.b64decode(data))
    except (ValueError, binascii.Error, paramiko.SSHException, paramiko.UnknownKeyType):
        raise ConfigError(f"pinned host key for {options.host} is not a public key line",
                          hint="give 'ssh-ed25519 AAAA...' or a fingerprint 'SHA256:...'") from None
    keys.add(options.known_hosts_name, key.get_name(), key)
    return None


def load_known_hosts_file(keys: paramiko.HostKeys, path: str, *, required: bool) -> None:
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError as exc:
        if required:
            raise ConfigError(f"cannot read known_hosts file {path}: {exc.strerror}",
                              hint="check --known-hosts") from None
        return
    add_known_hosts(keys, text)

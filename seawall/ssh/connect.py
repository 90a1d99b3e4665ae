"""Connecting: the client key, the host-key checks, and the timeouts that turn a dead link retryable."""

from __future__ import annotations

import io
import os

import paramiko

from seawall.errors import AuthError, ConfigError
from seawall.redact import add_secret
from seawall.ssh.errors import translate_ssh_errors
from seawall.ssh.hostkeys import (
    SYSTEM_KNOWN_HOSTS,
    RejectUnknown,
    add_known_hosts,
    load_known_hosts_file,
    pin_host_key,
)
from seawall.ssh.urls import SshOptions

KEY_PASSPHRASE_ENV = "SEAWALL_SSH_KEY_PASSPHRASE"  # an encrypted client key's passphrase
_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def load_private_key(options: SshOptions) -> paramiko.PKey | None:
    """The client key from the key text or the key file (None: use the agent and ~/.ssh keys)."""
    if options.private_key is None and options.key_path is None:
        return None
    where = f"key file {options.key_path}" if options.private_key is None else "the private key"
    if options.private_key is None:
        try:
            text = open(os.path.expanduser(options.key_path)).read()  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"cannot read {where}: {exc.strerror}", hint="check --identity") from None
    else:
        text = options.private_key
    add_secret(options.passphrase)
    for cls in _KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(text), password=options.passphrase)
        except paramiko.PasswordRequiredException:
            raise AuthError(f"{where} is encrypted and no passphrase was given",
                            hint="set the key passphrase (SEAWALL_SSH_KEY_PASSPHRASE)") from None
        except (paramiko.SSHException, ValueError, TypeError):
            continue
    raise AuthError(f"{where} is not a usable private key, or its passphrase is wrong",
                    hint="give an ed25519, ECDSA or RSA key in OpenSSH or PEM format")


def connect(options: SshOptions) -> paramiko.SSHClient:
    """An authenticated SSHClient, host key verified; errors are seawall errors."""
    client = paramiko.SSHClient()
    try:
        keys = client.get_host_keys()
        if options.system_host_keys:
            for path in SYSTEM_KNOWN_HOSTS:
                load_known_hosts_file(keys, os.path.expanduser(path), required=False)
        if options.known_hosts_path:
            load_known_hosts_file(keys, os.path.expanduser(options.known_hosts_path), required=True)
        if options.known_hosts:
            add_known_hosts(keys, options.known_hosts)
        pinned = pin_host_key(options, keys)
        client.set_missing_host_key_policy(RejectUnknown(pinned))
        pkey = load_private_key(options)
        with translate_ssh_errors(f"connecting to {options.display()}", endpoint=f"ssh {options.host}:{options.port}"):
            client.connect(
                options.host, options.port, username=options.username_or_default, pkey=pkey,
                allow_agent=pkey is None, look_for_keys=pkey is None,
                timeout=options.connect_timeout, banner_timeout=options.banner_timeout,
                auth_timeout=options.auth_timeout, channel_timeout=options.channel_timeout,
            )
            client.get_transport().set_keepalive(options.keepalive)
    except BaseException:
        client.close()
        raise
    return client


def open_sftp(client: paramiko.SSHClient, options: SshOptions, what: str) -> paramiko.SFTPClient:
    """An SFTP session whose reads time out after the channel timeout (a dead link is retryable)."""
    with translate_ssh_errors(what):
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(options.channel_timeout)
    return sftp

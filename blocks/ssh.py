"""The `SshHost` block: how to reach a host over SSH, with the private key and passphrase as secrets.

Used for remote file trees and, by failover drills, for remote PostgreSQL operations. Fields and
factories (`ssh_options()`, `get_client()`, `display()`) are `seawall.configs.ssh.SshConfig`'s.
"""

from __future__ import annotations

from prefect.blocks.core import Block

from seawall.configs.ssh import KEY_PASSPHRASE_ENV, SshConfig, as_ssh_host

__all__ = ["KEY_PASSPHRASE_ENV", "SshHost", "as_ssh_host"]


class SshHost(SshConfig, Block):
    """A host reachable over SSH with a key, its host key checked against known_hosts or a pin.

    Give the private key as a secret (`private_key`) or as a file on the worker (`key_path`); with
    neither, the SSH agent and ~/.ssh keys are tried. An encrypted key's passphrase comes from
    `key_passphrase`, else from the SEAWALL_SSH_KEY_PASSPHRASE environment variable.

    Example:
        ```python
        from blocks.ssh import SshHost

        host = SshHost.load("BLOCK_NAME")
        client = host.get_client()
        _, out, _ = client.exec_command("uname -a")
        ```
    """

    _block_type_name = "Seawall SSH Host"
    _block_type_slug = "seawall-ssh-host"
    _description = "An SSH host (key authentication, strict host-key checking) seawall reads from or operates on."

"""SSH connections with paramiko: strict host keys, bounded waits, and one error translator.

Host keys are checked against `known_hosts` (the system files, plus content or a file from the
`SshHost` block) or a pinned key, under a `RejectPolicy`: an unknown host is refused after the key
exchange and before any authentication, so no credential is offered to an impostor (borgstore does
the same; fsspec's `AutoAddPolicy` is the counter-example). Connect, banner, auth and channel
timeouts plus a keepalive turn a dead link into a retryable timeout instead of a hung task.

`translate_ssh_errors(what)` is the only place paramiko's exceptions become seawall's families.

One module per concern: `urls` (URLs and connection options), `hostkeys`, `connect`, `errors` (the
translator) and `session` (`RemoteSession`); the names other modules use are re-exported here.
"""

from seawall.ssh.connect import KEY_PASSPHRASE_ENV, connect, load_private_key, open_sftp
from seawall.ssh.errors import translate_ssh_errors
from seawall.ssh.hostkeys import SYSTEM_KNOWN_HOSTS, UnknownHostKey
from seawall.ssh.session import RemoteSession, check_remote_dir, rpath
from seawall.ssh.urls import SshOptions, SshUrl, is_ssh_url, parse_ssh_url

__all__ = [
    "KEY_PASSPHRASE_ENV", "SYSTEM_KNOWN_HOSTS", "RemoteSession", "SshOptions", "SshUrl", "UnknownHostKey",
    "check_remote_dir", "connect", "is_ssh_url", "load_private_key", "open_sftp", "parse_ssh_url", "rpath",
    "translate_ssh_errors",
]

"""The SFTP store beyond the shared contract: URLs, host keys, durability and a dying sshd.

Everything runs against a real OpenSSH sshd on loopback (tests/fixtures/sshd.py).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from seawall.errors import AuthError, ConfigError, RetryableError
from seawall.stores import open_store
from seawall.stores.sftp import SftpStore
from tests.fixtures.sshd import SshServer


def _url(sshd: SshServer, path: Path | str, known_hosts: Path | None = None, key: Path | None = None) -> str:
    return (f"sftp://root@{sshd.host}:{sshd.port}{path}?identity={key or sshd.client_key}"
            f"&known_hosts={known_hosts or sshd.known_hosts}")


def _open(url: str, **options) -> SftpStore:
    return open_store(url, system_host_keys=False, **options)


def test_unknown_host_key_is_refused_before_auth(sshd: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(AuthError, match="not in known_hosts") as info:
        _open(_url(sshd, tmp_path, known_hosts=empty), create=True)
    assert sshd.host_fingerprint() in str(info.value)
    assert not (tmp_path / "vault").exists()


def test_changed_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
    changed = tmp_path / "known_hosts"
    pub = other.with_suffix(".pub").read_text().split()
    changed.write_text(f"[{sshd.host}]:{sshd.port} {pub[0]} {pub[1]}\n")
    with pytest.raises(AuthError, match="CHANGED"):
        _open(_url(sshd, tmp_path, known_hosts=changed))


def test_encrypted_identity_takes_the_passphrase_from_the_environment(
        sshd: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _url(sshd, tmp_path / "v", key=sshd.encrypted_key)
    with pytest.raises(AuthError, match="SEAWALL_SSH_KEY_PASSPHRASE"):
        _open(url, create=True)
    monkeypatch.setenv("SEAWALL_SSH_KEY_PASSPHRASE", sshd.key_passphrase)
    with _open(url, create=True) as store:
        store.put("k", b"v")
        assert sshd.key_passphrase not in repr(store) + store.display_url + repr(store.options)
    assert (tmp_path / "v" / "k").read_bytes() == b"v"


@pytest.mark.parametrize(("suffix", "message"), [
    ("?bogus=1", "bogus"),
    ("?identity=/nonexistent/key", "does not exist"),
])
def test_bad_urls_are_config_errors(sshd: SshServer, tmp_path: Path, suffix: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(f"sftp://root@{sshd.host}:{sshd.port}{tmp_path}{suffix}")


def test_url_shapes(sshd: SshServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="password"):
        open_store(f"sftp://root:hunter2@{sshd.host}/srv/vault")
    with pytest.raises(ConfigError, match="no folder"):
        open_store(f"sftp://root@{sshd.host}:{sshd.port}/")
    with pytest.raises(ConfigError, match="does not exist"):
        _open(_url(sshd, tmp_path / "missing"))


def test_files_land_atomically_and_durably(sshd: SshServer, tmp_path: Path) -> None:
    """Writes go through a temporary name and the fsync extension; nothing temporary is left."""
    with _open(_url(sshd, tmp_path), create=True) as store:
        store.put("chunks/ab/abc", b"x" * 100_000)
        assert store.put_if_absent("locks/lease", b"one")
        assert store._fsync, "OpenSSH offers fsync@openssh.com: it must be used"
    names = [p.name for p in tmp_path.rglob("*")]
    assert "abc" in names and "lease" in names
    assert not [n for n in names if n.startswith(".tmp")]
    opened = [p for p in sshd.sftp_opened() if str(tmp_path) in p]
    assert any("/chunks/ab/.tmp-" in p for p in opened), opened  # written under a temporary name


def test_crashed_write_leaves_only_a_skipped_temporary(sshd: SshServer, tmp_path: Path) -> None:
    with _open(_url(sshd, tmp_path), create=True) as store:
        store.put("chunks/ab/done", b"ok")
        (tmp_path / "chunks" / "ab" / ".tmp-deadbeef-0").write_bytes(b"half")
        assert [i.key for i in store.list("chunks/")] == ["chunks/ab/done"]


def test_sshd_killed_is_retryable_and_the_store_reconnects(sshd_private: SshServer, tmp_path: Path) -> None:
    with _open(_url(sshd_private, tmp_path), create=True, connect_timeout=2, channel_timeout=3) as store:
        store.put("a", b"1")
        sshd_private.kill()
        # Either the dead session or the refused reconnect answers, both naming the host.
        with pytest.raises(RetryableError, match=f"127.0.0.1:{sshd_private.port}"):
            store.get("a")
        sshd_private.start()
        assert store.get("a") == b"1"  # a retry after the restart works on a new connection


def test_pickled_store_reconnects(sshd: SshServer, tmp_path: Path) -> None:
    with _open(_url(sshd, tmp_path), create=True) as store:
        store.put("k", b"v")
        copy = pickle.loads(pickle.dumps(store))
    try:
        assert copy._client is None and copy.get("k") == b"v"
    finally:
        copy.close()


def test_unprivileged_user_gets_permission_errors(sshd: SshServer, tmp_path: Path) -> None:
    from seawall.errors import PermanentError

    root_only = tmp_path / "root-only"
    root_only.mkdir(mode=0o700)
    url = _url(sshd, root_only).replace("root@", "seawalltest@")
    with pytest.raises((PermanentError, ConfigError)):
        _open(url)

"""The CLI with `ssh://` sources and targets, end to end: the real `seawall` script, a real Prefect
server, and a real OpenSSH sshd on loopback (killed and restarted in one test).

Retries are shrunk through SEAWALL_TASK_RETRIES / SEAWALL_RETRY_BACKOFF_SECONDS, which the task
policy reads at import time in the CLI's process.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from seawall.errors import ExitCode
from tests.e2e.conftest import SEAWALL, Result
from tests.fixtures.sshd import TEST_USER, SshServer
from tests.integration.test_files_roundtrip import build_tree, tree_snapshot

MiB = 1 << 20
FAST_RETRIES = {"SEAWALL_TASK_RETRIES": "4", "SEAWALL_RETRY_BACKOFF_SECONDS": "0.5"}


def ssh_args(sshd: SshServer, known_hosts: Path | None = None) -> list[str]:
    return ["--identity", str(sshd.client_key), "--known-hosts", str(known_hosts or sshd.known_hosts)]


@pytest.fixture
def vault_url(cli, tmp_path) -> str:
    url = f"file://{tmp_path / 'vault'}"
    assert cli("init", url).code == 0
    return url


def test_backup_restore_local_and_remote(cli, sshd, remote_dir, vault_url, tmp_path):
    build_tree(remote_dir / "tree")
    url = sshd.url(f"{remote_dir}/tree")
    first = cli("backup", "files", url, "--vault", vault_url, *ssh_args(sshd), "--json")
    assert first.code == 0, first.err
    row = first.json()
    assert row["status"] == "DONE" and row["skipped_items"] == [] and row["bytes_read"] > 8 * MiB
    assert row["dataset"] == "127.0.0.1-tree"
    expected = tree_snapshot(remote_dir / "tree")

    local = cli("restore", row["backup_id"], "--vault", vault_url, "--to", str(tmp_path / "local"))
    assert local.code == 0, local.err
    assert tree_snapshot(tmp_path / "local") == expected

    back = cli("restore", row["backup_id"], "--vault", vault_url, "--to", sshd.url(f"{remote_dir}/back"),
               *ssh_args(sshd), "--json")
    assert back.code == 0, back.err
    assert back.json()["files"] == row["files"]
    assert tree_snapshot(remote_dir / "back") == expected

    served = sshd.sftp_bytes_read()
    second = cli("backup", "files", url, "--vault", vault_url, *ssh_args(sshd), "--json")
    assert second.code == 0, second.err
    assert second.json()["bytes_read"] == 0 and sshd.sftp_bytes_read() == served
    assert cli("verify", "--vault", vault_url, "--read-data").code == 0


def test_unknown_host_key_one_line_nothing_sent(cli, sshd, remote_dir, vault_url, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    accepted = sshd.log().count("Accepted publickey")
    res = cli("backup", "files", sshd.url(str(remote_dir)), "--vault", vault_url, *ssh_args(sshd, empty))
    assert res.code == ExitCode.USAGE
    assert len(res.err.strip().splitlines()) == 1, res.err
    assert f"[127.0.0.1]:{sshd.port}" in res.err and "not in known_hosts" in res.err
    assert sshd.host_fingerprint("ed25519") in res.err or sshd.host_fingerprint("rsa") in res.err
    assert sshd.log().count("Accepted publickey") == accepted
    assert "Traceback" not in res.err


def test_wrong_key_fails_once_without_retry_storm(cli, sshd, remote_dir, vault_url, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "wrong")], check=True)
    before = sshd.log().count("Connection closed by authenticating user")
    res = cli("backup", "files", sshd.url(str(remote_dir)), "--vault", vault_url, "--identity",
              str(tmp_path / "wrong"), "--known-hosts", str(sshd.known_hosts), env=FAST_RETRIES)
    assert res.code == ExitCode.USAGE, res.err
    assert "authentication refused" in res.err and len(res.err.strip().splitlines()) == 1
    time.sleep(0.5)
    assert sshd.log().count("Connection closed by authenticating user") == before + 1  # one attempt only


def test_missing_path_and_not_a_directory(cli, sshd, remote_dir, vault_url):
    (remote_dir / "file").write_text("x")
    for path, words in ((f"{remote_dir}/nope", "does not exist"), (f"{remote_dir}/file", "not a directory")):
        res = cli("backup", "files", sshd.url(path), "--vault", vault_url, *ssh_args(sshd))
        assert res.code == ExitCode.USAGE and words in res.err, res.err


def test_permission_denied_is_partial(cli, sshd, remote_dir, vault_url):
    root = remote_dir / "perm"
    root.mkdir()
    (root / "ok.txt").write_text("readable\n")
    (root / "secret.bin").write_bytes(b"\x00" * 100)
    os.chmod(root / "secret.bin", 0o000)
    res = cli("backup", "files", sshd.url(str(root), user=TEST_USER), "--vault", vault_url, *ssh_args(sshd), "--json")
    assert res.code == ExitCode.PARTIAL, res.err
    assert res.json()["skipped_items"] == ["secret.bin: Permission denied"]
    assert res.json()["status"] == "DONE" and res.json()["files"] == 1  # skipped, not counted


def test_sshd_killed_mid_backup_retry_completes(cli, prefect_server, sshd_private, remote_dir, vault_url, tmp_path):
    root = remote_dir / "big"
    root.mkdir()
    for i in range(8):
        (root / f"part{i}.bin").write_bytes(os.urandom(16 * MiB))
    env = dict(os.environ, PREFECT_API_URL=prefect_server["url"], PREFECT_HOME=prefect_server["home"],
               SEAWALL_PASSPHRASE="correct horse", **FAST_RETRIES)
    proc = subprocess.Popen([SEAWALL, "backup", "files", sshd_private.url(str(root)), "--vault", vault_url,
                             *ssh_args(sshd_private), "--json"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.startswith(f"{root}/part") for p in sshd_private.sftp_opened()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    sshd_private.kill()  # mid-read: the listener and every session die
    time.sleep(0.5)
    sshd_private.start()
    out, err = proc.communicate(timeout=300)
    res = Result(proc.returncode, out, err)
    assert res.code == 0, res.err
    assert res.json()["status"] == "DONE" and res.json()["files"] == 8
    assert sshd_private.log().count("Accepted publickey") >= 3  # preflight, the cut attempt, the retry
    listed = cli("list", "--vault", vault_url, "--json").json()["backups"]
    assert [(b["backup_id"], b["status"]) for b in listed] == [(res.json()["backup_id"], "DONE")]
    assert cli("verify", "--vault", vault_url, "--read-data").code == 0
    assert cli("restore", res.json()["backup_id"], "--vault", vault_url, "--to", str(tmp_path / "out")).code == 0
    assert tree_snapshot(tmp_path / "out") == tree_snapshot(root)


def test_sftp_vault_init_backup_restore_verify(cli, sshd, remote_dir, tmp_path):
    """An `sftp://` vault used the way users use any vault: the whole CLI, a real sshd."""
    build_tree(tmp_path / "src tree")
    vault = (f"sftp://root@{sshd.host}:{sshd.port}{remote_dir}/vault?identity={sshd.client_key}"
             f"&known_hosts={sshd.known_hosts}")
    assert cli("init", vault).code == 0
    backup = cli("backup", "files", str(tmp_path / "src tree"), "--vault", vault, "--json")
    assert backup.code == 0, backup.err
    backup_id = backup.json()["backup_id"]
    restored = cli("restore", backup_id, "--vault", vault, "--to", str(tmp_path / "back"))
    assert restored.code == 0, restored.err
    assert tree_snapshot(tmp_path / "back") == tree_snapshot(tmp_path / "src tree")
    checked = cli("verify", "--vault", vault, "--read-data")
    assert checked.code == 0, checked.err + checked.out
    assert not list((remote_dir / "vault").rglob(".tmp-*"))

    stranger = tmp_path / "known_hosts"
    stranger.write_text("")
    refused = cli("list", "--vault", vault.replace(str(sshd.known_hosts), str(stranger)))
    assert refused.code == ExitCode.USAGE, refused.err
    assert "not in known_hosts" in refused.err and "Traceback" not in refused.err

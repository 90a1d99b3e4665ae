"""The CLI end to end: init, backup, list, restore, verify on file:// and s3:// vaults.

Runs the installed `seawall` script in a subprocess against a real Prefect server, so the exit
codes, the one-line errors and the JSON output are what users get.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seawall.errors import ExitCode
from seawall.sources.compare import compare_trees
from seawall.sources.sample import make_sample_tree

CANARY = b"CANARY-7f3a9c-do-not-leak"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    make_sample_tree(root)
    (root / "secret.txt").write_bytes(CANARY * 2000)
    (root / "uploads" / "canary-once.bin").write_bytes(os.urandom(1000) + CANARY + os.urandom(1000))
    return root


@pytest.fixture(params=["file", "s3"])
def vault_url(request, tmp_path):
    if request.param == "file":
        return f"file://{tmp_path / 'vault'}"
    return request.getfixturevalue("s3_vault_url")


def test_roundtrip(cli, tree, vault_url, tmp_path, request):
    env = _s3_env(request, vault_url)
    assert cli("init", vault_url, env=env).code == 0
    first = cli("backup", "files", str(tree), "--vault", vault_url, "--json", env=env)
    assert first.code == 0, first.err
    backup_id = first.json()["backup_id"]
    listed = cli("list", "--vault", vault_url, "--json", env=env)
    assert [b["backup_id"] for b in listed.json()["backups"]] == [backup_id]
    assert listed.json()["backups"][0]["status"] == "DONE"
    out = tmp_path / "restored"
    restored = cli("restore", backup_id, "--vault", vault_url, "--to", str(out), env=env)
    assert restored.code == 0, restored.err
    assert compare_trees(tree, out) == []
    verified = cli("verify", "--vault", vault_url, "--read-data", "--json", env=env)
    assert verified.code == 0, verified.err
    assert verified.json()["ok"] is True


def _s3_env(request, vault_url: str) -> dict:
    if not vault_url.startswith("s3://"):
        return {}
    request.getfixturevalue("s3_env")
    return {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
            if k in os.environ}


def test_no_plaintext_in_vault(cli, tree, tmp_path):
    url = f"file://{tmp_path / 'vault'}"
    cli("init", url)
    assert cli("backup", "files", str(tree), "--vault", url).code == 0
    for path in (tmp_path / "vault").rglob("*"):
        if path.is_file():
            assert CANARY not in path.read_bytes(), path


def _flip_byte(path: Path, offset: int = 40) -> None:
    data = bytearray(path.read_bytes())
    data[min(offset, len(data) - 1)] ^= 0x01
    path.write_bytes(bytes(data))


def test_corrupt_chunk_names_backup_and_object(cli, tree, tmp_path):
    url = f"file://{tmp_path / 'vault'}"
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("unrelated data\n")
    cli("init", url)
    bad = cli("backup", "files", str(tree), "--vault", url, "--json").json()["backup_id"]
    good = cli("backup", "files", str(other), "--vault", url, "--json").json()["backup_id"]
    for b in cli("verify", "--vault", url, "--json").json()["backups"]:
        assert b["ok"]
    packs = [p for p in sorted((tmp_path / "vault" / "data").rglob("*")) if p.is_file()]
    victim = max(packs, key=lambda p: p.stat().st_size)  # the big tree's pack (each backup writes its own)
    _flip_byte(victim)
    result = cli("verify", "--vault", url, "--read-data", "--json")
    assert result.code == ExitCode.INTEGRITY
    verdicts = {b["backup_id"]: b for b in result.json()["backups"]}
    assert not verdicts[bad]["ok"]
    assert victim.name in " ".join(verdicts[bad]["problems"])
    assert verdicts[good]["ok"]
    plain = cli("verify", "--vault", url, "--read-data")
    assert plain.code == ExitCode.INTEGRITY
    assert bad in plain.out + plain.err and victim.name in plain.out + plain.err
    assert "Traceback" not in plain.err


def test_corrupt_manifest(cli, tree, tmp_path):
    url = f"file://{tmp_path / 'vault'}"
    cli("init", url)
    first = cli("backup", "files", str(tree), "--vault", url, "--json").json()["backup_id"]
    second = cli("backup", "files", str(tree), "--vault", url, "--dataset", "second", "--json").json()["backup_id"]
    manifest = next((tmp_path / "vault" / "manifests").rglob(first))
    _flip_byte(manifest, 100)
    result = cli("verify", "--vault", url, "--read-data", "--json")
    assert result.code == ExitCode.INTEGRITY
    verdicts = {b["backup_id"]: b for b in result.json()["backups"]}
    assert not verdicts[first]["ok"] and f"manifests/tree/{first}" in verdicts[first]["problems"][0]
    assert verdicts[second]["ok"]


def test_wrong_passphrase_writes_nothing(cli, tree, tmp_path):
    url = f"file://{tmp_path / 'vault'}"
    cli("init", url)
    before = {p: p.read_bytes() for p in (tmp_path / "vault").rglob("*") if p.is_file()}
    for args in (("backup", "files", str(tree), "--vault", url), ("list", "--vault", url),
                 ("verify", "--vault", url)):
        result = cli(*args, env={"SEAWALL_PASSPHRASE": "wrong"})
        assert result.code == ExitCode.USAGE
        assert "wrong passphrase" in result.err and len(result.err.strip().splitlines()) == 1
        assert "Traceback" not in result.err
    after = {p: p.read_bytes() for p in (tmp_path / "vault").rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize("case", ["missing-path", "bad-scheme", "not-initialised", "already-initialised",
                                  "unknown-backup", "no-passphrase", "file-not-dir"])
def test_bad_input_one_line(cli, tree, tmp_path, case):
    url = f"file://{tmp_path / 'vault'}"
    cli("init", url)
    args = {
        "missing-path": ("backup", "files", str(tmp_path / "nope"), "--vault", url),
        "bad-scheme": ("list", "--vault", "sx3://bucket"),
        "not-initialised": ("list", "--vault", f"file://{tmp_path}"),
        "already-initialised": ("init", url),
        "unknown-backup": ("restore", "20260101T000000Z-abcdef", "--vault", url, "--to", str(tmp_path / "r")),
        "no-passphrase": ("list", "--vault", url),
        "file-not-dir": ("backup", "files", str(tree / "secret.txt"), "--vault", url),
    }[case]
    env = {"SEAWALL_PASSPHRASE": None} if case == "no-passphrase" else None
    result = cli(*args, env=env)
    assert result.code == ExitCode.USAGE, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seawall: error:"), result.err
    assert "Traceback" not in result.err


def test_unreachable_and_misspelled_s3_vaults(cli, s3_vault_url, s3_env, moto_server):
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    assert cli("init", s3_vault_url, env=env).code == 0
    misspelled = s3_vault_url.replace("s3://", "s3://nosuch", 1)
    result = cli("list", "--vault", misspelled, env=env)
    assert result.code == ExitCode.USAGE and "bucket" in result.err.lower()
    unreachable = "s3://bucket/v?region=eu-west-1&endpoint=http://127.0.0.1:9"
    result = cli("list", "--vault", unreachable, env=env)
    # refused on the first attempt: a wrong port, not an outage (README exit codes)
    assert result.code == ExitCode.USAGE and "127.0.0.1:9" in result.err and "connection refused" in result.err
    for r in (result,):
        assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MiB tmpfs: a real full disk for the vault."""
    import subprocess

    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_never_lists_a_complete_backup(cli, tmp_path, tiny_disk):
    url = f"file://{tiny_disk / 'vault'}"
    source = tmp_path / "big"
    source.mkdir()
    for n in range(4):
        (source / f"r{n}.bin").write_bytes(os.urandom(2 << 20))
    assert cli("init", url).code == 0
    result = cli("backup", "files", str(source), "--vault", url,
                 env={"SEAWALL_TASK_RETRIES": "0"})
    assert result.code != 0
    assert "no space left" in result.err and len(result.err.strip().splitlines()) == 1
    listed = cli("list", "--vault", url, "--json")
    assert listed.code == 0, listed.err
    assert all(b["status"] != "DONE" for b in listed.json()["backups"])

"""`seawall.kdf_ahead`: the CLI's early scrypt gives the key the vault's own derivation would."""

from __future__ import annotations

import json

import pytest

from seawall import crypto, kdf_ahead
from seawall.crypto import ScryptParams
from seawall.errors import AuthError
from seawall.stores import open_store
from seawall.vault import Vault, init_vault

FAST = ScryptParams(n=2**12)


@pytest.fixture(autouse=True)
def fresh_jobs(monkeypatch):
    monkeypatch.setattr(kdf_ahead, "_jobs", {})
    crypto._derive_cached.cache_clear()
    yield
    crypto._derive_cached.cache_clear()


def test_hashlib_scrypt_equals_cryptography():
    salt = b"0123456789abcdef"
    for n in (2**12, 2**15):  # 2**15 (the default) needs more than OpenSSL's default 32 MiB cap
        expected = crypto.Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(b"pass word")
        assert kdf_ahead.scrypt("pass word", salt, n, 8, 1) == expected


def test_take_without_a_start_is_none():
    assert kdf_ahead.take("p", b"salt", 2**12, 8, 1) is None


def test_start_from_argv_then_open(tmp_path, monkeypatch):
    url = f"file://{tmp_path / 'vault'}"
    init_vault(url, "secret-pass", scrypt=FAST)
    pass_file = tmp_path / "pass"
    pass_file.write_text("secret-pass\n")
    kdf_ahead.start_from_argv(["restore", "B", "--vault", url, "--passphrase-file", str(pass_file)])
    assert len(kdf_ahead._jobs) == 1
    (key,) = kdf_ahead._jobs
    assert key[0] == "secret-pass" and key[2:] == (FAST.n, FAST.r, FAST.p)
    derived = []
    real = crypto.Scrypt
    monkeypatch.setattr(crypto, "Scrypt", lambda **kw: derived.append(kw) or real(**kw))
    vault = Vault.open(open_store(url), "secret-pass")  # unwraps with the early key: no Scrypt of its own
    assert vault.keyring is not None and derived == []


def test_wrong_passphrase_still_refused(tmp_path):
    url = f"file://{tmp_path / 'vault'}"
    init_vault(url, "right", scrypt=FAST)
    kdf_ahead.start(url, "wrong")
    with pytest.raises(AuthError):
        Vault.open(open_store(url), "wrong")


@pytest.mark.parametrize("argv", [
    ["backup", "files", "/x", "--vault", "file:///nowhere"],  # not a command it starts for
    ["restore", "B", "--vault", "s3://bucket/p"],  # remote: no requests ahead
    ["restore", "B", "--vault", "file:///does/not/exist", "--passphrase-file", "/does/not/exist"],
])
def test_nothing_started(argv, monkeypatch):
    monkeypatch.setenv("SEAWALL_PASSPHRASE", "x")
    kdf_ahead.start_from_argv(argv)
    assert kdf_ahead._jobs == {}


def test_option_forms():
    assert kdf_ahead._option(["restore", "--vault=file:///a"], ("--vault", "-v")) == "file:///a"
    assert kdf_ahead._option(["restore", "-v", "file:///b"], ("--vault", "-v")) == "file:///b"
    assert kdf_ahead._option(["restore", "--", "--vault", "x"], ("--vault",)) is None


def test_junk_wrapper_ignored(tmp_path):
    keys = tmp_path / "vault" / "keys"
    keys.mkdir(parents=True)
    (keys / "a").write_text("not json")
    (keys / "b").write_text(json.dumps({"kind": "kms"}))
    kdf_ahead.start(f"file://{tmp_path / 'vault'}", "p")
    assert kdf_ahead._jobs == {}

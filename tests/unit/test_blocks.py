"""Our Prefect blocks follow Prefect's block standards, keep secrets secret, and build clients."""

from __future__ import annotations

import pickle

import pytest
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from blocks.mariadb import MariaDBSource
from blocks.postgres import PostgresSource
from blocks.redis import RedisSource
from blocks.ssh import SshHost
from blocks.vault import VaultTarget
from seawall.crypto import ScryptParams
from seawall.errors import AuthError


@pytest.mark.parametrize("block", [VaultTarget, PostgresSource, SshHost, MariaDBSource, RedisSource])
class TestBlocksAdhereToStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, block):
        return block

    def test_has_a_documentation_url(self, block):
        """We have no hosted docs: instead of a URL, every block documents itself with an Example."""
        assert "Example:" in (block.__doc__ or "") and ".load(\"BLOCK_NAME\")" in block.__doc__

    def test_has_a_valid_image(self, block):
        """We host no logo (and tests have no network to fetch one): the UI shows its default icon.

        Prefect's own version of this test (it runs once Pillow is installed, which matplotlib
        brings) fetches `_logo_url`; a URL added later must come with a test that serves its image.
        """
        assert block._logo_url is None


def test_postgres_password_in_dsn_becomes_a_secret():
    source = PostgresSource(dsn="postgresql://bob:hunter2@127.0.0.1:5433/app")
    assert "hunter2" not in repr(source) and "hunter2" not in source.display()
    assert "hunter2" not in source.model_dump_json()
    assert source.get_pgconn().password.get_secret_value() == "hunter2"
    assert "hunter2" not in pickle.dumps(source.get_pgconn().display()).decode("latin-1")


def test_vault_target_secrets_hidden(tmp_path):
    target = VaultTarget(url=f"file://{tmp_path}/v", passphrase="s3cret-pass", aws_secret_access_key="AKIAxyz")
    text = repr(target) + target.model_dump_json() + target.display()
    assert "s3cret-pass" not in text and "AKIAxyz" not in text
    target.init_vault(scrypt=ScryptParams(n=2**10))
    assert target.open_vault().config.vault_id


def test_vault_target_without_passphrase_says_how(monkeypatch, tmp_path):
    target = VaultTarget(url=f"file://{tmp_path}/v")
    with pytest.raises(AuthError, match="SEAWALL_PASSPHRASE"):
        target.init_vault(scrypt=ScryptParams(n=2**10))
    monkeypatch.setenv("SEAWALL_PASSPHRASE", "from-env")
    target.init_vault(scrypt=ScryptParams(n=2**10))
    assert target.open_vault()
    # Without a passphrase a vault with only passphrase wrappers says how to give one (a vault with a
    # KMS key wrapper would unlock through KMS instead: tests/integration/test_kms.py).
    monkeypatch.delenv("SEAWALL_PASSPHRASE")
    with pytest.raises(AuthError, match="SEAWALL_PASSPHRASE"):
        target.open_vault()

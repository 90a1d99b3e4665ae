"""The runtime seam: mode detection without Prefect, plain tasks with Prefect's retry policy, futures
and states, prints kept out of stdout, and config models that keep secrets out of parameters."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from seawall.configs.postgres import PostgresConfig
from seawall.configs.vault import VaultConfig, as_vault_target
from seawall.errors import ConfigError, RetryableError
from tasks import mode
from tasks.policy import RETRYABLE, exponential_backoff
from tasks.runtime import NO_CACHE, flow, run_count, task


@pytest.fixture
def no_api(monkeypatch, tmp_path):
    """No API anywhere: an empty PREFECT_HOME, a bare working directory, no PREFECT_* variables."""
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    mode._file_api_url.cache_clear()
    monkeypatch.setattr(mode, "_imported_api_url", lambda: None)  # unit tests may import prefect elsewhere
    return tmp_path


def test_no_configuration_means_plain(no_api):
    assert mode.configured_api_url() is None and not mode.prefect_mode()


def test_env_url_and_explicit_empty(no_api, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert mode.configured_api_url() == "http://127.0.0.1:4200/api" and mode.prefect_mode()
    monkeypatch.setenv("PREFECT_API_URL", "")
    assert mode.configured_api_url() is None


def test_active_profile_from_profiles_toml(no_api, monkeypatch):
    home = no_api / "home"
    home.mkdir()
    (home / "profiles.toml").write_text('active = "prod"\n[profiles.prod]\nPREFECT_API_URL = "http://h:1/api"\n'
                                        '[profiles.dev]\nPREFECT_LOGGING_LEVEL = "DEBUG"\n')
    assert mode.configured_api_url() == "http://h:1/api"
    monkeypatch.setenv("PREFECT_PROFILE", "dev")
    assert mode.configured_api_url() is None
    monkeypatch.setenv("PREFECT_PROFILE", "local")  # not in the file: Prefect's packaged profile
    assert mode.configured_api_url() == "http://127.0.0.1:4200/api"


def test_profiles_path_prefect_toml_and_dotenv(no_api, monkeypatch):
    other = no_api / "elsewhere.toml"
    other.write_text('active = "x"\n[profiles.x]\nPREFECT_API_URL = "http://p:2/api"\n')
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(other))
    assert mode.configured_api_url() == "http://p:2/api"
    (no_api / "prefect.toml").write_text('[api]\nurl = "http://t:3/api"\n')
    mode._file_api_url.cache_clear()
    assert mode.configured_api_url() == "http://t:3/api"
    (no_api / ".env").write_text("OTHER=1\nPREFECT_API_URL='http://e:4/api'\n")
    mode._file_api_url.cache_clear()
    assert mode.configured_api_url() == "http://e:4/api"


def test_override(no_api, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    monkeypatch.setenv("SEAWALL_PREFECT", "off")
    assert not mode.prefect_mode()
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv("SEAWALL_PREFECT", "on")
    assert mode.prefect_mode()
    monkeypatch.setenv("SEAWALL_PREFECT", "sometimes")
    with pytest.raises(ConfigError, match="auto, on or off"):
        mode.prefect_mode()


def test_unreachable_api_is_one_config_error():
    from tests.fixtures.prefect import free_port

    with pytest.raises(ConfigError, match=r"Prefect API at http://127\.0\.0\.1:\d+/api is unreachable"):
        mode.check_api(f"http://127.0.0.1:{free_port()}/api", timeout=2)


def test_backoff_matches_prefect():
    from prefect.tasks import exponential_backoff as prefect_backoff

    assert exponential_backoff(10)(4) == prefect_backoff(10)(4) == [10, 20, 40, 80]


# ---- plain tasks and flows ----------------------------------------------------------------------
FAST = dict(RETRYABLE, retry_delay_seconds=exponential_backoff(0.001), retry_jitter_factor=0.5)


def _flaky(errors: list[BaseException]):
    calls: list[int] = []

    @task(name="flaky", **FAST, cache_policy=NO_CACHE)
    def flaky() -> int:
        calls.append(run_count())
        if errors:
            raise errors.pop(0)
        return len(calls)

    return flaky, calls


def test_plain_task_retries_only_retryable_errors(no_api, caplog):
    flaky, calls = _flaky([RetryableError("reset"), RetryableError("reset again")])
    with caplog.at_level(logging.WARNING, logger="seawall.runs"):
        assert flaky() == 3
    assert calls == [1, 2, 3]
    assert next(r.message for r in caplog.records if "retry" in r.message).startswith("task flaky failed (reset)")
    permanent, calls = _flaky([ConfigError("bad"), RetryableError("never reached")])
    with pytest.raises(ConfigError):
        permanent()
    assert calls == [1]
    bug, calls = _flaky([ValueError("a bug")])
    with pytest.raises(ValueError):
        bug()
    assert calls == [1]


def test_plain_retries_stop_at_the_policy_count(no_api):
    flaky, calls = _flaky([RetryableError(str(i)) for i in range(10)])
    with pytest.raises(RetryableError):
        flaky()
    assert len(calls) == RETRYABLE["retries"] + 1


def test_plain_submit_and_states(no_api):
    @task(name="double")
    def double(x: int) -> int:
        if x < 0:
            raise ConfigError("negative")
        return 2 * x

    futures = [double.with_options(task_run_name=f"d{i}").submit(i) for i in (1, 2, -1)]
    for f in futures:
        f.wait()
    assert [f.state.is_completed() for f in futures] == [True, True, False]
    assert futures[0].result() == 2
    assert isinstance(futures[2].state.result(raise_on_failure=False), ConfigError)
    state = double(-5, return_state=True)
    assert not state.is_completed() and isinstance(state.result(raise_on_failure=False), ConfigError)
    assert double.fn(4) == 8 and double.name == "double"


def test_plain_flow_prints_go_to_the_run_log(no_api, capsys, caplog):
    @flow(name="chatty", stage="test", log_prints=True)
    def chatty() -> str:
        print("inside the flow")
        return "done"

    with caplog.at_level(logging.INFO, logger="seawall.runs"):
        assert chatty() == "done"
    assert "inside the flow" not in capsys.readouterr().out
    assert "inside the flow" in caplog.text
    print("outside")
    assert "outside" in capsys.readouterr().out
    assert chatty.name == "chatty" and chatty.stage == "test"


# ---- configuration models ------------------------------------------------------------------------
def test_vault_url_password_becomes_a_secret():
    vault = as_vault_target("s3://ak:pa%2Fss@bucket/prefix?region=eu-west-1")
    assert vault.url == "s3://ak@bucket/prefix?region=eu-west-1"
    text = repr(vault) + vault.model_dump_json() + vault.display()
    assert "pa%2Fss" not in text and "pa/ss" not in text
    assert vault.store_url() == "s3://ak:pa%2Fss@bucket/prefix?region=eu-west-1"
    assert as_vault_target(vault) is vault


def test_blocks_are_the_config_models():
    from blocks.postgres import PostgresSource
    from blocks.vault import VaultTarget

    block = VaultTarget(url="file:///x")
    assert isinstance(block, VaultConfig) and as_vault_target(block) is block
    assert set(VaultConfig.model_fields) <= set(VaultTarget.model_fields)
    assert isinstance(PostgresSource(dsn="host=db password=pw"), PostgresConfig)
    from fastapi.encoders import jsonable_encoder  # how Prefect stores flow-run parameters

    stored = str(jsonable_encoder(PostgresSource(dsn="postgresql://u:hunter2@db/app")))
    assert "hunter2" not in stored


def test_seam_modules_import_no_prefect(tmp_path: Path):
    import subprocess
    import sys

    code = ("import sys; import flows.backup, flows.restore, flows.verify, flows.cross_region_copy, "
            "flows.retention, flows.restore_verification, flows.restore_drill, flows.failover_drill, "
            "flows.remote, tasks.policy, seawall.cli.app; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_cli_parameters_keep_secrets_out_of_prefect_parameters(no_api, monkeypatch):
    """What the CLI passes to a flow in Prefect mode is stored by Prefect as the run's parameters
    (`jsonable_encoder`): a URL or DSN password must arrive there masked."""
    from fastapi.encoders import jsonable_encoder

    from seawall.cli.common import model, vault_param

    assert vault_param("file:///srv/vault") == "file:///srv/vault"  # nothing secret: the URL itself
    monkeypatch.setenv("SEAWALL_PREFECT", "on")
    vault = vault_param("sftp://backup:s3cr%40t@host:2222/srv/vault")
    source = model("postgres")(dsn="host=db user=app password=hunter2 dbname=shop")
    node = model("node")(name="primary", dsn="postgresql://pg:tiger@db1/postgres", datadir="/srv/pg")
    stored = str(jsonable_encoder({"vault": vault, "source": source, "primary": node}))
    for secret in ("s3cr", "hunter2", "tiger"):
        assert secret not in stored, stored
    assert type(vault).__name__ == "VaultTarget" and vault.store_url().endswith("backup:s3cr%40t@host:2222/srv/vault")
    assert source.get_pgconn().password.get_secret_value() == "hunter2"
    assert node.get_pgconn().password.get_secret_value() == "tiger"

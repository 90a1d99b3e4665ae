"""`seawall deploy` trusts nothing it references: missing or wrong references and bad input stop it.

Acceptance (issue 14, point 5, and its bad input): a policy whose failover drill names blocks that
do not exist (and whose work pool, DR vault block and notification block are missing or of the
wrong type) makes `deploy` exit 2 with one `file:LINE: field: ...` line per problem, and nothing is
deployed; `plan` reports the same when an API is configured. An unreachable API, no API at all, and
an RTO that is not a duration: one line each, exit 2, nothing deployed.
"""

from __future__ import annotations

import pytest

from tests.e2e.prefect_helpers import api, seawall, seawall_env
from tests.fixtures.prefect import free_port

POLICY = """\
version: 1
work_pool: {pool}
vaults:
  checks-a: {{url: "file://{a}"}}
  checks-dr:
    block: no-such-vault
    role: dr
datasets:
  shop:
    files: {{path: "{src}"}}
    vault: checks-a
    copy_to: checks-dr
    rpo: 26h
    rto: {rto}
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
drills:
  failover:
    primary: db1
    standby: db2
alerts:
  blocks: ["seawall-vault/checks-real-vault"]
"""


@pytest.fixture
def policy(tmp_path):
    def write(pool="seawall-no-such-pool", rto="30m"):
        path = tmp_path / f"pölicy file {pool} {rto}.yaml"
        path.write_text(POLICY.format(pool=pool, a=tmp_path / "a", src=tmp_path, rto=rto))
        return path

    return write


def nothing_deployed(server) -> None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.exceptions import ObjectNotFound

    names = ["nightly-shop", "copy-shop", "verify-shop", "failover-drill"]
    with api(server) as client:
        assert client.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names))) \
            == []
        assert not [a for a in client.read_automations() if "shop" in a.name]
        with pytest.raises(ObjectNotFound):
            client.read_global_concurrency_limit_by_name("seawall-vault-checks-a")


def test_missing_references_are_each_named_with_their_line_and_nothing_is_deployed(prefect_server, policy):
    from blocks.vault import VaultTarget

    with api(prefect_server):
        VaultTarget(url="file:///srv/not-a-notifier").save("checks-real-vault", overwrite=True)
    path = policy()
    env = seawall_env(prefect_server)
    for command in ("deploy", "plan"):
        result = seawall(env, command, "--policy", str(path))
        assert result.returncode == 2, result.stdout + result.stderr
        err = " ".join(result.stderr.split())  # rich may wrap long lines
        for expected in (
                f"{path}:2: work_pool: work pool 'seawall-no-such-pool' does not exist",
                f"{path}:6: vaults.checks-dr.block: vault block seawall-vault/no-such-vault does not exist",
                f"{path}:18: drills.failover.primary: PostgreSQL node block seawall-postgres-node/db1 does not exist",
                f"{path}:19: drills.failover.standby: PostgreSQL node block seawall-postgres-node/db2 does not exist",
                f"{path}:21: alerts.blocks[0]: block seawall-vault/checks-real-vault is not a notification block",
                "5 problem(s) in the policy file, nothing deployed"):
            assert expected in err, f"{command}: {expected!r} not in {result.stderr}"
        assert "Traceback" not in result.stderr
    nothing_deployed(prefect_server)


def test_bad_input_is_one_line_exit_2_and_nothing_deployed(prefect_server, policy, tmp_path):
    env = seawall_env(prefect_server)
    dead = env | {"PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    none = {k: v for k, v in env.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(tmp_path / "home")}
    cases = [
        (dead, policy(), "the Prefect API at http://127.0.0.1:"),
        (none, policy(), "no Prefect API configured"),
        (env, policy(rto="half an hour"), ":14: datasets.shop.rto: 'half an hour' is not a duration"),
    ]
    for case_env, path, expected in cases:
        result = seawall(case_env, "deploy", "--policy", str(path))
        assert result.returncode == 2, result.stdout + result.stderr
        assert expected in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one line
    nothing_deployed(prefect_server)

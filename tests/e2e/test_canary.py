"""Secrets never leave: a canary in every secret-bearing input, commands that succeed and fail, with
and without --debug, against the real Prefect server (API mode: flow runs, parameters, states,
logs, events and artifacts all land in its database).

The canary goes into: the vault passphrase, a PostgreSQL DSN password, the S3 secret key, the
userinfo of an S3 endpoint URL and of an SFTP vault URL, an SSH key passphrase and a webhook URL.
Afterwards it must be absent from every stdout, stderr and JSON document, from the vault's plain
files, and from the Prefect server's home: its SQLite database (and WAL), its log, and the result
storage the CLI processes wrote there.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.prefect_helpers import create_pool
from tests.fixtures.s3 import _free_port

CANARY = f"ZqCnry{secrets.token_hex(4)}"


def _secrets() -> dict[str, str]:
    return {
        "passphrase": f"{CANARY}-pass phrase",
        "dsn": f"{CANARY}-dsn pw",
        "s3": f"{CANARY}-s3secret",
        "endpoint": f"{CANARY}-endpoint",
        "sftp": f"{CANARY}-sftpuser",
        "ssh_key": f"{CANARY}-keypass",
        "webhook": f"{CANARY}-hooktoken",
    }


def _wait_for_server_quiet(url: str, timeout: float = 30) -> None:
    """Until the server's event and log counts stop moving (they are written in batches)."""
    def counts() -> tuple[int, int]:
        out = []
        for kind in ("events/filter", "logs/filter"):
            body = json.dumps({"limit": 200} if kind == "logs/filter" else {"limit": 50}).encode()
            req = urllib.request.Request(f"{url}/{kind}", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                data = json.loads(resp.read())
            out.append(data.get("total", 0) if isinstance(data, dict) else len(data))
        return out[0], out[1]

    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        now = counts()
        if now == last:
            return
        last = now
        time.sleep(2)


def _grep_tree(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue
    return hits


@pytest.fixture
def pwuser(pg_cluster) -> str:
    """A DSN for a role whose password is the canary (scram on 127.0.0.1)."""
    pw = _secrets()["dsn"]
    pg_cluster.execute(f"CREATE ROLE pwuser LOGIN SUPERUSER PASSWORD '{pw}'")
    hba = pg_cluster.datadir / "pg_hba.conf"
    hba.write_text("host all pwuser 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    pg_cluster.execute("SELECT pg_reload_conf()")
    return f"host=127.0.0.1 port={pg_cluster.port} dbname=postgres user=pwuser password='{pw}'"


def test_canary_never_leaves(cli, prefect_server, moto_server, s3_env, sshd, remote_dir, pwuser, tmp_path):
    s = _secrets()
    closed = _free_port()
    moto_port = moto_server.rsplit(":", 1)[1]
    vault = f"s3://canary-{secrets.token_hex(3)}/v?region=us-east-1&endpoint=http://bob:{s['endpoint']}@127.0.0.1:{moto_port}"
    dead_vault = f"s3://canary-dead/v?region=us-east-1&endpoint=http://bob:{s['endpoint']}@127.0.0.1:{closed}"
    sftp_vault = f"sftp://root:{s['sftp']}@127.0.0.1:{closed}/srv/vault"
    key = tmp_path / "id_canary"
    key.write_bytes(sshd.encrypted_key.read_bytes())
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", sshd.key_passphrase, "-N", s["ssh_key"], "-f", str(key)],
                   check=True, capture_output=True)
    (remote_dir / "tree").mkdir()
    (remote_dir / "tree" / "a file.txt").write_text("remote data\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f.txt").write_text("local data\n")
    empty_kh = tmp_path / "empty_known_hosts"
    empty_kh.write_text("")
    policy = tmp_path / "seawall.yaml"
    policy.write_text(f"""\
version: 1
work_pool: seawall-canary
vaults:
  main: {{url: "file://{tmp_path / 'policy-vault'}"}}
datasets:
  www:
    files: {{path: {tree}}}
    vault: main
    rpo: 26h
    rto: 1h
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
alerts:
  webhooks: [{{url_env: CANARY_HOOK}}]
""")
    env = {"SEAWALL_PASSPHRASE": s["passphrase"], "AWS_ACCESS_KEY_ID": "canary-id",
           "AWS_SECRET_ACCESS_KEY": s["s3"], "SEAWALL_SSH_KEY_PASSPHRASE": s["ssh_key"],
           "CANARY_HOOK": f"https://hooks.example.test/services/{s['webhook']}",
           "SEAWALL_TASK_RETRIES": "1", "SEAWALL_RETRY_BACKOFF_SECONDS": "0.2"}
    ssh = ["--identity", str(key), "--known-hosts", str(sshd.known_hosts)]
    create_pool(prefect_server, "seawall-canary")  # deploy refuses a policy whose pool does not exist
    steps: list[tuple[list[str], int | None]] = [  # (arguments, expected exit code: None = any failure)
        (["init", vault], 0),
        (["backup", "files", str(tree), "--vault", vault, "--dataset", "www", "--json"], 0),
        (["list", "--vault", vault, "--json"], 0),
        (["verify", "--vault", vault, "--read-data", "--json"], 0),
        (["status", "--vault", vault, "--json"], 0),
        (["backup", "postgres", "--dsn", pwuser, "--vault", vault, "--dataset", "pg", "--json"], 0),
        (["backup", "files", sshd.url(f"{remote_dir}/tree"), "--vault", vault, *ssh, "--json"], 0),
        (["plan", "--policy", str(policy), "--json"], 0),
        (["deploy", "--policy", str(policy), "--json"], 0),
        # failures: wrong DSN password, dead endpoint, SFTP vault nobody listens on, unknown host key,
        # a wrong passphrase (the canary one is then the wrong one for another vault)
        (["backup", "postgres", "--dsn", pwuser.replace(s["dsn"], s["dsn"] + "x"), "--vault", vault], None),
        (["list", "--vault", dead_vault], None),
        (["backup", "files", str(tree), "--vault", dead_vault], None),
        (["list", "--vault", sftp_vault], None),
        (["backup", "files", sshd.url(f"{remote_dir}/tree"), "--vault", vault, "--identity", str(key),
          "--known-hosts", str(empty_kh)], None),
        (["restore", "20200101T000000Z-abcdef", "--vault", vault, "--to", str(tmp_path / "out")], None),
    ]
    # With --debug (tracebacks, Prefect's console logs): every failure and one successful backup;
    # the other successes once (CI time: each flow-running command costs a few seconds).
    leaks, failures = [], []
    for debug in ([], ["--debug"]):
        for n, (args, expected) in enumerate(steps):
            if debug and expected == 0 and n != 1:
                continue
            got = cli(*debug, *args, env=env)
            ok = got.code == expected if expected is not None else got.code != 0
            if not ok:
                failures.append(f"{debug} {args[:2]}: exit {got.code}: {got.err[-500:]}")
            if CANARY in got.out or CANARY in got.err:
                leaks.append(f"{debug} {args[:2]} printed it: {(got.out + got.err)[:300]!r}")
    assert failures == [], "\n".join(failures)
    assert leaks == [], "\n".join(leaks)

    _wait_for_server_quiet(prefect_server["url"])
    home = Path(prefect_server["home"])
    assert (home / "prefect.db").exists()
    found = _grep_tree(home, CANARY.encode()) + _grep_tree(tmp_path, CANARY.encode())
    found = [f for f in found if not f.endswith(("id_canary", "seawall.yaml"))]  # our own inputs
    assert found == [], found
    assert os.environ.get("SEAWALL_PASSPHRASE") is None  # the test process itself kept it out

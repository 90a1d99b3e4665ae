"""The README's exit-code table is true: configuration mistakes users make, driven against it.

The table is parsed from README.md; each case runs the real `seawall` script against real parts
(a closed port, a name that does not resolve, the moto S3 server, a real sshd, a real PostgreSQL
cluster) with the default retry policy, and must end with the documented code, one line on stderr
naming the thing, no traceback, and at once (a refused first connection is not retried).

The module has a Prefect server of its own. On the session's shared server, in two full-suite runs
of four, one case took 63.9 s (exit code and line right): a fixed ~60 s wait that never showed
alone, repeated, or beside two CPU hogs. That server carries what earlier test files leave on it
(automations with webhook notifications, deployments, their runs), and its SQLite waits up to 60 s
for a lock (Prefect's `busy_timeout`); the cause was not pinned down. A case that is slow
anyway reports the server's log lines of its window, to name where the time went.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from tests.fixtures.prefect import running_prefect_server

README = Path(__file__).parents[2] / "README.md"
#: A refused first connection must not be retried: with the backoff below, one retry alone would
#: cost 15 s or more (30 s, jitter 0.5), so a command slower than its no-error twin by AT_ONCE retried.
AT_ONCE = 10.0
SLOW_RETRIES = {"SEAWALL_TASK_RETRIES": "4", "SEAWALL_RETRY_BACKOFF_SECONDS": "30"}


def readme_exit_codes() -> dict[int, str]:
    text = README.read_text()
    section = text[text.index("### Exit codes"):]
    section = section[:section.index("\n\n", section.index("| code |"))]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.MULTILINE)
    return {int(code): meaning for code, meaning in rows}


def test_readme_table_lists_the_codes_the_errors_use() -> None:
    from seawall.errors import ExitCode

    table = readme_exit_codes()
    used = {v for k, v in vars(ExitCode).items() if k.isupper()}
    assert used <= set(table), sorted(used - set(table))
    assert "configuration" in table[2] and "integrity" in table[3] and "busy" in table[5]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """A fresh server for this module only (overrides the session's; see the module docstring)."""
    with running_prefect_server(tmp_path_factory.mktemp("prefect-exit-codes")) as server:
        yield server


def _server_log_since(server: dict, offset: int) -> str:
    """What the server logged after byte `offset` of its log (its warnings and errors), shortened."""
    with open(Path(server["home"]) / "server.log", "rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    stamped = [line for line in lines if re.match(r"\d\d:\d\d:\d\d", line)]
    return " | ".join(stamped[:10]) or "nothing"


@pytest.fixture(scope="module")
def empty_known_hosts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kh") / "known_hosts"
    path.write_text("")
    return path


def _cases(tmp: Path, moto: str, sshd, known_hosts: Path, pg,
           closed: int) -> list[tuple[str, list[str], dict, int, str]]:
    """(name, argv, env, code, a word the one-line error must contain); `closed`: a port that refuses."""
    vault = f"file://{tmp / 'vault'}"
    pg_url = f"host=127.0.0.1 port={pg.port} dbname=postgres"
    s3 = "s3://seawall-exit/v?region=us-east-1&endpoint="
    return [
        ("s3 closed port", ["list", "--vault", f"{s3}http://127.0.0.1:{closed}"], {}, 2, "connection refused"),
        ("s3 misspelled host", ["list", "--vault", f"{s3}http://localhots.invalid:9000"], {}, 2, "unknown host"),
        ("s3 htp://", ["list", "--vault", f"{s3}htp://127.0.0.1:{closed}"], {}, 2, "htp://"),
        ("s3 missing bucket", ["list", "--vault", f"s3://seawall-no-such-bucket/v?region=us-east-1&endpoint={moto}"],
         {}, 2, "bucket does not exist"),
        ("vault file:/ one slash", ["list", "--vault", f"file:{tmp / 'vault'}"], {}, 2, f"file://{tmp / 'vault'}"),
        ("vault scheme typo", ["list", "--vault", f"fiel://{tmp / 'vault'}"], {}, 2, "fiel"),
        ("vault no scheme", ["list", "--vault", str(tmp / "vault")], {}, 2, "no scheme"),
        ("vault not initialised", ["list", "--vault", f"file://{tmp / 'nothing here'}"], {}, 2, "does not exist"),
        ("wrong passphrase", ["list", "--vault", vault], {"SEAWALL_PASSPHRASE": "not the one"}, 2,
         "wrong passphrase"),
        ("unknown backup id", ["restore", "20200101T000000Z-abcdef", "--vault", vault, "--to", str(tmp / "r")],
         {}, 2, "no backup"),
        ("restore onto a file", ["restore", "20200101T000000Z-abcdef", "--vault", vault, "--to", str(tmp / "f.txt")],
         {}, 2, "is a file, not a folder"),
        ("ssh closed port", ["backup", "files", f"ssh://root@127.0.0.1:{closed}/srv", "--vault", vault,
                             "--known-hosts", str(sshd.known_hosts)], {}, 2, "connection refused"),
        ("ssh misspelled host", ["backup", "files", "ssh://root@sshd-host.invalid:22/srv", "--vault", vault,
                                 "--known-hosts", str(sshd.known_hosts)], {}, 2, "resolve"),
        ("ssh unknown host key", ["backup", "files", sshd.url("/srv"), "--vault", vault, "--identity",
                                  str(sshd.client_key), "--known-hosts", str(known_hosts)], {}, 2, "known_hosts"),
        ("postgres dead port", ["backup", "postgres", "--dsn", f"host=127.0.0.1 port={closed} dbname=x user=x",
                                "--vault", vault], {}, 2, "connection refused"),
        ("postgres wrong password", ["backup", "postgres", "--dsn", f"{pg_url} user=pwuser password=wrong",
                                     "--vault", vault], {}, 2, "password authentication failed"),
    ]


def test_configuration_errors_exit_as_the_readme_says(cli, prefect_server, tmp_path, moto_server, s3_env, sshd,
                                                       empty_known_hosts, pg_cluster) -> None:
    import os

    pg_cluster.execute("CREATE ROLE pwuser LOGIN PASSWORD 'right-password'")
    hba = pg_cluster.datadir / "pg_hba.conf"
    hba.write_text("host all pwuser 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    pg_cluster.execute("SELECT pg_reload_conf()")
    assert cli("init", f"file://{tmp_path / 'vault'}").code == 0
    (tmp_path / "f.txt").write_text("a file")
    aws = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    (tmp_path / "tree").mkdir()
    started = time.monotonic()  # the same kind of command without an error: a flow run's own cost
    assert cli("backup", "files", str(tmp_path / "tree"), "--vault", f"file://{tmp_path / 'vault'}").code == 0
    baseline = time.monotonic() - started
    table = readme_exit_codes()
    failures = []
    # The closed port stays bound (never listening: connections to it are refused) for the whole
    # test: a port merely found free was taken by another xdist worker's server meanwhile in one CI
    # run, and the "dead port" backup met a live one (63.9 s of retries instead of a refusal).
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    cases = _cases(tmp_path, moto_server, sshd, empty_known_hosts, pg_cluster, closed.getsockname()[1])
    for name, argv, env, code, word in cases:
        log_offset = (Path(prefect_server["home"]) / "server.log").stat().st_size
        started, wall = time.monotonic(), time.strftime("%H:%M:%S")
        got = cli(*argv, env={**aws, **SLOW_RETRIES, **env})
        took = time.monotonic() - started
        lines = got.err.strip().splitlines()
        ok = (got.code == code and code in table and len(lines) == 1 and word in lines[0]
              and "Traceback" not in got.err and took < baseline + AT_ONCE)
        if not ok:
            failures.append(f"{name}: exit {got.code} (README {code}) in {took:.1f}s from {wall} (baseline "
                            f"{baseline:.1f}s): {got.err!r}; server log meanwhile: "
                            f"{_server_log_since(prefect_server, log_offset)}")
    closed.close()
    assert failures == [], "\n".join(failures)

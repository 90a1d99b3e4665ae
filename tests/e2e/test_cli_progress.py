"""Progress bars, as a terminal shows them (the CLI under a pseudo-terminal): backup and restore
bars carry the byte total of the tree and an ETA column, and end at total/total."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

from tests.e2e.conftest import SEAWALL


def _in_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `seawall args` with stdout on a pseudo-terminal; returns (exit code, what it drew)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([SEAWALL, *args], env=env, stdout=follower, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = proc.wait(120)
    os.close(leader)
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))


def test_backup_and_restore_bars_have_totals_and_eta(cli, prefect_server, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub dir").mkdir(parents=True)
    for i in range(6):
        (tree / "sub dir" / f"f{i}.bin").write_bytes(os.urandom(500_000))  # 3.0 MB in all
    url = f"file://{tmp_path / 'vault'}"
    assert cli("init", url).code == 0
    env = dict(os.environ, PREFECT_API_URL=prefect_server["url"], PREFECT_HOME=prefect_server["home"],
               SEAWALL_PASSPHRASE="correct horse", COLUMNS="160", TERM="xterm")
    code, drawn = _in_terminal(env, "backup", "files", str(tree), "--vault", url, "--dataset", "www")
    assert code == 0, drawn
    assert re.search(r"backup.*3\.0/3\.0 MB", drawn) and "ETA" in drawn, drawn[-2000:]
    backup_id = cli("list", "--vault", url, "--json").json()["backups"][0]["backup_id"]
    code, drawn = _in_terminal(env, "restore", backup_id, "--vault", url, "--to", str(tmp_path / "out"))
    assert code == 0, drawn
    assert re.search(r"restore.*3\.0/3\.0 MB", drawn) and "ETA" in drawn, drawn[-2000:]

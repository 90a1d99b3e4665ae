"""One dataset naming: a Python backup, a CLI backup and the policy's deployment of a folder share one history.

Before, Python and the CLI defaulted `/srv/www` to `files-www` while the policy's deployment used
`www`: two histories of the same data (and no incremental between them).
"""

from __future__ import annotations

from pathlib import Path

from blocks.vault import VaultTarget
from deployments.build import build
from flows.backup import backup_files
from seawall.crypto import ScryptParams
from seawall.naming import dataset_for_path, dataset_for_remote
from seawall.policy import parse_policy


def test_default_dataset_is_the_folders_name():
    assert dataset_for_path("/srv/www/") == "www"
    assert dataset_for_path("/srv/My Site ü") == "my-site"
    assert dataset_for_remote("web1", "/srv/www/") == "web1-www"


def test_python_backup_and_the_policys_nightly_deployment_share_one_dataset(tmp_path: Path):
    site = tmp_path / "www"
    site.mkdir()
    (site / "index.html").write_text("<h1>hi</h1>\n")
    vault = VaultTarget(url=f"file://{tmp_path / 'vault'}", passphrase="flow-test")
    vault.init_vault(scrypt=ScryptParams(n=2**10))
    policy = parse_policy(f"""\
version: 1
vaults: {{primary: {{url: "file://{tmp_path / 'vault'}"}}}}
datasets:
  www:
    files: {{path: "{site}"}}
    vault: primary
    rpo: 26h
    rto: 1h
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
""")
    [nightly] = [d for d in build(policy, env={}).deployments if d.name == "nightly-www"]

    first = backup_files(str(site), vault)                       # Python, no dataset given
    second = backup_files(**nightly.parameters | {"vault": vault})  # what the deployment runs
    assert first.dataset == second.dataset == nightly.parameters["dataset"] == "www"
    assert second.parent == first.backup_id and second.stats.bytes_read == 0  # one incremental history

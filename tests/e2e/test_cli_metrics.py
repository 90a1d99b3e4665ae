"""`seawall metrics` as a whole process: each vault with its own credentials, objectives from the policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

SEAWALL = str(Path(sys.executable).with_name("seawall"))


def run(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SEAWALL_", "PREFECT_API_URL"))}
    return subprocess.run([SEAWALL, *args], env=base | (env or {}), capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def samples(path: Path) -> dict[tuple, float]:
    return {(s.name, *sorted(s.labels.items())): s.value
            for fam in text_string_to_metric_families(path.read_text()) for s in fam.samples}


def test_metrics_reads_each_vault_with_its_own_passphrase_and_exports_policy_objectives(tmp_path):
    from seawall.crypto import ScryptParams
    from seawall.vault import init_vault

    primary, dr = f"file://{tmp_path / 'primary'}", f"file://{tmp_path / 'dr ü'}"
    init_vault(primary, "primary pass", scrypt=ScryptParams(n=2**10))
    init_vault(dr, "dr pass 'quoted'", scrypt=ScryptParams(n=2**10))
    dr_file = tmp_path / "dr.pass"
    dr_file.write_text("dr pass 'quoted'\n")
    out = tmp_path / "seawall.prom"

    result = run(tmp_path, "metrics", "--vault", primary, "--vault", f"{dr},passphrase-file={dr_file}",
                 "--textfile", str(out), env={"SEAWALL_PASSPHRASE": "primary pass"})
    assert result.returncode == 0, result.stderr
    s = samples(out)
    assert s[("seawall_scrape_error", ("vault", primary))] == 0 and s[("seawall_scrape_error", ("vault", dr))] == 0

    policy = tmp_path / "seawall.yaml"
    policy.write_text(f"""\
version: 1
vaults:
  primary: {{url: "{primary}"}}
  dr: {{url: "{dr}", passphrase_env: DR_PASSPHRASE, role: dr}}
datasets:
  shop:
    postgres: {{dsn_env: SHOP_DSN}}
    vault: primary
    copy_to: dr
    rpo: 26h
    rto: 30m
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
""")
    result = run(tmp_path, "metrics", "--policy", str(policy), "--textfile", str(out),
                 env={"SEAWALL_PASSPHRASE": "primary pass", "DR_PASSPHRASE": "dr pass 'quoted'"})
    assert result.returncode == 0, result.stderr
    s = samples(out)
    assert s[("seawall_scrape_error", ("vault", dr))] == 0
    assert s[("seawall_rpo_objective_seconds", ("dataset", "shop"))] == 26 * 3600
    assert s[("seawall_rto_objective_seconds", ("dataset", "shop"))] == 1800

    missing = run(tmp_path, "metrics", "--policy", str(policy), "--textfile", str(out),
                  env={"SEAWALL_PASSPHRASE": "primary pass"})
    assert missing.returncode == 2 and "vaults.dr: DR_PASSPHRASE is not set" in missing.stderr, missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

"""`seawall report`, `seawall runbook` and `seawall last-clean` as whole processes (no Prefect needed):
exit codes, JSON, Markdown/HTML, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seawall.sources.files import backup_tree
from seawall.vault import init_vault
from tests.unit.builders import FAST_SCRYPT

SEAWALL = str(Path(sys.executable).with_name("seawall"))
PASS = "a passphrase with spaces & 'quotes'"
POLICY = """version: 1
vaults:
  near: {{url: "file://{base}/near vault"}}
  far: {{url: "file://{base}/far vault", role: dr, region: other-site, media: tape}}
datasets:
  www:
    files: {{path: "{base}/src"}}
    vault: near
    copy_to: far
    rpo: 26h
    rto: 1h
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
readiness:
  contacts: [{{name: "Zoë on call", role: incident lead, reach: "+49 30 555 0100"}}]
  escalation: ["DBA after 15 minutes"]
"""


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAWALL_", "PREFECT_"))}
    env |= {"SEAWALL_PASSPHRASE": PASS, "COLUMNS": "200"}
    return subprocess.run([SEAWALL, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def site(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "page ü.html").write_text("<p>hello</p>\n" * 100)
    near = init_vault(f"file://{tmp_path}/near vault", PASS, scrypt=FAST_SCRYPT)
    init_vault(f"file://{tmp_path}/far vault", PASS, scrypt=FAST_SCRYPT)
    manifest = backup_tree(near, src, "www")
    (tmp_path / "seawall.yaml").write_text(POLICY.format(base=tmp_path))
    return tmp_path, manifest


def test_report_json_markdown_html_and_exit_code(site):
    base, manifest = site
    proc = run("report", "--json", "--html", str(base / "report.html"), cwd=base)
    assert proc.returncode == 6, proc.stderr  # offsite-copy FAILED: nothing copied to "far" yet
    report = json.loads(proc.stdout)
    controls = {c["control"]: c for c in report["datasets"][0]["controls"]}
    assert controls["backup-within-rpo"]["status"] == "PASS"
    assert controls["offsite-copy"]["status"] == "FAIL"
    assert controls["restore-tested-within-days"]["status"] == "UNKNOWN"
    assert report["datasets"][0]["last_backup_id"] == manifest.backup_id
    assert "<td>offsite-copy</td><td>FAIL</td>" in (base / "report.html").read_text()
    markdown = run("report", "--markdown", cwd=base)
    assert markdown.returncode == 6 and "| offsite-copy | ❌ FAIL |" in markdown.stdout
    assert PASS not in markdown.stdout + proc.stdout


def test_runbook_names_vaults_backup_contacts(site):
    base, manifest = site
    proc = run("runbook", "www", cwd=base)
    assert proc.returncode == 0, proc.stderr
    assert f"seawall restore {manifest.backup_id} --vault 'file://{base}/near vault' --to" in proc.stdout
    assert "**Zoë on call**, incident lead: +49 30 555 0100" in proc.stdout
    assert "1. DBA after 15 minutes" in proc.stdout
    assert "`seawall last-clean www --vault" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["report", "--dataset", "nope"], "dataset 'nope' is not in the policy file — known datasets: www"),
    (["runbook", "nope"], "dataset 'nope' is not in the policy file"),
    (["report", "--policy", "missing.yaml"], "cannot read policy file missing.yaml"),
])
def test_bad_input_is_one_line_exit_2(site, args, message):
    base, _ = site
    proc = run(*args, cwd=base)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_price_table_typo_exit_2(site):
    base, _ = site
    policy = base / "seawall.yaml"
    policy.write_text(policy.read_text() + "  prices: {put_per_1000: 0.005, egres_gb: 0.09}\n")
    proc = run("report", cwd=base)
    assert proc.returncode == 2
    assert "seawall.yaml:16: readiness.prices.egres_gb: unknown key 'egres_gb'" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_last_clean_unknown_dataset_exit_2(site):
    base, manifest = site
    proc = run("last-clean", "nope", "--vault", f"file://{base}/near vault", cwd=base)
    assert proc.returncode == 2 and "no backups of dataset 'nope'" in proc.stderr
    assert "datasets here: www" in proc.stderr
    ok = run("last-clean", "www", "--vault", f"file://{base}/near vault", cwd=base)
    assert ok.returncode == 0 and manifest.backup_id in ok.stdout and "no suspicious backup" in ok.stdout


def test_publish_needs_an_api(site):
    base, _ = site
    proc = run("report", "--publish", cwd=base)
    assert proc.returncode == 2 and "--publish needs a Prefect API" in proc.stderr, proc.stderr


def test_publish_on_a_real_server_and_read_the_artifact_back(site, prefect_server):
    import httpx

    base, manifest = site
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAWALL_", "PREFECT_"))}
    env |= {"SEAWALL_PASSPHRASE": PASS, "PREFECT_API_URL": prefect_server["url"],
            "PREFECT_HOME": prefect_server["home"]}
    proc = subprocess.run([SEAWALL, "report", "--publish", "--json"], env=env, cwd=base, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 6, proc.stderr
    assert json.loads(proc.stdout)["datasets"][0]["last_backup_id"] == manifest.backup_id
    answer = httpx.post(f"{prefect_server['url']}/artifacts/filter",
                        json={"artifacts": {"key": {"any_": ["readiness-report"]}}, "sort": "CREATED_DESC",
                              "limit": 1}, timeout=30)
    artifact = answer.json()[0]
    assert artifact["type"] == "markdown" and "| offsite-copy | ❌ FAIL |" in artifact["data"]
    assert PASS not in artifact["data"]

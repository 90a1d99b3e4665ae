"""Acceptance: 20 backups of normal churn flag nothing; a run that encrypts 30% of the tree is flagged,
alerted (a `seawall.backup.suspicious` event read back from the Prefect API), kept by retention, and
`seawall last-clean` (the CLI, as a whole process) names the backup before it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from flows.backup import backup_files
from flows.retention import apply_retention
from seawall.readiness.anomaly import detect
from seawall.readiness.evidence import read_anomalies
from seawall.sources.files import backup_tree
from seawall.vault import Vault, init_vault
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE

SEAWALL = str(Path(sys.executable).with_name("seawall"))
DATASET = "shop-files"
WORDS = ["order", "invoice", "refund", "customer", "berlin", "lisbon", "total", "amount", "pending", "shipped",
         "café", "naïve"]


def _text(rng: random.Random, lines: int) -> str:
    return "".join(f"{rng.randrange(10**6)},{' '.join(rng.choices(WORDS, k=6))},{rng.random():.4f}\n"
                   for _ in range(lines))


def _make_tree(root: Path, rng: random.Random, files: int = 150) -> None:
    for n in range(files):
        folder = root / f"dept {n % 5}" / ("archive 'old'" if n % 3 else "current")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"ledger-{n:03d}.csv").write_text(_text(rng, rng.randrange(40, 160)))


def _churn(root: Path, rng: random.Random, day: int) -> None:
    """A normal day: a few files appended to, one new file, sometimes one deleted."""
    files = sorted(root.rglob("*.csv"))
    for path in rng.sample(files, rng.randrange(2, 6)):
        with open(path, "a") as fh:
            fh.write(_text(rng, rng.randrange(3, 20)))
    (root / "dept 0" / "current" / f"day-{day:02d}.csv").write_text(_text(rng, rng.randrange(20, 60)))
    if day % 4 == 0:
        rng.choice(files).unlink()


def _encrypt(root: Path, share: float, rng: random.Random) -> int:
    """What ransomware does: rewrite a share of the files with ciphertext, in place."""
    files = sorted(root.rglob("*.csv"))
    victims = rng.sample(files, round(len(files) * share))
    for path in victims:
        cipher = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(os.urandom(16))).encryptor()
        path.write_bytes(cipher.update(path.read_bytes()) + cipher.finalize())
    return len(victims)


def _wait_for_event(backup_id: str, timeout: float = 30.0):
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            page = client.read_events(filter=EventFilter(event=EventNameFilter(name=["seawall.backup.suspicious"])),
                                      limit=50)
            found = [e for e in page.events if e.payload.get("backup_id") == backup_id]
            if found:
                return found[0]
            time.sleep(0.2)
    raise AssertionError(f"no seawall.backup.suspicious event for {backup_id} within {timeout}s")


@pytest.fixture
def passphrase(monkeypatch):
    monkeypatch.setenv("SEAWALL_PASSPHRASE", PASSPHRASE)
    return PASSPHRASE


def test_ransomware_run_is_flagged_alerted_kept_and_last_clean_named(tmp_path, passphrase):
    rng = random.Random(19)
    src = tmp_path / "shop files ü"
    _make_tree(src, rng)
    url = f"file://{tmp_path}/vault"
    vault = init_vault(url, passphrase, scrypt=FAST_SCRYPT)
    history = []
    for day in range(21):  # the first backup has no parent; 20 backups of normal churn follow
        if day:
            _churn(src, rng, day)
        history.append(backup_tree(vault, src, DATASET, parent=vault.latest_backup(DATASET)))
    verdicts = detect(vault.list_backups(DATASET))
    assert sum(v.evaluated for v in verdicts.values()) >= 15
    assert not [v for v in verdicts.values() if v.suspicious], [v.reasons for v in verdicts.values() if v.reasons]

    victims = _encrypt(src, 0.30, rng)
    attacked = backup_files(str(src), url, dataset=DATASET)  # the flow users schedule

    changes = attacked.stats.changes
    assert changes.files_changed == victims and changes.entropy_bits > 7.5
    stored = read_anomalies(Vault.open(vault.store, passphrase), DATASET)
    assert "high-entropy rewrite" in stored[attacked.backup_id]
    event = _wait_for_event(attacked.backup_id)
    assert event.resource.id == f"seawall.dataset.{DATASET}"
    assert "high-entropy rewrite" in event.payload["reasons"][0]

    plan = apply_retention(url, {"keep_last": 1}, dry_run=True, datasets=[DATASET]).plan
    assert any(r.startswith("suspicious") for r in plan.keep[attacked.backup_id])
    assert f"last clean before suspicious {attacked.backup_id}" in plan.keep[history[-1].backup_id]
    assert len(plan.remove) == len(history) - 1

    later = backup_files(str(src), url, dataset=DATASET)  # the day after: looks ordinary, carries the damage
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {"SEAWALL_PASSPHRASE": passphrase}
    proc = subprocess.run([SEAWALL, "last-clean", DATASET, "--vault", url, "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["last_clean"] == history[-1].backup_id
    assert [s["backup_id"] for s in answer["suspicious"]] == [attacked.backup_id]
    assert later.backup_id not in {s["backup_id"] for s in answer["suspicious"]}

"""Open the vaults a policy names and read their evidence (the only I/O of the readiness report).

A vault given by URL is unlocked with the passphrase in its `passphrase_env`; a vault given by
block name is loaded through Prefect (only then is Prefect imported). A vault that fails to open
(unreachable, wrong passphrase, missing block) becomes evidence with its error: the report goes on
and the controls that need it say UNKNOWN.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from seawall.crypto import require_passphrase
from seawall.errors import ConfigError, SeawallError
from seawall.policy import Policy, VaultSpec
from seawall.readiness.evidence import VaultEvidence, gather, unavailable, vault_facts
from seawall.vault import Vault


def unknown_datasets(policy: Policy, datasets: list[str] | None) -> None:
    """Raise a one-line ConfigError for a dataset the policy does not name."""
    for name in datasets or []:
        if name not in policy.datasets:
            raise ConfigError(f"dataset {name!r} is not in the policy file",
                              hint=f"known datasets: {', '.join(sorted(policy.datasets))}")


def _open(spec: VaultSpec) -> tuple[Vault, str]:
    """(unlocked vault, its passphrase)."""
    if spec.url is not None:
        from seawall.stores import open_store

        passphrase = os.environ.get(spec.passphrase_env)
        if not passphrase:
            raise ConfigError(f"{spec.passphrase_env} is not set", hint="export the vault's passphrase")
        return Vault.open(open_store(spec.url), require_passphrase(passphrase)), passphrase
    from blocks.vault import VaultTarget

    try:
        target = VaultTarget.load(spec.block)
    except ValueError as exc:  # Prefect: "Unable to find block document named ..."
        raise ConfigError(f"cannot load vault block {spec.block!r}: {str(exc).splitlines()[0]}") from None
    return target.open_vault(), target.get_passphrase()


def vaults_for(policy: Policy, datasets: list[str]) -> list[str]:
    names = {policy.datasets[d].vault for d in datasets} | {policy.datasets[d].copy_to for d in datasets}
    return sorted(n for n in names if n)


def collect(policy: Policy, datasets: list[str] | None = None, now: datetime | None = None) -> dict[str, VaultEvidence]:
    """Evidence of every vault the datasets use (default: all datasets)."""
    now = now or datetime.now(UTC)
    out = {}
    for name in vaults_for(policy, datasets or sorted(policy.datasets)):
        out[name] = collect_one(name, policy.vaults[name], policy, now)
    return out


def collect_one(name: str, spec: VaultSpec, policy: Policy, now: datetime) -> VaultEvidence:
    region, media = vault_facts(spec.url, spec.region, spec.media)
    shown = spec.url or f"block {spec.block}"
    try:
        vault, passphrase = _open(spec)
        region = spec.region or vault.store.region or region  # the store knows its region (S3)
        if spec.url is None:
            region, media = vault_facts(vault.store.display_url, region, spec.media)
        return gather(vault, name=name, role=spec.role, region=region, media=media, passphrases=[passphrase],
                      tiers=policy.readiness.storage_tiers, now=now)
    except (SeawallError, OSError) as exc:
        message = exc.message if isinstance(exc, SeawallError) else str(exc)
        return unavailable(name, _display(shown), spec.role, region, media, message)


def _display(url: str) -> str:
    from seawall.stores import redact_url

    return redact_url(url) if "://" in url else url

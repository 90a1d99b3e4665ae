"""The deploy step for storage tiers: each vault's S3 lifecycle rule, from the policy.

Runs before anything is created in Prefect. Every store is opened and its storage class probed
first (credentials, bucket, a class the endpoint refuses), so a problem stops the deploy before any
bucket's rules change; then each bucket gets seawall's one rule for the vault's `chunks/` prefix
(other rules in the bucket are kept). Idempotent: a second deploy changes nothing.

Example:
    ```python
    from deployments.build import build
    from deployments.lifecycle import apply_lifecycles
    print(apply_lifecycles(build(load_policy("seawall.yaml")).lifecycles))
    ```
"""

from __future__ import annotations

from deployments.build import LifecycleSpec
from seawall.stores import ObjectStore, open_store
from seawall.stores.s3_tiers import Transition


def _store(spec: LifecycleSpec) -> ObjectStore:
    if spec.url is not None:
        return open_store(spec.url)
    from blocks.vault import VaultTarget

    return VaultTarget.load(spec.block).get_store()


def apply_lifecycles(specs: list[LifecycleSpec]) -> list[str]:
    """Put each vault's lifecycle rule in place; one line per change ([] when all are in place)."""
    stores = []
    try:
        for spec in specs:
            stores.append(_store(spec))
            stores[-1].check_storage_class()
        changes: list[str] = []
        for spec, store in zip(specs, stores, strict=True):
            changes += store.set_lifecycle([Transition(days, cls) for days, cls in spec.transitions])
        return changes
    finally:
        for store in stores:
            store.close()

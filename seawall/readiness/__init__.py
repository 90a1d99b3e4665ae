"""Disaster-recovery readiness: answers built from the evidence seawall already keeps.

    settings   the policy's `readiness:` section (windows, storage tiers, prices, contacts)
    evidence   reads vaults into plain records (manifests, ledger, drills, key wrappers, locks, storage)
    controls   PASS / FAIL / UNKNOWN per control, each with its evidence (pure)
    cost       monthly cost estimate per dataset and vault from a price table (pure)
    anomaly    change statistics outside a dataset's own recent range: SUSPICIOUS backups (pure)
    report     the per-dataset readiness report, as JSON, Markdown and HTML (pure)
    runbook    a recovery procedure rendered from the policy and the latest evidence (pure)

Everything but `evidence` is a pure function over records, unit-tested with builders; the CLI, the
`readiness-report` flow and the deployment are thin wrappers.
"""

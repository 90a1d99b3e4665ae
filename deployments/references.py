"""Everything a policy references outside itself, and whether the Prefect API has it.

`seawall deploy` (and `seawall plan` when an API is configured) checks these before changing
anything: saved blocks (vaults, PostgreSQL/MariaDB/Redis sources, the failover drill's nodes), notification blocks
(that they exist and can notify), the work pool (that it exists and is a process pool) and the
webhook URLs' environment variables. Each missing or wrong one is a `Problem` located at its line
in the policy file, so a deploy that would fail at run time ("Failed to resolve block references")
fails at deploy time instead, with nothing deployed.

Example:
    ```python
    from deployments.references import check_references
    problems = check_references(policy, client, os.environ)   # [] when everything is in place
    ```
"""

from __future__ import annotations

from dataclasses import dataclass

from seawall.policy import Policy, Problem

VAULT, SOURCE, NODE = "seawall-vault", "seawall-postgres-source", "seawall-postgres-node"
MARIADB, REDIS = "seawall-mariadb-source", "seawall-redis-source"


@dataclass(frozen=True)
class BlockRef:
    """A saved block the policy names: its type slug, its name, where the policy names it."""

    slug: str
    name: str
    loc: tuple
    notify: bool = False  # must be a notification block


def block_refs(policy: Policy) -> list[BlockRef]:
    """Every saved block the deployments or automations will load."""
    refs = [BlockRef(VAULT, v.block, ("vaults", name, "block")) for name, v in policy.vaults.items() if v.block]
    for name, ds in policy.datasets.items():
        for kind, slug in (("postgres", SOURCE), ("mariadb", MARIADB), ("redis", REDIS)):
            source = getattr(ds, kind, None)
            if source is not None and source.block:
                refs.append(BlockRef(slug, source.block, ("datasets", name, kind, "block")))
    failover = policy.drills.failover
    if failover is not None:
        refs += [BlockRef(NODE, failover.primary, ("drills", "failover", "primary")),
                 BlockRef(NODE, failover.standby, ("drills", "failover", "standby"))]
    for i, ref in enumerate(policy.alerts.blocks):
        slug, _, name = ref.partition("/")
        refs.append(BlockRef(slug, name, ("alerts", "blocks", i), notify=True))
    return refs


def offline_problems(policy: Policy, env: dict[str, str]) -> list[Problem]:
    """What can be checked without an API: block references' form, webhook variables and URLs."""
    out = [policy.problem(r.loc, f"{r.slug}/{r.name!s} is not BLOCK-TYPE/NAME (e.g. slack-webhook/ops)")
           for r in block_refs(policy) if r.notify and not (r.slug and r.name)]
    for i, hook in enumerate(policy.alerts.webhooks):
        url = hook.url or env.get(str(hook.url_env), "")
        if hook.url_env and not url:
            out.append(policy.problem(("alerts", "webhooks", i, "url_env"), f"{hook.url_env} is not set "
                                      "(export the webhook URL in it, then deploy again)"))
        elif not url.startswith(("http://", "https://")):
            where = f"the URL in {hook.url_env}" if hook.url_env else "the URL"
            out.append(policy.problem(("alerts", "webhooks", i), f"{where} is not an http(s) URL"))
    return out


def check_references(policy: Policy, client, env: dict[str, str]) -> list[Problem]:
    """Every reference the API lacks (or holds with the wrong type), located in the policy file."""
    out = offline_problems(policy, env)
    out += _work_pool(policy, client)
    for ref in block_refs(policy):
        if ref.slug and ref.name:
            out += _block(policy, client, ref)
    return out


POOL_TYPES = ("process", "kubernetes")


def _work_pool(policy: Policy, client) -> list[Problem]:
    from prefect.exceptions import ObjectNotFound

    name = policy.work_pool
    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        return [policy.problem(("work_pool",), f"work pool {name!r} does not exist (create it with `prefect "
                               f"work-pool create {name} --type process`, or start its worker first: `prefect "
                               f"worker start --pool {name} --type process`)")]
    if pool.type not in POOL_TYPES:
        return [policy.problem(("work_pool",), f"work pool {name!r} is a {pool.type!r} pool (allowed: a process "
                               "pool, whose flows run from this project's folder on the worker, or a kubernetes "
                               "pool running the image of deployments/kubernetes/Dockerfile)")]
    return []


def _block(policy: Policy, client, ref: BlockRef) -> list[Problem]:
    from prefect.exceptions import ObjectNotFound

    try:
        document = client.read_block_document_by_name(ref.name, block_type_slug=ref.slug)
    except ObjectNotFound:
        kinds = {VAULT: "vault", SOURCE: "PostgreSQL source", NODE: "PostgreSQL node", MARIADB: "MariaDB source",
                 REDIS: "Redis source"}
        what = kinds.get(ref.slug, "notification" if ref.notify else "")
        return [policy.problem(ref.loc, f"{what + ' ' if what else ''}block {ref.slug}/{ref.name} does not exist "
                               f"(save it first, e.g. in the UI under Blocks, or fix the name)")]
    capabilities = set(document.block_schema.capabilities if document.block_schema else [])
    if ref.notify and "notify" not in capabilities:
        return [policy.problem(ref.loc, f"block {ref.slug}/{ref.name} is not a notification block (allowed: a "
                               "block that can notify, e.g. slack-webhook, custom-webhook, email)")]
    return []

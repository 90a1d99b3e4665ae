"""Reading a policy file: YAML, then the models, then the checks that span several sections."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from seawall.errors import ConfigError
from seawall.policy.fields import human
from seawall.policy.model import Policy
from seawall.policy.problems import PolicyError, Problem, locate


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; raises PolicyError listing every located problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc.strerror}") from None
    return parse_policy(text, str(path))


def parse_policy(text: str, filename: str = "seawall.yaml") -> Policy:
    """Validate policy text (see `load_policy`)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # the node tree gives each problem its line
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError([Problem(filename, mark.line + 1 if mark else 1, "", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise PolicyError([Problem(filename, 1, "", "the file must be a mapping with vaults and datasets")])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError([locate(filename, root, e, Policy) for e in exc.errors()]) from None
    policy._source = (filename, root)
    problems = [policy.problem(loc, msg) for loc, msg in cross_checks(policy)]
    if problems:
        raise PolicyError(problems)
    return policy


def cross_checks(policy: Policy) -> list[tuple[tuple, str]]:
    """Checks across fields: vault names exist, roles fit, the schedule can meet the RPO."""
    from seawall.tiering import lifecycle_problems

    return [*_dataset_checks(policy), *_price_checks(policy), *lifecycle_problems(policy), *_drill_checks(policy)]


def _dataset_checks(policy: Policy) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    names = sorted(policy.vaults)
    for name, ds in policy.datasets.items():
        if not _dataset_name_ok(name):
            out.append((("datasets", name), f"invalid dataset name {name!r} (allowed: lowercase letters, digits, "
                        "'.', '_' or '-', at most 100; it names the dataset in the vaults)"))
        for key in ("vault", "copy_to"):
            ref = getattr(ds, key)
            if ref is not None and ref not in policy.vaults:
                out.append((("datasets", name, key), f"unknown vault {ref!r} (allowed: {', '.join(names)})"))
        if ds.copy_to is not None and ds.copy_to == ds.vault:
            out.append((("datasets", name, "copy_to"), "copy_to must name another vault than vault"))
        gap = ds.schedule.longest_gap()
        if gap > ds.rpo:
            out.append((("datasets", name, "rpo"), f"rpo {human(ds.rpo)} cannot be met: the schedule "
                        f"{ds.schedule.cron!r} leaves up to {human(gap)} between backups (allowed: rpo ≥ "
                        f"{human(gap)}, or a more frequent cron)"))
    return out


def _price_checks(policy: Policy) -> list[tuple[tuple, str]]:
    names = ", ".join(sorted(policy.vaults))
    return [(("readiness", "vault_prices", name), f"unknown vault {name!r} (allowed: {names})")
            for name in policy.readiness.vault_prices if name not in policy.vaults]


def _drill_checks(policy: Policy) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    allowed = ", ".join(sorted(policy.datasets))
    failover = policy.drills.failover
    if failover is not None and failover.dataset is not None and failover.dataset not in policy.datasets:
        out.append((("drills", "failover", "dataset"), f"unknown dataset {failover.dataset!r} (allowed: {allowed})"))
    drill = policy.drills.restore
    for i, ds_name in enumerate(drill.datasets or [] if drill else []):
        if ds_name not in policy.datasets:
            out.append((("drills", "restore", "datasets", i), f"unknown dataset {ds_name!r} (allowed: {allowed})"))
    return out


def _dataset_name_ok(name: str) -> bool:
    from seawall.manifest import validate_dataset

    try:
        validate_dataset(name)
    except ConfigError:
        return False
    return True

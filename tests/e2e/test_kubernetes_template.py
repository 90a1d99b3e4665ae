"""The Kubernetes work-pool template and image, checked without a cluster (issue 22, acceptance 3).

- `deployments/kubernetes/base-job-template.json`: its variables are a valid JSON schema whose
  defaults validate against it; every `{{ placeholder }}` of the job configuration is a declared
  variable (Prefect's own server-side check, and ours); it keeps every variable and configuration
  key of prefect-kubernetes' default template; prefect-kubernetes' `KubernetesWorkerJobConfiguration`
  turns it into the Job a worker would create for a flow run: the seawall image, the image's
  project folder as working directory, non-root, and secrets only through a Kubernetes secret
  (`envFrom`), never as plain values in the template.
- A real `prefect server` accepts it: `prefect work-pool create --type kubernetes --base-job-template`
  as a whole process, and `seawall deploy` puts a policy's deployments on that pool, each with the pull
  step that runs in the image's /opt/seawall (where the Dockerfile puts the project).
- The Dockerfile copies what exists, installs the PostgreSQL 15 client, and its WORKDIR is the one deploy uses.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

from tests.e2e.prefect_helpers import PASSPHRASE, ROOT, api, seawall, seawall_env

TEMPLATE = ROOT / "deployments" / "kubernetes" / "base-job-template.json"
DOCKERFILE = ROOT / "deployments" / "kubernetes" / "Dockerfile"
SECRETISH = re.compile(r"PASS|SECRET|TOKEN|KEY|DSN|PASSWORD|CREDENTIAL", re.I)


def _template() -> dict:
    return json.loads(TEMPLATE.read_text())


def test_variables_are_a_json_schema_and_every_placeholder_is_declared():
    import jsonschema
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect.utilities.templating import find_placeholders

    template = _template()
    schema = template["variables"]
    jsonschema.validators.validator_for(schema).check_schema(schema)
    defaults = {k: v["default"] for k, v in schema["properties"].items() if v.get("default") is not None}
    jsonschema.validate(defaults, schema)
    validate_base_job_template(template)  # what the server runs on create
    used = {p.name for p in find_placeholders(json.dumps(template["job_configuration"]))}
    assert used <= set(schema["properties"]), used - set(schema["properties"])
    assert {"secret_name", "ssh_secret_name", "scratch_size", "image"} <= used


def test_it_keeps_prefect_kubernetes_defaults_and_builds_a_job_with_secrets_from_a_secret(prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

    ours, default = _template(), KubernetesWorker.get_default_base_job_template()
    assert set(default["variables"]["properties"]) <= set(ours["variables"]["properties"])
    assert set(default["job_configuration"]) == set(ours["job_configuration"])
    for name, value in ours["variables"]["properties"]["env"]["default"].items():
        assert not SECRETISH.search(name), f"plain env {name} looks like a secret: put it in the k8s secret"
        assert PASSPHRASE not in value

    async def configuration():  # what the worker does with the pool's template for each flow run
        async with get_client() as client:
            return await KubernetesWorkerJobConfiguration.from_template_and_values(
                ours, {"image": "registry.example.com/seawall:0.1.0"}, client=client)

    with temporary_settings({PREFECT_API_URL: prefect_server["url"]}):
        config = asyncio.run(configuration())
    run = FlowRun(id=uuid.uuid4(), name="calm-otter", flow_id=uuid.uuid4())
    config.prepare_for_flow_run(run)
    job = config.job_manifest
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert job["kind"] == "Job" and job["metadata"]["namespace"] == "seawall"
    assert container["image"] == "registry.example.com/seawall:0.1.0"
    assert container["workingDir"] == "/opt/seawall"
    assert container["envFrom"] == [{"secretRef": {"name": "seawall-secrets"}}]
    assert container["args"] == ["prefect", "flow-run", "execute"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PREFECT__FLOW_RUN_ID"] == str(run.id)
    assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "60"  # crash detection needs heartbeats
    assert not [name for name in env if SECRETISH.search(name) and name != "PREFECT_API_KEY"], env
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"scratch": "/tmp", "ssh": "/home/seawall/.ssh"}
    ssh = next(v for v in pod["volumes"] if v["name"] == "ssh")["secret"]
    assert ssh == {"secretName": "seawall-ssh", "optional": True, "defaultMode": 0o400}


def test_a_real_server_takes_the_pool_and_deploy_puts_the_policy_on_it(prefect_server, tmp_path):
    from seawall.vault import init_vault

    pool = f"seawall-k8s-{uuid.uuid4().hex[:6]}"
    env = seawall_env(prefect_server)
    created = subprocess.run([sys.executable, "-m", "prefect", "work-pool", "create", pool, "--type", "kubernetes",
                              "--base-job-template", str(TEMPLATE)], env=env, capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    vault = f"file://{tmp_path / 'vault k8s'}"
    init_vault(vault, PASSPHRASE)
    policy = tmp_path / "seawall.yaml"
    policy.write_text(f"""\
version: 1
work_pool: {pool}
vaults:
  main: {{url: "{vault}"}}
datasets:
  k8s-db:
    postgres: {{dsn_env: K8S_DB_DSN}}
    vault: main
    rpo: 26h
    rto: 1h
    schedule: {{cron: "0 2 * * *", timezone: Europe/Berlin}}
    verify: false
""")
    deployed = seawall(env, "deploy", "--policy", str(policy))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    with api(prefect_server) as client:
        saved = client.read_work_pool(pool)
        deployment = client.read_deployment_by_name("backup-postgres/nightly-k8s-db")
        client.delete_deployment(deployment.id)
        client.delete_work_pool(pool)
    assert saved.type == "kubernetes"
    assert saved.base_job_template == _template()
    assert deployment.work_pool_name == pool
    assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/seawall"}}]
    assert deployment.parameters["source"] == "env:K8S_DB_DSN"  # read from the pod's env (the k8s secret)


def test_the_dockerfile_copies_what_exists_and_works_where_deploy_points():
    from deployments.apply import IMAGE_WORKDIR

    text = DOCKERFILE.read_text()
    assert f"WORKDIR {IMAGE_WORKDIR}\n" in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), line
    assert "postgresql-client-15" in text
    assert re.search(r"^USER 10001$", text, re.M)
    assert not re.search(r"^(ENV|ARG)\b.*(PASSPHRASE|PASSWORD|SECRET)", text, re.M | re.I)
    for package in ("seawall", "flows", "tasks", "blocks", "deployments"):
        assert f"COPY {package} ./{package}" in text, package
    assert Path(ROOT / "uv.lock").exists()

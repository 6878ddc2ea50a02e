"""The Helm chart, offline: rendered by the Helm library embedded in helm-python-sdk (no helm binary, no
cluster), linted strictly, every manifest validated by kubernetes-validate in strict mode against the
newest Kubernetes it ships, for the default values and the two documented sets in helm/eci-platform/ci/.
Then the properties that matter: the security context of every container, the migration hook, the
singleton beat, no secret in values, the refusals."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from eci_platform.embedded import REPOSITORY_ROOT

try:
    import helm_python as helm
    import kubernetes_validate

    helm.helm_sdk_version()  # loads the embedded Helm library
except (ImportError, OSError) as error:  # pragma: no cover - only where the wheels cannot load
    pytest.skip(
        f"helm-python-sdk or kubernetes-validate cannot load here ({error}); install the dev extra "
        "(pip install -e '.[dev]') on a platform their wheels support",
        allow_module_level=True,
    )

CHART = REPOSITORY_ROOT / "helm" / "eci-platform"
VALUE_SETS: dict[str, Path | None] = {
    "default": None,
    "minimal": CHART / "ci" / "minimal-values.yaml",
    "full": CHART / "ci" / "full-values.yaml",
}
# The newest Kubernetes whose schemas kubernetes-validate ships.
KUBERNETES_VERSION = kubernetes_validate.latest_version()
RELEASE = "eci"
NAMESPACE = "collection"
QUEUES = {"default", "exports", "keys", "maintenance"}
SECRET_VARIABLES = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "EMAIL_URL"}
OPTIONAL_SECRET_VARIABLES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def values_of(value_set: str) -> dict[str, Any] | None:
    path = VALUE_SETS[value_set]
    return None if path is None else helm.values_from_yaml(path.read_text())


def render(values: dict[str, Any] | None, *, is_upgrade: bool = False) -> dict[str, str]:
    with helm.Chart.load(CHART) as chart:
        return chart.render(
            values=values, name=RELEASE, namespace=NAMESPACE, is_install=not is_upgrade, is_upgrade=is_upgrade
        )


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for template, text in sorted(rendered.items()):
        if not template.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        documents.extend(document for document in yaml.safe_load_all(text) if document)
    return documents


def render_refused(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmRenderError) as refused:
        render(values)
    return str(refused.value)


def merged(base: dict[str, Any] | None, override: dict[str, Any]) -> dict[str, Any]:
    with helm.Chart.load(CHART) as chart:
        values = chart.merge_values(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return values


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def value_set(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def rendered_sets() -> dict[str, list[dict[str, Any]]]:
    return {name: manifests(render(values_of(name))) for name in VALUE_SETS}


@pytest.fixture(scope="module")
def documents(value_set: str, rendered_sets: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered_sets[value_set]


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [document for document in documents if document["kind"] == kind]


def named(documents: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    (found,) = [
        d for d in of_kind(documents, kind) if d["metadata"]["name"] == f"{RELEASE}-eci-platform{suffix}"
    ]
    return found


def pod_specs(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for document in documents:
        if document["kind"] in {"Deployment", "Job"}:
            yield document["metadata"]["name"], document["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in container.get("env", [])}


# Rendering, lint and schema validation.


def test_every_value_set_renders_the_workloads(documents: list[dict[str, Any]]) -> None:
    kinds = {document["kind"] for document in documents}
    assert {"ConfigMap", "Deployment", "Job", "Service", "Ingress", "PodDisruptionBudget"} <= kinds
    deployments = {d["metadata"]["name"] for d in of_kind(documents, "Deployment")}
    assert f"{RELEASE}-eci-platform-web" in deployments
    assert f"{RELEASE}-eci-platform-beat" in deployments
    assert any("-worker-" in name for name in deployments)


def test_helm_lint_strict_passes(value_set: str) -> None:
    report = helm.lint(
        CHART, values_of(value_set), strict=True, namespace=NAMESPACE, kube_version=f"v{KUBERNETES_VERSION}"
    )
    assert report["errors"] == []
    # Severity 2 is a warning (which --strict makes an error), 3 an error; 1 is information.
    assert [message for message in report["messages"] if message["severity"] >= 2] == []


def test_every_manifest_is_valid_for_current_kubernetes_in_strict_mode(
    documents: list[dict[str, Any]],
) -> None:
    for document in documents:
        if document["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD's kind: kubernetes-validate has no schema for it (checked below)
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{document['kind']} {document['metadata']['name']}: {error.message} at {error.path}")


def test_an_invalid_manifest_is_caught_by_the_validator() -> None:
    """The check above can fail: a misspelt field is refused in strict mode."""
    deployment = named(manifests(render(None)), "Deployment", "-web")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# Security of every pod and container.


def test_every_container_runs_confined(documents: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(documents):
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["runAsUser"] == 10001, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["privileged"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            # The root is read-only: /tmp is an emptyDir.
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert mounts["/tmp"] == "tmp", name  # noqa: S108 - a path in a manifest, not a file we open
    for account in of_kind(documents, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_no_secret_is_rendered_and_secrets_come_from_the_existing_secret(
    documents: list[dict[str, Any]], value_set: str
) -> None:
    assert of_kind(documents, "Secret") == []
    secret_name = (values_of(value_set) or {}).get("secrets", {}).get("existingSecret", "eci-platform")
    (config_map,) = of_kind(documents, "ConfigMap")
    assert not (SECRET_VARIABLES | OPTIONAL_SECRET_VARIABLES) & set(config_map["data"])
    for name, spec in pod_specs(documents):
        for container in spec["containers"]:
            env = env_of(container)
            for variable in SECRET_VARIABLES | OPTIONAL_SECRET_VARIABLES:
                assert "value" not in env[variable], (name, variable)
                reference = env[variable]["valueFrom"]["secretKeyRef"]
                assert reference == {
                    "name": secret_name,
                    "key": variable,
                    **({"optional": True} if variable in OPTIONAL_SECRET_VARIABLES else {}),
                }, (name, variable)


def test_export_signing_files_are_mounted_where_the_settings_look(documents: list[dict[str, Any]]) -> None:
    (config_map,) = of_kind(documents, "ConfigMap")
    key_file = Path(config_map["data"]["EXPORT_SIGNING_KEY_FILE"])
    certificate_file = Path(config_map["data"]["EXPORT_SIGNING_CERTIFICATE_FILE"])
    assert key_file.parent == certificate_file.parent
    for name, spec in pod_specs(documents):
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        secret = volumes["export-signing"]["secret"]
        assert {item["path"] for item in secret["items"]} == {key_file.name, certificate_file.name}, name
        assert secret["defaultMode"] == 0o440, name
        (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "export-signing"]
        assert mount["mountPath"] == str(key_file.parent) and mount["readOnly"] is True, name


def test_production_settings_are_forced(documents: list[dict[str, Any]]) -> None:
    (config_map,) = of_kind(documents, "ConfigMap")
    data = config_map["data"]
    assert data["DEBUG"] == "0"
    assert data["KEY_PROVIDER"] == "aws-kms"
    assert data["EXPORT_STORAGE_URL"].startswith("s3://")
    assert not {"LOCAL_MASTER_KEY_FILE", "LOCAL_KEYSTORE_DIR", "CELERY_TASK_ALWAYS_EAGER"} & set(data)
    # Whole numbers reach the environment as integers, never 3.1536e+07.
    assert all(not re.fullmatch(r"[0-9.]+e[+-][0-9]+", value) for value in data.values())


# The workloads.


def test_the_migration_job_is_a_pre_install_and_pre_upgrade_hook(documents: list[dict[str, Any]]) -> None:
    job = named(documents, "Job", "-migrate")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    assert container["command"] == ["django-admin", "migrate_platform"]
    # It runs before the release's ConfigMap exists: the configuration is inline, the same as the ConfigMap.
    (config_map,) = of_kind(documents, "ConfigMap")
    env = env_of(container)
    assert {name: env[name]["value"] for name in config_map["data"]} == config_map["data"]
    assert "envFrom" not in container or all("configMapRef" not in source for source in container["envFrom"])
    # And its ServiceAccount, if the chart makes one, is a hook made before it.
    account_name = spec["serviceAccountName"]
    accounts = {a["metadata"]["name"]: a for a in of_kind(documents, "ServiceAccount")}
    if account_name in accounts:
        hook = accounts[account_name]["metadata"]["annotations"]
        assert set(hook["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
        assert int(hook["helm.sh/hook-weight"]) < int(annotations.get("helm.sh/hook-weight", "0"))


def test_beat_is_a_singleton_with_its_schedule_in_an_empty_dir(documents: list[dict[str, Any]]) -> None:
    beat = named(documents, "Deployment", "-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    spec = beat["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"][:4] == ["celery", "--app=eci_platform", "--quiet", "beat"]
    (schedule,) = [argument for argument in container["command"] if argument.startswith("--schedule=")]
    schedule_dir = str(Path(schedule.split("=", 1)[1]).parent)
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert "emptyDir" in volumes[mounts[schedule_dir]]
    assert not [
        h for h in of_kind(documents, "HorizontalPodAutoscaler") if h["metadata"]["name"].endswith("-beat")
    ]


def test_web_probes_and_ports(documents: list[dict[str, Any]]) -> None:
    web = named(documents, "Deployment", "-web")
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["gunicorn", "eci_platform.wsgi"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    service = named(documents, "Service", "-web")
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]


def test_one_worker_deployment_per_group_serving_every_queue(
    documents: list[dict[str, Any]], value_set: str
) -> None:
    groups = (values_of(value_set) or {}).get("workers", {}).get("groups")
    workers = [d for d in of_kind(documents, "Deployment") if "-worker-" in d["metadata"]["name"]]
    if groups:
        assert len(workers) == len(groups)
    served: set[str] = set()
    for worker in workers:
        (container,) = worker["spec"]["template"]["spec"]["containers"]
        assert container["command"][:4] == ["celery", "--app=eci_platform", "--quiet", "worker"]
        (queues,) = [argument for argument in container["command"] if argument.startswith("--queues=")]
        served |= set(queues.removeprefix("--queues=").split(","))
        # Liveness: the worker's own node answers a ping over the broker.
        probe = " ".join(container["livenessProbe"]["exec"]["command"])
        assert "app.control.ping" in probe and 'os.environ["HOSTNAME"]' in probe
    assert served == QUEUES


def test_the_worker_liveness_probe_answers_for_its_own_node_only(tmp_path: Path) -> None:
    """The probe command as rendered, run against a real worker on Redis: it passes while the worker of
    its HOSTNAME answers and fails for a node that is not there."""
    from django.conf import settings

    from tests.processes import platform_environment

    worker_deployment = named(manifests(render(None)), "Deployment", "-worker-general")
    (container,) = worker_deployment["spec"]["template"]["spec"]["containers"]
    program, *arguments = container["livenessProbe"]["exec"]["command"]
    assert program == "python"
    # A Redis database of its own: no other test's messages, no other worker answering.
    environment = platform_environment(
        tmp_path / "keystore", REDIS_URL=settings.REDIS_URL.rsplit("/", 1)[0] + "/13"
    )
    node = f"probe-{os.getpid()}"
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "--app=eci_platform", "worker", "--pool=solo"),
            *("--queues=default", "--without-mingle", "--without-gossip", f"--hostname=celery@{node}"),
        ],
        cwd=REPOSITORY_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def probe(hostname: str) -> int:
        return subprocess.run(
            [sys.executable, *arguments],
            cwd=REPOSITORY_ROOT,
            env={**environment, "HOSTNAME": hostname},
            capture_output=True,
            timeout=60,
            check=False,
        ).returncode

    try:
        deadline = time.monotonic() + 60
        while probe(node) != 0:
            assert worker.poll() is None, "the worker ended"
            assert time.monotonic() < deadline, "the probe never passed for the running worker"
        assert probe(f"{node}-gone") != 0
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert probe(node) != 0  # and once the worker has stopped


def test_ingress_serves_the_domain_and_its_wildcard_over_tls_and_never_metrics(
    documents: list[dict[str, Any]], value_set: str
) -> None:
    domain = (values_of(value_set) or {}).get("platformDomain", "eci.example.org")
    (ingress,) = of_kind(documents, "Ingress")
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert hosts == [domain, f"*.{domain}"]
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [domain, f"*.{domain}"] and tls["secretName"]
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"] == {
                "name": f"{RELEASE}-eci-platform-web",
                "port": {"name": "http"},
            }
    # The metrics port is only on the headless metrics Service, which no Ingress names.
    metrics = named(documents, "Service", "-metrics")
    assert metrics["spec"]["clusterIP"] == "None"
    assert [port["name"] for port in metrics["spec"]["ports"]] == ["metrics"]


def test_metrics_port_on_web_and_workers_only(documents: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(documents):
        (container,) = spec["containers"]
        ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
        serves_metrics = name.endswith("-web") or "-worker-" in name
        assert ("metrics" in ports) == serves_metrics, name
        assert ("METRICS_PORT" in env_of(container)) == serves_metrics, name
        if serves_metrics:
            assert env_of(container)["METRICS_PORT"]["value"] == str(ports["metrics"])


# The full set: autoscaling, ServiceMonitor, NetworkPolicies.


def test_full_set_autoscales_web_and_export_workers(rendered_sets: dict[str, list[dict[str, Any]]]) -> None:
    documents = rendered_sets["full"]
    targets = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind(documents, "HorizontalPodAutoscaler")}
    assert targets == {f"{RELEASE}-eci-platform-web", f"{RELEASE}-eci-platform-worker-exports"}
    for target in targets:
        (deployment,) = [d for d in of_kind(documents, "Deployment") if d["metadata"]["name"] == target]
        assert "replicas" not in deployment["spec"]  # the HPA owns it
    assert of_kind(rendered_sets["default"], "HorizontalPodAutoscaler") == []


def test_full_set_has_a_service_monitor_for_the_metrics_service(
    rendered_sets: dict[str, list[dict[str, Any]]],
) -> None:
    documents = rendered_sets["full"]
    (monitor,) = of_kind(documents, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    metrics = named(documents, "Service", "-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert of_kind(rendered_sets["default"], "ServiceMonitor") == []


def test_full_set_network_policies_confine_every_pod(rendered_sets: dict[str, list[dict[str, Any]]]) -> None:
    documents = rendered_sets["full"]
    policies = {
        p["metadata"]["name"].removeprefix(f"{RELEASE}-eci-platform-"): p["spec"]
        for p in of_kind(documents, "NetworkPolicy")
    }
    release = {"app.kubernetes.io/name": "eci-platform", "app.kubernetes.io/instance": RELEASE}
    # Ingress: refused to every pod of the release, but HTTP from the ingress controller to web and the
    # metrics port from the monitoring namespace.
    assert policies["deny-ingress"] == {"podSelector": {"matchLabels": release}, "policyTypes": ["Ingress"]}
    (web_rule,) = policies["web-ingress"]["ingress"]
    assert web_rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    (controller,) = web_rule["from"]
    assert controller["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert controller["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}
    (metrics_rule,) = policies["metrics-ingress"]["ingress"]
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    # Egress: DNS, then exactly the CIDRs and ports of the values.
    egress = policies["egress"]
    assert egress["podSelector"] == {"matchLabels": release} and egress["policyTypes"] == ["Egress"]
    dns, *destinations = egress["egress"]
    assert {(port["port"], port["protocol"]) for port in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    allowed = {(rule["to"][0]["ipBlock"]["cidr"], rule["ports"][0]["port"]) for rule in destinations}
    assert allowed == {
        ("10.20.0.10/32", 5432),
        ("10.20.1.0/28", 6379),
        ("10.20.8.0/24", 443),
        ("10.20.9.0/24", 443),
        ("10.20.2.25/32", 587),
    }
    assert of_kind(rendered_sets["default"], "NetworkPolicy") == []


# Refusals, each with a message that says what to do.


def test_the_local_key_provider_is_refused() -> None:
    message = render_refused(merged(None, {"config": {"KEY_PROVIDER": "local"}}))
    assert "config.KEY_PROVIDER=local is refused on Kubernetes" in message
    assert "Set config.KEY_PROVIDER to aws-kms" in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"config": {"KEY_PROVIDER": "vault"}},
            'config.KEY_PROVIDER must be aws-kms on Kubernetes, not "vault"',
        ),
        ({"config": {"EXPORT_STORAGE_URL": "/var/exports"}}, "config.EXPORT_STORAGE_URL must be an s3://"),
        ({"config": {"SECRET_KEY": "x" * 50}}, "config.SECRET_KEY is a secret"),
        ({"config": {"DATABASE_URL": "postgres://u:p@db/eci"}}, "config.DATABASE_URL is a secret"),
        ({"config": {"DEBUG": "1"}}, "config.DEBUG is set by the chart"),
        ({"config": {"LOCAL_KEYSTORE_DIR": "/keys"}}, "config.LOCAL_KEYSTORE_DIR is for development"),
        ({"platformDomain": ""}, "platformDomain is required"),
        ({"platformDomain": "Collect.Example.net/x"}, "is not a lower-case DNS name"),
        ({"secrets": {"existingSecret": ""}}, "secrets.existingSecret is required"),
        ({"exportSigning": {"existingSecret": ""}}, "exportSigning.existingSecret is required"),
        ({"ingress": {"tlsSecretName": ""}}, "ingress.tlsSecretName is required"),
        (
            {"workers": {"groups": [{"name": "all", "queues": ["default", "exports", "keys"]}]}},
            'no workers.groups entry serves the "maintenance" queue',
        ),
        (
            {
                "workers": {
                    "groups": [{"name": "all", "queues": ["default", "exports", "keys", "maintenance", "x"]}]
                }
            },
            'unknown queue "x"',
        ),
        (
            {
                "workers": {
                    "groups": [
                        {"name": "a", "queues": ["default", "maintenance"]},
                        {"name": "a", "queues": ["exports", "keys"]},
                    ]
                }
            },
            'name "a" is used twice',
        ),
        ({"networkPolicy": {"enabled": True}}, "networkPolicy.postgresql is required"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(override: dict[str, Any], expected: str) -> None:
    assert expected in render_refused(merged(values_of("minimal"), override))


def test_misspelt_or_mistyped_values_are_refused_by_the_schema_and_by_lint() -> None:
    misspelt = {**(values_of("minimal") or {}), "platfromDomain": "collect.example.net"}
    with pytest.raises(helm.HelmValuesError, match="additional properties 'platfromDomain' not allowed"):
        render(misspelt)
    report = helm.lint(CHART, misspelt, strict=True)
    assert any("platfromDomain" in error for error in report["errors"])
    mistyped = merged(
        values_of("full"),
        {"networkPolicy": {"enabled": True, "redis": [{"cidr": "10.0.0.1/32", "port": "redis"}]}},
    )
    with pytest.raises(helm.HelmValuesError, match="/networkPolicy/redis/0/port"):
        render(mistyped)


def test_one_worker_group_for_every_queue_is_accepted() -> None:
    values = merged(
        values_of("minimal"), {"workers": {"groups": [{"name": "all", "queues": sorted(QUEUES)}]}}
    )
    workers = [
        d for d in of_kind(manifests(render(values)), "Deployment") if "-worker-" in d["metadata"]["name"]
    ]
    assert [w["metadata"]["name"] for w in workers] == [f"{RELEASE}-eci-platform-worker-all"]


def test_notes_say_what_to_do_next() -> None:
    notes = render(values_of("minimal"))["eci-platform/templates/NOTES.txt"]
    assert "django-admin createsuperuser" in notes
    assert "set_authority --country CC --certificate" in notes and "--confirm FINGERPRINT" in notes
    assert "*.collect.example.net" in notes
    assert "placeholders" not in notes
    assert "placeholders" in render(None)["eci-platform/templates/NOTES.txt"]
    upgraded = render(values_of("minimal"), is_upgrade=True)
    assert "is upgraded as eci" in upgraded["eci-platform/templates/NOTES.txt"]
    assert "eci-platform/templates/migrate-job.yaml" in upgraded  # the hook runs at every upgrade


# The values file and the docs agree with the settings.

SETTINGS_PROBE = """
import json
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "KEY_PROVIDER": settings.KEY_PROVIDER,
    "EXPORT_STORAGE_URL": settings.EXPORT_STORAGE_URL,
    "EXPORT_SIGNING_KEY_FILE": settings.EXPORT_SIGNING_KEY_FILE,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_PRELOAD": settings.SECURE_HSTS_PRELOAD,
    "TRUSTED_PROXY_HOPS": settings.TRUSTED_PROXY_HOPS,
    "HOST_CACHE_SECONDS": settings.HOST_CACHE_SECONDS,
    "EXPORT_S3_PART_BYTES": settings.EXPORT_S3_PART_BYTES,
}))
"""


def test_the_rendered_environment_satisfies_the_production_settings(
    rendered_sets: dict[str, list[dict[str, Any]]],
) -> None:
    """The web container's environment (ConfigMap plus the Secret's keys, made up here) loads the real
    settings with DEBUG off: every required variable is there under its real name, numbers parse."""
    documents = rendered_sets["full"]
    (config_map,) = of_kind(documents, "ConfigMap")
    secrets = {
        "SECRET_KEY": "k" * 50,
        "DATABASE_URL": "postgres://eci:pw@db.invalid:5432/eci",
        "REDIS_URL": "redis://redis.invalid:6379/0",
        "EMAIL_URL": "smtp+tls://mailer:pw@smtp.invalid:587",
    }
    environment = {"PATH": os.environ["PATH"], **config_map["data"], **secrets}
    result = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    settings = json.loads(result.stdout.strip().splitlines()[-1])
    assert settings["DEBUG"] is False
    assert settings["KEY_PROVIDER"] == "aws-kms"
    assert settings["EXPORT_STORAGE_URL"] == "s3://collect-exports/eci"
    assert settings["EXPORT_SIGNING_KEY_FILE"] == "/etc/eci-platform/export-signing/tls.key"
    assert settings["ALLOWED_HOSTS"][:2] == ["collect.example.net", ".collect.example.net"]
    assert settings["SECURE_HSTS_SECONDS"] == 63072000 and settings["SECURE_HSTS_PRELOAD"] is True
    assert settings["TRUSTED_PROXY_HOPS"] == 2
    assert settings["HOST_CACHE_SECONDS"] == 2.5
    assert settings["EXPORT_S3_PART_BYTES"] == 16777216


DEVELOPMENT_ONLY = {
    "ECI_DATA_DIR",
    "STATIC_ROOT",
    "CELERY_TASK_ALWAYS_EAGER",
    "LOCAL_MASTER_KEY",
    "LOCAL_MASTER_KEY_FILE",
    "LOCAL_KEYSTORE_DIR",
    "ECI_BUILD_MODE",  # the image's build only (python -m eci_platform.build_assets): it refuses to serve
}
SET_BY_THE_CHART = {
    "DEBUG",
    "PLATFORM_DOMAIN",
    "EXPORT_SIGNING_KEY_FILE",
    "EXPORT_SIGNING_CERTIFICATE_FILE",
    "METRICS_PORT",
}


def documented_variables() -> set[str]:
    """The variables of docs/configuration.md's table, `..._HARD` abbreviations spelt out."""
    text = (REPOSITORY_ROOT / "docs" / "configuration.md").read_text()
    names: set[str] = set()
    for row in re.findall(r"^\| (.+?) \|", text, flags=re.MULTILINE):
        previous = ""
        for name in re.findall(r"`([A-Z0-9_.]+)`", row):
            if name.startswith("..."):
                name = previous.rsplit("_", 1)[0] + name.removeprefix("...")
            names.add(name)
            previous = name
    return names


def test_config_values_are_the_documented_non_secret_variables() -> None:
    with helm.Chart.load(CHART) as chart:
        config = set(chart.values["config"])
    documented = documented_variables()
    assert "RATE_LIMIT_NETWORK_HARD" in documented  # the abbreviation was spelt out
    assert config <= documented, config - documented
    expected = documented - SECRET_VARIABLES - DEVELOPMENT_ONLY - SET_BY_THE_CHART
    assert expected <= config, expected - config


def test_every_value_is_commented() -> None:
    """Each key of values.yaml has a comment on the line above. Exempt: the items of a list (worker groups,
    peers: the comment above the list describes them) and a selector's labels (Kubernetes' own shape)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    uncommented = []
    data_indent: int | None = None  # inside a list or a matchLabels map begun at this indentation
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if data_indent is not None:
            if stripped and indent <= data_indent and not stripped.startswith("-"):
                data_indent = None
            else:
                continue
        if not re.match(r"[A-Za-z_][\w.-]*:", stripped):
            continue
        if stripped == "matchLabels:":
            data_indent = indent
            continue
        if stripped.endswith(":") and number + 1 < len(lines) and lines[number + 1].lstrip().startswith("- "):
            data_indent = indent
        above = lines[number - 1].lstrip() if number else ""
        if not above.startswith("#"):
            uncommented.append(f"{number + 1}: {stripped}")
    assert uncommented == []


def test_deploying_doc_names_the_secret_keys_and_commands() -> None:
    text = (REPOSITORY_ROOT / "docs" / "deploying.md").read_text()
    kubernetes = text.split("## Kubernetes", 1)[1]
    for key in SECRET_VARIABLES | OPTIONAL_SECRET_VARIABLES:
        assert f"`{key}`" in kubernetes, key
    assert "helm upgrade --install" in kubernetes
    assert "pre-install" in kubernetes and "pre-upgrade" in kubernetes

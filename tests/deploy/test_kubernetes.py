"""deploy/kubernetes: schema-valid manifests (the official OpenAPI-derived JSON schemas that the
``kubernetes-validate`` package ships, strict: unknown fields are errors), and the structure a safe
rollout needs: non-root hardened containers, probes on routes the app serves, resources, pinned
images, selectors that match, a ConfigMap whose gateway.yaml loads with the Secret's placeholders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from gateway.settings.loader import load_settings
from tests.deploy.support import KUBERNETES, app_paths, load_yaml, references

KUSTOMIZATION: dict[str, Any] = load_yaml(KUBERNETES / "kustomization.yaml")[0]
MANIFESTS = sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
DOCS: dict[str, dict[str, Any]] = {doc["kind"]: doc for path in MANIFESTS for doc in load_yaml(path)}
DEPLOYMENT = DOCS["Deployment"]
POD = DEPLOYMENT["spec"]["template"]["spec"]
SELECTOR = DEPLOYMENT["spec"]["selector"]["matchLabels"]
VERSIONS = [kubernetes_validate.latest_version(), "1.30.0"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_matches_the_kubernetes_schema(path: Path, version: str) -> None:
    for doc in load_yaml(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_schema_validation_can_fail() -> None:
    broken = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest_but_the_ingress_example_and_the_secret_template() -> None:
    listed = set(KUSTOMIZATION["resources"])
    assert listed == {p.name for p in MANIFESTS} - {"ingress.yaml", "secret.yaml"}
    assert all((KUBERNETES / name).is_file() for name in listed)


def test_deployment_has_two_replicas_and_a_surge_rollout() -> None:
    spec = DEPLOYMENT["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert DEPLOYMENT["spec"]["template"]["metadata"]["labels"] == SELECTOR


def test_pods_run_non_root_hardened() -> None:
    assert POD["securityContext"]["runAsNonRoot"] is True
    assert POD["securityContext"]["runAsUser"] == 10001
    assert POD["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert POD["automountServiceAccountToken"] is False
    for container in POD["containers"] + POD.get("initContainers", []):
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_containers_set_resources_and_pinned_images() -> None:
    pinned = {image["name"]: image["newTag"] for image in KUSTOMIZATION["images"]}
    for container in POD["containers"]:
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
        name, _, tag = container["image"].partition(":")
        assert tag and tag != "latest"
        assert pinned.get(name, tag) not in ("", "latest")


def test_probes_point_at_routes_the_gateway_serves(tmp_path: Path) -> None:
    paths = app_paths(_load_configmap(tmp_path))
    container = POD["containers"][0]
    expected = {
        "startupProbe": "/healthz/live",
        "livenessProbe": "/healthz/live",
        "readinessProbe": "/healthz/ready",
    }
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path and path in paths
        assert get["port"] in port_names
    assert port_names["http"] == int(container["args"][container["args"].index("--port") + 1])


def test_topology_spread_over_nodes() -> None:
    constraints = POD["topologySpreadConstraints"]
    assert any(c["topologyKey"] == "kubernetes.io/hostname" for c in constraints)
    assert all(c["labelSelector"]["matchLabels"] == SELECTOR for c in constraints)


def test_service_and_disruption_budget_select_the_deployment_pods() -> None:
    assert DOCS["Service"]["spec"]["selector"] == SELECTOR
    assert DOCS["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    budget = DOCS["PodDisruptionBudget"]["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"] == SELECTOR


def test_config_is_mounted_read_only_as_a_directory() -> None:
    container = POD["containers"][0]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    config = mounts["config"]
    assert config["mountPath"] == "/etc/gateway" and config["readOnly"] is True
    assert "subPath" not in config  # a subPath mount never sees ConfigMap updates (hot reload)
    volumes = {v["name"]: v for v in POD["volumes"]}
    assert volumes["config"]["configMap"]["name"] == DOCS["ConfigMap"]["metadata"]["name"]
    assert "--config" in container["args"] and "/etc/gateway/gateway.yaml" in container["args"]
    assert {"tmp", "data"} <= set(mounts)  # the only writable places


def _secret() -> dict[str, str]:
    data: dict[str, str] = DOCS["Secret"]["stringData"]
    return data


def _load_configmap(directory: Path) -> Any:
    path = directory / "gateway.yaml"
    path.write_text(DOCS["ConfigMap"]["data"]["gateway.yaml"])
    return load_settings(path, environ=_secret())


def test_secret_holds_placeholders_only_and_feeds_the_config(tmp_path: Path) -> None:
    secret = _secret()
    assert all("replace-with" in value for value in secret.values())
    assert "data" not in DOCS["Secret"]  # no base64 blobs that could hide a real value
    needed = references(DOCS["ConfigMap"]["data"]["gateway.yaml"])
    assert needed == set(secret)
    container = POD["containers"][0]
    assert {"secretRef": {"name": DOCS["Secret"]["metadata"]["name"]}} in container["envFrom"]


def test_configmap_config_loads(tmp_path: Path) -> None:
    settings = _load_configmap(tmp_path)
    assert settings.issuer.startswith("https://")
    assert settings.store.startswith("rediss://")
    assert settings.http.trusted_proxies


def test_ingress_routes_the_issuer_host_to_the_service(tmp_path: Path) -> None:
    ingress = DOCS["Ingress"]["spec"]
    host = _load_configmap(tmp_path).issuer.removeprefix("https://")
    assert ingress["rules"][0]["host"] == host and host in ingress["tls"][0]["hosts"]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == DOCS["Service"]["metadata"]["name"]

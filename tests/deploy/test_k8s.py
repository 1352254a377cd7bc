"""The Kubernetes manifests (deploy/k8s) parse, match the API's schemas, and agree with the code:
the commands exist, the ports and probe paths are the app's, every DEFECTLAB_* variable is a
setting, and every workload keeps the securityContext and update rules issue 13 asks for."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from django.urls import resolve

from defectlab.cli import main
from defectlab.settings import SETTINGS
from tests.deploy.kube import (
    K8S,
    containers,
    env_of,
    find,
    kubectl,
    largest_body_mb,
    load_all,
    load_kustomization,
    probe_port,
    render,
    render_with_kubectl,
    validate,
    workload_problems,
)

KUSTOMIZATIONS = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))
OVERLAYS = [path for path in KUSTOMIZATIONS if path.parent.name == "overlays"]
# Each role: its command, the setting of the port it listens on and the paths it answers.
ROLES = {
    "web": ("serve", "DEFECTLAB_PORT"),
    "worker": ("worker", "DEFECTLAB_WORKER_METRICS_PORT"),
    "inference": ("serve-inference", "DEFECTLAB_INFERENCE_PORT"),
}
# The worker's probe server (another part of issue 13) listens on 8081 unless told otherwise.


def _id(path: Path) -> str:
    return str(path.relative_to(K8S))


def test_there_is_a_base_a_production_overlay_and_the_dedicated_tenant() -> None:
    assert {_id(path) for path in KUSTOMIZATIONS} >= {
        "base",
        "overlays/production",
        "overlays/dedicated-tenant",
    }


@pytest.mark.parametrize("path", sorted(K8S.rglob("*.yaml")), ids=_id)
def test_every_manifest_file_matches_the_kubernetes_schema(path: Path) -> None:
    for document in load_all(path):
        if document.get("kind") == "Kustomization":
            continue
        validate(document)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_id)
def test_every_kustomization_names_files_that_exist(directory: Path) -> None:
    spec = load_all(directory / "kustomization.yaml")[0]
    for entry in [*spec.get("resources", []), *(p["path"] for p in spec.get("patches", []))]:
        assert (directory / entry).exists(), f"{_id(directory)} names {entry}, which is missing"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_id)
def test_every_rendered_object_matches_the_kubernetes_schema(directory: Path) -> None:
    documents = render(directory)
    assert documents
    for document in documents:
        validate(document)


@pytest.mark.skipif(kubectl() is None, reason="kubectl is not installed")
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_id)
def test_the_test_loader_renders_as_kubectl_does(directory: Path) -> None:
    def keyed(documents: list[dict]) -> dict:  # type: ignore[type-arg]
        return {(d["kind"], d["metadata"]["name"]): d for d in documents}

    tool = kubectl()
    assert tool is not None
    assert keyed(load_kustomization(directory)) == keyed(render_with_kubectl(tool, directory))


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_id)
def test_every_workload_is_locked_down_probed_and_updated_without_dropping_a_pod(
    directory: Path,
) -> None:
    workloads = [d for d in render(directory) if d["kind"] == "Deployment"]
    assert workloads
    problems = [problem for document in workloads for problem in workload_problems(document)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_id)
def test_every_defectlab_variable_set_is_a_documented_setting(directory: Path) -> None:
    names = set()
    for document in render(directory):
        if document["kind"] == "ConfigMap":
            names |= set(document.get("data", {}))
        for container in containers(document):
            names |= set(env_of(container))
    names = {name for name in names if name.startswith("DEFECTLAB_")}
    assert names
    assert not names - set(SETTINGS), f"not settings: {sorted(names - set(SETTINGS))}"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_id)
def test_every_command_run_is_a_defectlab_command(directory: Path) -> None:
    commands = main.list_commands(click.Context(main))
    for document in render(directory):
        for container in containers(document):
            assert "command" not in container, "the image's entry point is `defectlab`"
            assert container["args"][0] in commands, container["args"]


def _role(document: dict) -> str:  # type: ignore[type-arg]
    return str(document["metadata"]["labels"]["app.kubernetes.io/component"])


def _listening_port(role: str, container: dict, config: dict[str, str]) -> int:  # type: ignore[type-arg]
    setting = ROLES[role][1]
    return int(env_of(container).get(setting, config.get(setting, SETTINGS[setting].default)))


def test_the_base_runs_each_role_on_its_own_port_with_the_apps_probe_paths() -> None:
    documents = render(K8S / "base")
    config = find(documents, "ConfigMap", "defectlab")["data"]
    deployments = [d for d in documents if d["kind"] == "Deployment"]
    assert sorted(_role(d) for d in deployments) == sorted(ROLES)
    for deployment in deployments:
        role = _role(deployment)
        (container,) = containers(deployment)
        assert container["args"] == [ROLES[role][0]]
        port = _listening_port(role, container, config)
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert probe_port(container, probe) == port, f"{role}: {probe}"
        listen = {
            "web": "DEFECTLAB_HOST",
            "inference": "DEFECTLAB_INFERENCE_HOST",
            "worker": "DEFECTLAB_WORKER_METRICS_HOST",
        }[role]
        assert env_of(container)[listen] == "0.0.0.0", f"{role} must listen on every address"


def test_the_probe_paths_are_routes_of_the_web_app_and_the_detection_service() -> None:
    from defectlab.serving.app import create_app

    for path in ("/healthz", "/readyz"):
        assert resolve(path).url_name == path.strip("/")
    service_paths = {route.path for route in create_app().routes}  # type: ignore[attr-defined]
    assert {"/healthz", "/readyz", "/metrics"} <= service_paths


def test_services_send_to_the_ports_the_containers_listen_on() -> None:
    documents = render(K8S / "base")
    for service in (d for d in documents if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        (deployment,) = [
            d
            for d in documents
            if d["kind"] == "Deployment"
            and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        names = {p["name"] for c in containers(deployment) for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names


def test_inference_scales_on_cpu_and_no_role_loses_its_last_pod_to_a_drain() -> None:
    documents = render(K8S / "overlays" / "production")
    autoscaler = find(documents, "HorizontalPodAutoscaler", "defectlab-inference")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == "defectlab-inference"
    assert autoscaler["spec"]["minReplicas"] >= 2
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    budgets = [d for d in documents if d["kind"] == "PodDisruptionBudget"]
    least = {"defectlab-inference": autoscaler["spec"]["minReplicas"]}  # its own replicas: none
    covered = set()
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        for name, deployment in deployments.items():
            if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items():
                covered.add(name)
                replicas = least.get(name) or deployment["spec"]["replicas"]
                assert replicas >= 2, f"{name}: one pod cannot be drained"
    assert covered == set(deployments)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_id)
def test_no_deployment_an_autoscaler_scales_sets_its_own_replicas(directory: Path) -> None:
    """`kubectl apply` of a Deployment with `replicas` sets it back, under its autoscaler's
    feet: a scaled-up inference drops to the committed count at every deploy."""
    documents = render(directory)
    for autoscaler in [d for d in documents if d["kind"] == "HorizontalPodAutoscaler"]:
        target = autoscaler["spec"]["scaleTargetRef"]
        deployment = find(documents, target["kind"], target["name"])
        assert "replicas" not in deployment["spec"], f"{target['name']} sets replicas"


def test_the_inference_runs_as_many_models_at_once_as_it_has_cores() -> None:
    """The runner count defaults to the cores the process may run on (its affinity), which a
    CPU limit does not narrow: set it to the limit."""
    deployment = find(render(K8S / "base"), "Deployment", "defectlab-inference")
    (container,) = containers(deployment)
    assert (
        env_of(container)["DEFECTLAB_INFERENCE_RUNNERS"] == container["resources"]["limits"]["cpu"]
    )


def test_the_production_ingress_takes_the_apps_largest_bodies_streams_and_hides_metrics() -> None:
    documents = render(K8S / "overlays" / "production")
    ingresses = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Ingress"}

    def annotation(name: str, key: str) -> str:
        return str(ingresses[name]["metadata"]["annotations"][f"nginx.ingress.kubernetes.io/{key}"])

    largest = largest_body_mb()
    assert annotation("defectlab-web", "proxy-body-size") == f"{largest + 1}m"
    detect_body = SETTINGS["DEFECTLAB_INFERENCE_MAX_BODY_MB"].default
    assert annotation("defectlab-detect", "proxy-body-size") == f"{detect_body}m"
    assert annotation("defectlab-downloads", "proxy-buffering") == "off"
    paths = {
        (rule["host"], path["path"]): (ingress, path)
        for ingress in ingresses.values()
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    hosts = {host for host, _path in paths}
    config = find(documents, "ConfigMap", "defectlab")["data"]
    public = {url.split("://")[1] for url in config["DEFECTLAB_PUBLIC_URLS"].split(",")}
    endpoints = dict(
        pair.split("=", 1) for pair in config["DEFECTLAB_S3_PUBLIC_ENDPOINTS"].split(",")
    )
    assert hosts == public == set(endpoints), "every public name has an ingress and an S3 endpoint"
    for host in hosts:
        assert paths[(host, "/media/")][0]["metadata"]["name"] == "defectlab-downloads"
        assert paths[(host, "/api/jobs/")][0]["metadata"]["name"] == "defectlab-downloads"
        assert paths[(host, "/v1/")][1]["backend"]["service"]["name"] == "defectlab-inference"
        _ingress, metrics = paths[(host, "/metrics")]
        assert metrics["pathType"] == "Exact"
        nowhere = find(documents, "Service", metrics["backend"]["service"]["name"])
        assert not any(
            nowhere["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
            for d in documents
            if d["kind"] == "Deployment"
        ), "/metrics from outside must reach no pod"
    downloads = resolve("/api/jobs/7/download/")
    assert downloads.url_name == "job-download"
    assert resolve("/media/some-token").url_name == "media"

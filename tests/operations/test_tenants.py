"""`defectlab tenant-manifests ORG`: the dedicated tenant's Kubernetes objects, sized from its
quota, valid against the API's schemas and under the same rules as the platform's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from defectlab.cli import main
from defectlab.operations.tenants import Tenant, manifests, sizing, write_kustomization
from defectlab.serving.models import Quota
from defectlab.serving.quotas import Limits
from defectlab.tenancy.models import Organization
from tests.deploy.kube import (
    K8S,
    containers,
    env_of,
    find,
    kubectl,
    render_with_kubectl,
    validate,
    workload_problems,
)

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["tenant-manifests", *args])
    return result.exit_code, result.output


def documents_of(output: str) -> list[dict]:  # type: ignore[type-arg]
    return [document for document in yaml.safe_load_all(output) if document]


def test_the_manifests_of_an_organization_are_valid_kubernetes_objects_in_its_namespace() -> None:
    plant = Organization.objects.create(name="Plant 9")
    Quota.objects.create(organization=plant, requests_per_minute=1200, concurrent_requests=12)
    code, output = run(str(plant.pk), "--image", "registry.example.com/defectlab:1.2.0")
    assert code == 0, output
    documents = documents_of(output)
    for document in documents:
        validate(document)
    kinds = [document["kind"] for document in documents]
    for kind in ("Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "Deployment"):
        assert kind in kinds
    namespace = f"defectlab-org-{plant.pk}"
    assert find(documents, "Namespace", namespace)["metadata"]["annotations"] == {
        "defectlab.io/organization-name": "Plant 9"
    }
    for document in documents:
        labels = document["metadata"]["labels"]
        assert labels["defectlab.io/organization-id"] == str(plant.pk)
        assert labels["defectlab.io/organization"] == "plant-9"
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == namespace
    deployment = find(documents, "Deployment", "defectlab-inference")
    assert not workload_problems(deployment)
    (container,) = containers(deployment)
    assert container["image"] == "registry.example.com/defectlab:1.2.0"
    assert container["args"] == ["serve-inference"]


def test_a_bigger_quota_gets_more_replicas_and_a_bigger_resource_quota() -> None:
    small = Organization.objects.create(name="Small")
    big = Organization.objects.create(name="Big")
    Quota.objects.create(organization=small, requests_per_minute=60, concurrent_requests=2)
    Quota.objects.create(organization=big, requests_per_minute=3000, concurrent_requests=24)

    def sized(organization: Organization) -> tuple[int, int, str]:
        documents = documents_of(run(organization.name)[1])
        autoscaler = find(documents, "HorizontalPodAutoscaler", "defectlab-inference")
        hard = find(documents, "ResourceQuota", "defectlab-tenant")["spec"]["hard"]
        return autoscaler["spec"]["minReplicas"], int(hard["pods"]), hard["requests.cpu"]

    small_replicas, small_pods, small_cpu = sized(small)
    big_replicas, big_pods, big_cpu = sized(big)
    assert small_replicas == 2  # never one: a drained node would stop the tenant's service
    assert big_replicas > small_replicas and big_pods > small_pods
    assert int(big_cpu) > int(small_cpu)


def test_the_resource_quota_holds_the_autoscalers_most_and_a_rolling_update() -> None:
    organization = Organization.objects.create(name="Quota fits")
    documents = documents_of(run(str(organization.pk))[1])
    autoscaler = find(documents, "HorizontalPodAutoscaler", "defectlab-inference")
    deployment = find(documents, "Deployment", "defectlab-inference")
    hard = find(documents, "ResourceQuota", "defectlab-tenant")["spec"]["hard"]
    (container,) = containers(deployment)
    cpu = int(container["resources"]["limits"]["cpu"])
    memory = int(container["resources"]["limits"]["memory"].removesuffix("Mi"))
    surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    pods = autoscaler["spec"]["maxReplicas"] + surge
    assert int(hard["pods"]) == pods
    assert int(hard["limits.cpu"]) == pods * cpu
    assert hard["limits.memory"] == f"{pods * memory}Mi"
    assert env_of(container)["DEFECTLAB_INFERENCE_RUNNERS"] == str(cpu)
    limit_range = find(documents, "LimitRange", "defectlab-tenant")["spec"]["limits"][0]
    assert limit_range["max"] == container["resources"]["limits"]


def test_the_network_is_closed_but_for_the_ingress_dns_the_database_and_redis() -> None:
    organization = Organization.objects.create(name="Closed")
    code, output = run(
        str(organization.pk),
        "--ingress-namespace",
        "edge",
        "--platform-namespace",
        "factory",
        "--image-source",
        "10.20.0.0/16",
    )
    assert code == 0, output
    documents = documents_of(output)
    deny = find(documents, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allow = find(documents, "NetworkPolicy", "defectlab-inference")["spec"]
    controller, prometheus = allow["ingress"]
    assert controller["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}}
    ]
    # Prometheus scrapes the pods (their annotations say so): from its namespace, the same port.
    assert prometheus["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert controller["ports"] == prometheus["ports"] == [{"protocol": "TCP", "port": 8090}]
    egress = {
        str(rule["to"]): sorted(port["port"] for port in rule.get("ports", []))
        for rule in allow["egress"]
    }
    assert list(egress.values()) == [[53, 53], [5432, 6379], []]
    assert "factory" in list(egress)[1] and "10.20.0.0/16" in list(egress)[2]


def test_a_database_behind_pgbouncer_and_redis_outside_the_cluster_get_their_own_rules() -> None:
    organization = Organization.objects.create(name="Outside")
    code, output = run(
        str(organization.pk),
        "--database", "10.0.5.0/24:6432",
        "--database", "10.0.6.7:5432",
        "--redis", "[fd00::/64]:6380",
        "--monitoring-namespace", "observability",
    )  # fmt: skip
    assert code == 0, output
    documents = documents_of(output)
    allow = find(documents, "NetworkPolicy", "defectlab-inference")
    validate(allow)
    egress = [(rule["to"], rule.get("ports")) for rule in allow["spec"]["egress"]]
    assert egress[1:] == [
        ([{"ipBlock": {"cidr": "10.0.5.0/24"}}], [{"protocol": "TCP", "port": 6432}]),
        ([{"ipBlock": {"cidr": "10.0.6.7/32"}}], [{"protocol": "TCP", "port": 5432}]),
        ([{"ipBlock": {"cidr": "fd00::/64"}}], [{"protocol": "TCP", "port": 6380}]),
    ]  # and nothing to the platform namespace any more
    names = [
        rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in allow["spec"]["ingress"]
    ]
    assert names == ["ingress-nginx", "observability"]
    # Only the database moved: Redis stays the platform's pods on 6379.
    code, output = run(str(organization.pk), "--database", "192.168.1.10:6432")
    egress = find(documents_of(output), "NetworkPolicy", "defectlab-inference")["spec"]["egress"]
    assert [rule["ports"] for rule in egress[1:]] == [
        [{"protocol": "TCP", "port": 6379}],
        [{"protocol": "TCP", "port": 6432}],
    ]
    for bad in ("10.0.5.0/24", "10.0.5.1/24:6432", "db:6432", "10.0.5.0/24:70000"):
        code, output = run(str(organization.pk), "--database", bad)
        assert code == 2 and "is not a network and port" in output, bad


def test_an_ingress_routes_only_the_detection_api_when_a_host_is_given() -> None:
    organization = Organization.objects.create(name="Routed")
    without = documents_of(run(str(organization.pk))[1])
    assert not [d for d in without if d["kind"] == "Ingress"]
    documents = documents_of(run(str(organization.pk), "--host", "detect.plant.example")[1])
    ingress = find(documents, "Ingress", "defectlab-inference")
    validate(ingress)
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "detect.plant.example"
    assert [path["path"] for path in rule["http"]["paths"]] == ["/v1/"]


def test_an_organization_named_in_chinese_gets_a_name_kubernetes_takes() -> None:
    organization = Organization.objects.create(name="苏州工厂")
    documents = documents_of(run("苏州工厂")[1])
    namespace = find(documents, "Namespace", f"defectlab-org-{organization.pk}")
    assert namespace["metadata"]["labels"]["defectlab.io/organization"] == f"org-{organization.pk}"
    assert namespace["metadata"]["annotations"]["defectlab.io/organization-name"] == "苏州工厂"
    validate(namespace)


def test_an_unknown_organization_or_a_bad_network_is_refused_with_a_reason() -> None:
    code, output = run("nobody")
    assert code == 1 and "There is no organization 'nobody'." in output
    organization = Organization.objects.create(name="Careful")
    code, output = run(str(organization.pk), "--image-source", "10.20.0.1/16")
    assert code == 2 and "is not a network like" in output


def test_output_writes_a_kustomize_directory_kubectl_renders(tmp_path: Path) -> None:
    organization = Organization.objects.create(name="Kustomized")
    code, output = run(str(organization.pk), "--output", str(tmp_path / "tenant"))
    assert code == 0, output
    directory = tmp_path / "tenant"
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    files = sorted(path.name for path in directory.glob("*.yaml"))
    assert sorted([*kustomization["resources"], "kustomization.yaml"]) == files
    if kubectl() is not None:
        rendered = render_with_kubectl(str(kubectl()), directory)
        assert len(rendered) == len(kustomization["resources"])
        for document in rendered:
            validate(document)


def test_the_committed_dedicated_tenant_overlay_is_what_the_command_makes(tmp_path: Path) -> None:
    """deploy/k8s/overlays/dedicated-tenant is the example in the docs: regenerate it with
    `defectlab tenant-manifests` rather than editing it."""
    example = Tenant(
        organization_id=42,
        name="Example Plant",
        limits=Limits(600, 100000, 8, 20),
        image="registry.example.com/defectlab:0.1.0",
        image_sources=("10.20.0.0/16",),
        host="detect.example-plant.example.com",
    )
    written = write_kustomization(manifests(example), tmp_path)
    committed = K8S / "overlays" / "dedicated-tenant"
    assert sorted(path.name for path in committed.iterdir()) == sorted(p.name for p in written)
    for path in written:
        assert (committed / path.name).read_text() == path.read_text(), path.name


def test_sizing_follows_rate_and_concurrency_and_bounds_no_limit() -> None:
    assert sizing(Limits(60, None, 1, 20)).replicas == 2
    assert sizing(Limits(60 * 4 * 12, None, 1, 20)).replicas == 6  # 12 cores by rate
    assert sizing(Limits(60, None, 24, 20)).replicas == 6  # 12 cores by concurrency
    unbounded = sizing(Limits(None, None, None, None))
    assert unbounded.replicas == 8 and unbounded.max_replicas == 16
    assert sizing(Limits(60, None, 1, 20), cores=20).replicas == 10
    assert sizing(Limits(60, None, 8, 100)).memory_mb > sizing(Limits(60, None, 8, 20)).memory_mb

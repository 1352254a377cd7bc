"""`defectlab tenant-manifests ORG`: the Kubernetes manifests of a dedicated tenant — a
Namespace of its own with its own detection service (inference Deployment, Service,
HorizontalPodAutoscaler, PodDisruptionBudget), a ResourceQuota and LimitRange that bound it, and
a default-deny NetworkPolicy with the few ways in and out it needs.

The sizes come from the organization's quota (`serving.quotas.limits_of`): its requests per
minute and concurrent requests give the cores it needs, its largest image the memory a request
may hold. `manifests` is plain data in, plain data out (no database), so the committed example
overlay (deploy/k8s/overlays/dedicated-tenant) and the command print the same thing."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

if TYPE_CHECKING:  # the command loads Django first: this module is imported before it
    from defectlab.serving.quotas import Limits

PORT = 8090  # DEFECTLAB_INFERENCE_PORT's default, what the platform's inference listens on too
UID = 10001  # the image's user (deploy/Dockerfile)
# One core with one onnxruntime thread answers about this many detections a second on the
# demo-sized models (bench/); a tenant with bigger models sizes up with --cores.
IMAGES_PER_CORE_SECOND = 4
CORES_PER_REPLICA = 2  # DEFECTLAB_INFERENCE_RUNNERS of each replica: one run per core
MODEL_MEMORY_MB = 1024  # DEFECTLAB_INFERENCE_MEMORY_MB of each replica
BASE_MEMORY_MB = 512  # the process itself: Django, onnxruntime, OpenCV
MAX_CORES = 16  # a quota without a limit is sized as if it asked for this many
LABEL = "defectlab.io"


@dataclass(frozen=True, kw_only=True)
class Tenant:
    """What the manifests are made from: the organization and where the platform runs."""

    organization_id: int
    name: str
    limits: Limits
    image: str = "defectlab:latest"
    platform_namespace: str = "defectlab"  # PostgreSQL, Redis and the data volume's share
    ingress_namespace: str = "ingress-nginx"
    data_volume: str = ""  # the PersistentVolume of the shared data directory (read-only here)
    host: str = ""  # the host name its detection API is reached at (an Ingress); none: no Ingress
    # Networks (CIDR) its detection requests may name images in by URL (its cameras, its MinIO).
    image_sources: tuple[str, ...] = ()
    cores: int | None = None  # the operator's own figure instead of the quota's
    # Where PostgreSQL and Redis are when not pods of the platform namespace on 5432 / 6379
    # (outside the cluster, behind PgBouncer): (CIDR, port) each.
    database: tuple[tuple[str, int], ...] = ()
    redis: tuple[tuple[str, int], ...] = ()
    monitoring_namespace: str = "monitoring"  # Prometheus, which scrapes /metrics; "": none

    @property
    def slug(self) -> str:
        return slug(self.name) or f"org-{self.organization_id}"

    @property
    def namespace(self) -> str:
        # The id, not the name, so that renaming the organization keeps its namespace.
        return f"defectlab-org-{self.organization_id}"


@dataclass(frozen=True)
class Sizing:
    replicas: int  # the least the autoscaler keeps (at least 2: one may be drained)
    max_replicas: int
    cpu: int  # cores of each replica (requests = limits: a guaranteed share)
    memory_mb: int  # of each replica


def slug(name: str) -> str:
    """``name`` as a DNS label part: ASCII letters and digits joined by ``-``, at most 30."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:30].strip("-")


def sizing(limits: Limits, cores: int | None = None) -> Sizing:
    """The replicas and their size for ``limits``: enough cores for its requests per minute
    (one image a request) and for its concurrent requests (two to a core: while one runs the
    other is decoded), bounded by
    ``MAX_CORES`` where the quota has no limit; memory for the models plus, for each request a
    replica holds at once, its largest image three times (the body, the decoded image, the
    letterboxed input)."""
    if cores is None:
        rate = limits.requests_per_minute
        concurrent = limits.concurrent_requests
        by_rate = MAX_CORES if rate is None else math.ceil(rate / 60 / IMAGES_PER_CORE_SECOND)
        by_concurrency = MAX_CORES if concurrent is None else math.ceil(concurrent / 2)
        cores = min(MAX_CORES, max(1, by_rate, by_concurrency))
    replicas = max(2, math.ceil(cores / CORES_PER_REPLICA))
    in_flight = math.ceil((limits.concurrent_requests or CORES_PER_REPLICA * 2) / replicas)
    image_mb = limits.max_image_mb or 20
    memory = BASE_MEMORY_MB + MODEL_MEMORY_MB + in_flight * image_mb * 3
    return Sizing(replicas, replicas * 2, CORES_PER_REPLICA, int(math.ceil(memory / 256) * 256))


def tenant_for(organization: str, **options: Any) -> Tenant:
    """The tenant of the organization named by ``organization`` (its id or exact name), or
    LookupError."""
    from defectlab.serving.quotas import limits_of
    from defectlab.tenancy.models import Organization

    found = None
    if organization.isdigit():
        found = Organization.objects.filter(pk=int(organization)).first()
    found = found or Organization.objects.filter(name=organization).first()
    if found is None:
        raise LookupError(organization)
    return Tenant(organization_id=found.pk, name=found.name, limits=limits_of(found.pk), **options)


def _meta(tenant: Tenant, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": tenant.namespace,
        "labels": labels(tenant),
        **extra,
    }


def labels(tenant: Tenant) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "defectlab",
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/part-of": "defectlab",
        f"{LABEL}/organization-id": str(tenant.organization_id),
        f"{LABEL}/organization": tenant.slug,
    }


def _selector(tenant: Tenant) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "defectlab",
        "app.kubernetes.io/component": "inference",
        f"{LABEL}/organization-id": str(tenant.organization_id),
    }


def manifests(tenant: Tenant) -> list[dict[str, Any]]:
    """Every object of the dedicated tenant, in the order to apply them."""
    size = sizing(tenant.limits, tenant.cores)
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": tenant.namespace,
                "labels": labels(tenant)
                | {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
                # Label values cannot hold every name (Chinese, spaces): the name as written.
                "annotations": {f"{LABEL}/organization-name": tenant.name},
            },
        },
        _quota(tenant, size),
        _limit_range(tenant, size),
        *_network_policies(tenant),
        _volume_claim(tenant),
        _deployment(tenant, size),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(tenant, "defectlab-inference"),
            "spec": {
                "selector": _selector(tenant),
                "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
            },
        },
        *_ingress(tenant),
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(tenant, "defectlab-inference"),
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "defectlab-inference",
                },
                "minReplicas": size.replicas,
                "maxReplicas": size.max_replicas,
                "metrics": [_cpu_target(70)],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(tenant, "defectlab-inference"),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": _selector(tenant)}},
        },
    ]


def _ingress(tenant: Tenant) -> list[dict[str, Any]]:
    """Only the detection API, ``/v1/``, is routed: its /metrics stays inside the cluster."""
    if not tenant.host:
        return []
    backend = {"service": {"name": "defectlab-inference", "port": {"name": "http"}}}
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": _meta(
                tenant,
                "defectlab-inference",
                annotations={
                    # DEFECTLAB_INFERENCE_MAX_BODY_MB's default.
                    "nginx.ingress.kubernetes.io/proxy-body-size": "64m",
                },
            ),
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": [tenant.host], "secretName": "defectlab-tls"}],
                "rules": [
                    {
                        "host": tenant.host,
                        "http": {
                            "paths": [{"path": "/v1/", "pathType": "Prefix", "backend": backend}]
                        },
                    }
                ],
            },
        }
    ]


def _cpu_target(percent: int) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": percent},
        },
    }


def _quota(tenant: Tenant, size: Sizing) -> dict[str, Any]:
    # The autoscaler's most, plus one for the rolling update's extra pod (maxSurge 1).
    pods = size.max_replicas + 1
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(tenant, "defectlab-tenant"),
        "spec": {
            "hard": {
                "pods": str(pods),
                "requests.cpu": str(pods * size.cpu),
                "limits.cpu": str(pods * size.cpu),
                "requests.memory": f"{pods * size.memory_mb}Mi",
                "limits.memory": f"{pods * size.memory_mb}Mi",
                "persistentvolumeclaims": "1",
                "services": "1",
                "services.loadbalancers": "0",
                "services.nodeports": "0",
            }
        },
    }


def _limit_range(tenant: Tenant, size: Sizing) -> dict[str, Any]:
    resources = {"cpu": str(size.cpu), "memory": f"{size.memory_mb}Mi"}
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta(tenant, "defectlab-tenant"),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": resources,
                    "defaultRequest": resources,
                    "max": resources,
                }
            ]
        },
    }


def _network_policies(tenant: Tenant) -> list[dict[str, Any]]:
    def namespace(name: str) -> dict[str, Any]:
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}

    def tcp(*ports: int) -> list[dict[str, Any]]:
        return [{"protocol": "TCP", "port": port} for port in ports]

    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(tenant, "default-deny"),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    egress: list[dict[str, Any]] = [
        {
            "to": [namespace("kube-system")],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
    ]
    # PostgreSQL and Redis: pods of the platform namespace unless given as networks. The data
    # volume is mounted by the node, not the pod, so it needs no rule here.
    in_platform = []
    for endpoints, default_port in ((tenant.database, 5432), (tenant.redis, 6379)):
        in_platform += [] if endpoints else [default_port]
        egress += [{"to": [{"ipBlock": {"cidr": c}}], "ports": tcp(p)} for c, p in endpoints]
    if in_platform:
        egress.insert(1, {"to": [namespace(tenant.platform_namespace)], "ports": tcp(*in_platform)})
    if tenant.image_sources:
        # Images by URL: the guarded fetcher still checks every address (and the
        # organization's allowlist); this only lets the packets out.
        egress.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in tenant.image_sources]})
    allow = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(tenant, "defectlab-inference"),
        "spec": {
            "podSelector": {"matchLabels": _selector(tenant)},
            "policyTypes": ["Ingress", "Egress"],
            # The ingress controller reaches the detection API (its Ingress routes /v1/ alone,
            # so /metrics stays inside) and Prometheus its /metrics (the pods' annotations).
            "ingress": [
                {"from": [namespace(name)], "ports": tcp(PORT)}
                for name in (tenant.ingress_namespace, tenant.monitoring_namespace)
                if name
            ],
            "egress": egress,
        },
    }
    return [deny, allow]


def _volume_claim(tenant: Tenant) -> dict[str, Any]:
    """The shared data directory (the models' files live there), read-only: a claim bound to a
    PersistentVolume the operator made on the same share as the platform's (ReadWriteMany)."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadOnlyMany"],
        "storageClassName": "",
        "resources": {"requests": {"storage": "1Gi"}},
        "volumeName": tenant.data_volume or f"{tenant.namespace}-data",
    }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(tenant, "defectlab-data"),
        "spec": spec,
    }


def _deployment(tenant: Tenant, size: Sizing) -> dict[str, Any]:
    resources = {"cpu": str(size.cpu), "memory": f"{size.memory_mb}Mi"}
    env = {
        "DEFECTLAB_DATA_DIR": "/data",
        "DEFECTLAB_INFERENCE_HOST": "0.0.0.0",
        "DEFECTLAB_INFERENCE_PORT": str(PORT),
        "DEFECTLAB_INFERENCE_RUNNERS": str(size.cpu),
        "DEFECTLAB_INFERENCE_MEMORY_MB": str(MODEL_MEMORY_MB),
        "DEFECTLAB_LOG_FORMAT": "json",
    }
    container = {
        "name": "inference",
        "image": tenant.image,
        "args": ["serve-inference"],
        "env": [{"name": name, "value": value} for name, value in env.items()],
        # DEFECTLAB_DATABASE_URL, DEFECTLAB_REDIS_URL and DEFECTLAB_SECRET_KEY: a Secret the
        # operator copies into the namespace (docs/install.md, "A dedicated tenant").
        "envFrom": [{"secretRef": {"name": "defectlab"}}],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        "resources": {"requests": resources, "limits": resources},
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "data", "mountPath": "/data", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(tenant, "defectlab-inference"),
        "spec": {
            # No `replicas`: the autoscaler owns it (minReplicas), and a re-apply must not
            # scale a scaled-up tenant back down.
            "selector": {"matchLabels": _selector(tenant)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels(tenant),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "defectlab-data"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                    ],
                },
            },
        },
    }


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def file_name(document: dict[str, Any]) -> str:
    kind = re.sub(r"(?<!^)(?=[A-Z])", "-", document["kind"]).lower()
    return f"{kind}-{document['metadata']['name']}.yaml"


class _Dumper(yaml.SafeDumper):
    """Writes a mapping used twice (requests and limits) out twice, never as a YAML alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def as_yaml(documents: list[dict[str, Any]]) -> str:
    return "---\n".join(
        yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
        for document in documents
    )


def write_kustomization(documents: list[dict[str, Any]], directory: Path) -> list[Path]:
    """Each object in a file of its own under ``directory`` and a kustomization.yaml listing
    them; the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for document in documents:
        path = directory / file_name(document)
        path.write_text(as_yaml([document]))
        written.append(path)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [path.name for path in written],
    }
    path = directory / "kustomization.yaml"
    path.write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return [*written, path]


# ---------------------------------------------------------------------------- the command


def _endpoints(values: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """``CIDR:PORT`` options (an address alone is a /32 or /128) as (CIDR, port) pairs."""
    import ipaddress

    pairs = []
    for value in values:
        cidr, _, port = value.rpartition(":")
        try:
            network = ipaddress.ip_network(cidr.strip("[]"))
            number = int(port)
        except ValueError:
            number, network = 0, None
        if network is None or not 0 < number < 65536:
            raise click.BadParameter(f"{value!r} is not a network and port like 10.0.5.0/24:6432.")
        pairs.append((str(network), number))
    return tuple(pairs)


@click.command("tenant-manifests")
@click.argument("organization", metavar="ORG")
@click.option("--image", default="defectlab:latest", show_default=True, help="The image to run.")
@click.option(
    "--platform-namespace",
    default="defectlab",
    show_default=True,
    help="Namespace of the platform's PostgreSQL and Redis (the tenant may reach them).",
)
@click.option(
    "--ingress-namespace",
    default="ingress-nginx",
    show_default=True,
    help="Namespace of the ingress controller (the only way in).",
)
@click.option(
    "--monitoring-namespace",
    default="monitoring",
    show_default=True,
    help="Namespace of Prometheus, let in to /metrics ('' for none).",
)
@click.option(
    "--database",
    multiple=True,
    metavar="CIDR:PORT",
    callback=lambda _c, _p, values: _endpoints(values),
    help="PostgreSQL (or PgBouncer) outside the platform namespace; repeat for more "
    "[default: its pods on 5432].",
)
@click.option(
    "--redis",
    multiple=True,
    metavar="CIDR:PORT",
    callback=lambda _c, _p, values: _endpoints(values),
    help="Redis outside the platform namespace; repeat for more [default: its pods on 6379].",
)
@click.option("--host", default="", help="Host name of its detection API (adds an Ingress).")
@click.option(
    "--data-volume",
    default="",
    help="PersistentVolume of the shared data directory [default: defectlab-org-ID-data].",
)
@click.option(
    "--image-source",
    "image_sources",
    multiple=True,
    metavar="CIDR",
    help="A network the tenant's detection requests may name images in by URL; repeat for more.",
)
@click.option(
    "--cores",
    type=click.IntRange(1, 256),
    default=None,
    help="Cores in all, instead of the quota's.",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write a kustomize directory here instead of printing YAML.",
)
def tenant_manifests(organization: str, output: Path | None, **options: Any) -> None:
    """Print the Kubernetes manifests of a dedicated tenant for ORG (its id or exact name): its
    own namespace and detection service, sized from its quota (docs/install.md)."""
    import ipaddress
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "defectlab.settings")
    import django

    django.setup()
    for cidr in options["image_sources"]:
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            raise click.BadParameter(f"{cidr!r} is not a network like 10.20.0.0/16.") from None
    options["image_sources"] = tuple(options["image_sources"])
    try:
        tenant = tenant_for(organization, **options)
    except LookupError:
        raise click.ClickException(f"There is no organization {organization!r}.") from None
    documents = manifests(tenant)
    if output is None:
        click.echo(as_yaml(documents), nl=False)
        return
    for path in write_kustomization(documents, output):
        click.echo(f"wrote {path}")

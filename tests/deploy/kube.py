"""Reading the Kubernetes manifests in tests: validation against the API's schemas, rendering a
kustomization, and the rules every DefectLab workload keeps.

Schemas: `kubernetes-validate` carries them (offline) for each Kubernetes release; we validate
strictly (an unknown field is an error) against ``KUBERNETES``, the oldest release we support.

Rendering: ``kubectl kustomize`` when kubectl is installed. Where it is not, `render` falls back
to a small loader that does what our kustomizations use, and nothing more: ``resources`` (files
and directories, depth first), ``namespace``, ``labels`` (metadata only), ``images``,
``replicas`` and ``patches`` given by ``path`` (a mapping merged into the object of the same
kind and name; lists replaced). Where kubectl is installed, a test checks that the loader and
kubectl agree on every overlay, so the loader cannot drift from the real thing."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

KUBERNETES = "1.30.0"
ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CLUSTER_WIDE = {"Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding"}

Document = dict[str, Any]


def validate(document: Document) -> None:
    """Raise kubernetes_validate.ValidationError (naming the field) when ``document`` does not
    match its kind's schema."""
    kubernetes_validate.validate(document, KUBERNETES, strict=True)


def load_all(path: Path) -> list[Document]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(directory: Path) -> list[Document]:
    """The objects the kustomization in ``directory`` makes."""
    tool = kubectl()
    if tool is None:
        return load_kustomization(directory)
    return render_with_kubectl(tool, directory)


def render_with_kubectl(tool: str, directory: Path) -> list[Document]:
    output = subprocess.run(
        [tool, "kustomize", str(directory)], check=True, capture_output=True, text=True
    ).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def load_kustomization(directory: Path) -> list[Document]:
    """The fallback loader (see the module's docstring)."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    known = {
        "apiVersion",
        "kind",
        "resources",
        "namespace",
        "labels",
        "images",
        "replicas",
        "patches",
    }
    unknown = set(spec) - known
    assert not unknown, f"the test loader does not know {unknown}: extend tests/deploy/kube.py"
    documents: list[Document] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        documents += load_kustomization(path) if path.is_dir() else load_all(path)
    documents = copy.deepcopy(documents)
    for patch_entry in spec.get("patches", []):
        for patch in load_all(directory / patch_entry["path"]):
            target = find(documents, patch["kind"], patch["metadata"]["name"])
            _merge(target, patch)
    for document in documents:
        if spec.get("namespace") and document["kind"] not in CLUSTER_WIDE:
            document["metadata"]["namespace"] = spec["namespace"]
        for group in spec.get("labels", []):
            document["metadata"].setdefault("labels", {}).update(group["pairs"])
        for replicas in spec.get("replicas", []):
            if document["metadata"]["name"] == replicas["name"] and "replicas" in document["spec"]:
                document["spec"]["replicas"] = replicas["count"]
        for container in containers(document):
            for image in spec.get("images", []):
                name, _colon, tag = container["image"].partition(":")
                if name == image["name"]:
                    name = image.get("newName", name)
                    tag = image.get("newTag", tag)
                    container["image"] = f"{name}:{tag}" if tag else name
    return documents


def _merge(target: Document, patch: Document) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def find(documents: list[Document], kind: str, name: str) -> Document:
    found = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def pod_spec(document: Document) -> Document | None:
    if document["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        spec: Document = document["spec"]["template"]["spec"]
        return spec
    return None


def containers(document: Document) -> list[Document]:
    spec = pod_spec(document)
    return [] if spec is None else [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: Document) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def workload_problems(document: Document) -> list[str]:
    """What a DefectLab Deployment breaks of issue 13's rules: non-root, read-only root
    filesystem, no privilege escalation, every capability dropped, the runtime's seccomp
    profile, a writable /tmp of its own, probes, and updates that never drop a ready pod."""
    name = f"{document['kind']} {document['metadata']['name']}"
    spec = pod_spec(document)
    assert spec is not None
    problems = []
    pod = spec.get("securityContext", {})
    if pod.get("runAsNonRoot") is not True or pod.get("runAsUser", 0) == 0:
        problems.append(f"{name}: the pod must run as a non-root user")
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{name}: the pod needs seccompProfile RuntimeDefault")
    rolling = document["spec"].get("strategy", {}).get("rollingUpdate", {})
    if rolling.get("maxUnavailable") != 0:
        problems.append(f"{name}: rollingUpdate.maxUnavailable must be 0")
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for container in containers(document):
        where = f"{name}, container {container['name']}"
        security = container.get("securityContext", {})
        expected = {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
        }
        for key, value in expected.items():
            if security.get(key) is not value:
                problems.append(f"{where}: securityContext.{key} must be {value}")
        if security.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{where}: securityContext.capabilities.drop must be [ALL]")
        if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: securityContext.seccompProfile must be RuntimeDefault")
        mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
        if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
            problems.append(f"{where}: /tmp must be an emptyDir")
        data_dir = env_of(container).get("DEFECTLAB_DATA_DIR", "/data")
        if data_dir not in mounts:
            problems.append(f"{where}: the data directory {data_dir} must be a volume")
        if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            problems.append(f"{where}: the readiness probe must ask /readyz")
        if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            problems.append(f"{where}: the liveness probe must ask /healthz")
        limits = container.get("resources", {})
        if not limits.get("requests") or not limits.get("limits"):
            problems.append(f"{where}: resources need requests and limits")
    return problems


def probe_port(container: Document, probe: str) -> int:
    """The container port number a probe asks (by name or number)."""
    port = container[probe]["httpGet"]["port"]
    if isinstance(port, int):
        return port
    named = {item["name"]: item["containerPort"] for item in container.get("ports", [])}
    assert port in named, f"{container['name']}: the {probe} asks the unknown port {port!r}"
    return named[port]


def largest_body_mb() -> int:
    """The largest request body the app takes, in MB: what a proxy in front must let through."""
    from defectlab.config import SETTINGS

    names = ("MAX_ARCHIVE_MB", "MAX_UPLOAD_MB", "MAX_IMPORT_MB", "MAX_MODEL_MB")
    return max(int(SETTINGS[f"DEFECTLAB_{name}"].default) for name in names)

"""External model backends: servers that speak Label Studio's ML-backend protocol, so a SAM,
YOLO or any other model already wrapped for Label Studio pre-labels DefectLab projects.

The protocol, as ``label-studio-ml`` serves it (every request through the guarded fetcher,
under the organization's allowlist, with the backend's ``Authorization`` header if it has one):

    GET  /health   → {"status": "UP", "model_class": …}
    POST /setup    {"project": "<id>.<created, Unix seconds>", "schema": <label config XML>,
                    "hostname": <this server's address>, "access_token": "", "extra_params": {}}
                   → {"model_version": …}
    POST /predict  {"tasks": [{"id", "data": {"image": <absolute signed URL>}}, …],
                    "label_config": <XML>, "project": …, "model_version": …, "params": {…}}
                   → {"results": [<prediction per task>, …]} (or the list itself)

A prediction is ``{"result": [<region>, …], "score"?, "model_version"?}`` (a list of them: the
first is taken). Regions are Label Studio results in percent of the image: ``rectanglelabels``
and ``polygonlabels`` (``keypointlabels`` when the project draws points), read by the same
reader as Label Studio imports (``datasets.labelstudio.RegionReader``) against the task's size.

Images: a backend downloads ``data.image``. We give it absolute signed media URLs (valid for
``DEFECTLAB_MEDIA_URL_TTL``), based on the backend's ``media_base_url`` or else the first of
``DEFECTLAB_PUBLIC_URLS``: no token is needed, so ``access_token`` is sent empty.

Every failure (the address refused, no answer in time, an HTTP error, a reply that is not JSON
or not the protocol's shape, a reply larger than ``MAX_REPLY_BYTES``) is a ``BackendError``
whose message names the backend and the cause, in the language of the caller."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.datasets.common import Names
from defectlab.datasets.labelstudio import RegionReader, label_config
from defectlab.datasets.model import DatasetError
from defectlab.errors import Conflict, DefectLabError, Invalid
from defectlab.geometry import ShapeType
from defectlab.inference.models import BackendHealth, MLBackend
from defectlab.ingest.fetcher import FetchFailed, Refused, fetch, post
from defectlab.ingest.policy import parse_url
from defectlab.ingest.services import allowlist_for
from defectlab.labeling.models import Project, Task
from defectlab.media.secrets import decrypt_secret, encrypt_secret
from defectlab.media.services import signed_url
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import Organization, User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import record, require

log = logging.getLogger(__name__)

MANAGE = Can.MANAGE_PROJECTS
MAX_NAME = 100
MAX_NOTE = 200
MAX_REPLY_BYTES = 16 << 20  # a /predict reply for one chunk of tasks
MAX_SMALL_REPLY = 64 << 10  # /health and /setup
PREDICT_TIMEOUT = 120.0  # seconds for one /predict (a model may be slow); others: FETCH_TIMEOUT
_KIND_OF = {
    "rectanglelabels": (ShapeType.BOX, ShapeType.POLYGON),  # a turned box becomes a polygon
    "polygonlabels": (ShapeType.POLYGON,),
    "keypointlabels": (ShapeType.POINTS,),
}
_ALL_KINDS = frozenset(kind.value for kind in ShapeType)
_SHOWN = 200  # characters of a failing backend's answer put in the message


class BackendError(DefectLabError):
    """A model backend failed or was refused; the message names it and says why.

    ``code``: ``backend_refused`` (the guard refused its address: ``details["rule"]`` names the
    rule), ``backend_unreachable`` (DNS, connection, TLS, time), ``backend_http`` (it answered
    an HTTP error), ``backend_reply`` (its answer is not the protocol's), ``backend_config``
    (this server has no address to give it for images)."""

    status = 502
    code = "backend_unreachable"

    def __init__(
        self, backend: MLBackend, reason: str, *, code: str, details: dict[str, Any] | None = None
    ) -> None:
        message = _("The model backend “%(name)s” failed: %(reason)s") % {
            "name": backend.name,
            "reason": reason,
        }
        super().__init__(message, code=code, details={"backend": backend.pk, **(details or {})})

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.code in ("backend_unreachable", "backend_http")


# ---------------------------------------------------------------------------- rows


def clean_url(url: str) -> str:
    """An http(s) address the guard can read (whether it may be reached is decided at each
    request, under the allowlists then in force)."""
    url = (url or "").strip()
    if not url:
        raise Invalid(_("Enter the model backend's address."))
    try:
        parse_url(url)
    except DefectLabError as problem:
        raise Invalid(problem.message) from None
    return url.rstrip("/")


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise Invalid(_("Give the model backend a name."))
    if len(name) > MAX_NAME:
        raise Invalid(
            _("A model backend's name has at most %(count)s characters.") % {"count": MAX_NAME}
        )
    return name


def _clean_media_base(url: str) -> str:
    url = (url or "").strip()
    return clean_url(url) if url else ""


def create_backend(
    organization: Organization,
    user: User | None,
    *,
    name: str,
    url: str,
    auth: str = "",
    media_base_url: str = "",
    note: str = "",
) -> MLBackend:
    """A new backend of ``organization`` (managers). ``auth``: the ``Authorization`` header's
    value (``Basic …``, ``Bearer …``, ``Token …``), stored encrypted; empty for none."""
    if user is not None:
        require(user, organization.pk, MANAGE)
    name = _clean_name(name)
    fields = {
        "url": clean_url(url),
        "media_base_url": _clean_media_base(media_base_url),
        "note": (note or "").strip()[:MAX_NOTE],
        "auth": encrypt_secret(auth.strip()) if (auth or "").strip() else "",
    }
    try:
        with transaction.atomic():
            backend = MLBackend.objects.create(
                organization=organization, name=name, created_by=user, **fields
            )
            record(
                None,
                AuditAction.BACKEND_CREATED,
                organization=organization,
                target=backend,
                actor=user,
                data=_described(backend),
            )
    except IntegrityError:
        raise _twin(name) from None
    return backend


def update_backend(backend: MLBackend, user: User | None, **changes: Any) -> MLBackend:
    """Change ``name``, ``url``, ``auth`` (empty removes it), ``media_base_url`` or ``note``
    (what is given). A new address or header forgets the last check."""
    if user is not None:
        require(user, backend.organization_id, MANAGE)
    try:
        with transaction.atomic():
            backend = MLBackend.objects.select_for_update().get(pk=backend.pk)
            if "name" in changes:
                backend.name = _clean_name(changes["name"])
            if "url" in changes:
                url = clean_url(changes["url"])
                if url != backend.url:
                    backend.url = url
                    _forget_health(backend)
            if "auth" in changes:
                auth = (changes["auth"] or "").strip()
                backend.auth = encrypt_secret(auth) if auth else ""
                _forget_health(backend)
            if "media_base_url" in changes:
                backend.media_base_url = _clean_media_base(changes["media_base_url"])
            if "note" in changes:
                backend.note = (changes["note"] or "").strip()[:MAX_NOTE]
            backend.save()
            record(
                None,
                AuditAction.BACKEND_UPDATED,
                organization=backend.organization_id,
                target=backend,
                actor=user,
                data=_described(backend) | {"auth_changed": "auth" in changes},
            )
    except IntegrityError:
        raise _twin(backend.name) from None
    return backend


def delete_backend(backend: MLBackend, user: User | None) -> None:
    if user is not None:
        require(user, backend.organization_id, MANAGE)
    with transaction.atomic():
        record(
            None,
            AuditAction.BACKEND_DELETED,
            organization=backend.organization_id,
            target=backend,
            actor=user,
            data=_described(backend),
        )
        backend.delete()


def _twin(name: str) -> Conflict:
    return Conflict(
        _("This organization already has a model backend named “%(name)s”.") % {"name": name}
    )


def _forget_health(backend: MLBackend) -> None:
    backend.health, backend.health_message, backend.checked_at = BackendHealth.UNKNOWN, "", None


def _described(backend: MLBackend) -> dict[str, Any]:  # never the header
    return {"name": backend.name, "url": backend.url, "has_auth": bool(backend.auth)}


# ---------------------------------------------------------------------------- the protocol


def project_key(project: Project) -> str:
    """The ``project`` value Label Studio sends: "<id>.<created, Unix seconds>" (backends
    split it at the dot and keep per-project state under the id)."""
    return f"{project.pk}.{int(project.created_at.timestamp())}"


def project_config(project: Project) -> str:
    """The Label Studio labeling config of ``project``: its labels (names and colours) under a
    control for each shape kind it draws (``RectangleLabels`` ``label``, ``PolygonLabels``
    ``polygon``, ``KeyPointLabels`` ``keypoint``), on an ``Image`` named ``image``."""
    kinds = [ShapeType(kind) for kind in project.shape_types if kind in _ALL_KINDS]
    labels = [(label.name, label.color) for label in project.labels.order_by("order", "id")]
    return label_config(labels, kinds=kinds)


def media_base(backend: MLBackend) -> str:
    """This server's address as ``backend`` downloads images from it: its ``media_base_url``,
    else the first of DEFECTLAB_PUBLIC_URLS; BackendError (``backend_config``) without either."""
    base = backend.media_base_url or (settings.PUBLIC_URLS[0] if settings.PUBLIC_URLS else "")
    if not base:
        raise BackendError(
            backend,
            _(
                "this server has no address to give it for images: set the backend's media "
                "address or DEFECTLAB_PUBLIC_URLS."
            ),
            code="backend_config",
        )
    return base.rstrip("/")


def _headers(backend: MLBackend) -> dict[str, str]:
    return {"Authorization": decrypt_secret(backend.auth)} if backend.auth else {}


def _get(backend: MLBackend, path: str, timeout: float | None) -> Any:
    url = backend.url + path
    try:
        answer = fetch(
            url,
            allowlist=allowlist_for(backend.organization_id),
            max_bytes=MAX_SMALL_REPLY,
            timeout=timeout,
            content_types=(),
            headers={**_headers(backend), "Accept": "application/json"},
        )
    except DefectLabError as failure:
        raise _failed(backend, failure) from None
    return _json(backend, path, answer.body)


def _post(
    backend: MLBackend, path: str, body: dict[str, Any], timeout: float | None, limit: int
) -> Any:
    url = backend.url + path
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        answer = post(
            url,
            data,
            allowlist=allowlist_for(backend.organization_id),
            headers={**_headers(backend), "Accept": "application/json"},
            timeout=timeout,
            max_bytes=limit + 1,  # one byte past the cap tells a reply too large
        )
    except DefectLabError as failure:
        raise _failed(backend, failure) from None
    if not 200 <= answer.status < 300:
        said = answer.body[:_SHOWN].decode("utf-8", "replace").strip()
        reason = _("%(path)s answered HTTP %(status)s.") % {"path": path, "status": answer.status}
        raise BackendError(
            backend,
            f"{reason} {said}".strip(),
            code="backend_http",
            details={"status": answer.status, "path": path},
        )
    if len(answer.body) > limit:
        raise BackendError(
            backend,
            _("the answer of %(path)s is larger than %(limit)s.")
            % {"path": path, "limit": filesizeformat(limit)},
            code="backend_reply",
            details={"path": path, "rule": "too_large"},
        )
    return _json(backend, path, answer.body)


def _failed(backend: MLBackend, failure: DefectLabError) -> BackendError:
    """The fetcher's refusal or failure (its message names the rule) as the backend's."""
    details = dict(failure.details or {})
    if isinstance(failure, Refused):
        code = "backend_reply" if failure.rule == "too_large" else "backend_refused"
    elif isinstance(failure, FetchFailed):
        code = "backend_http" if failure.rule == "http_status" else "backend_unreachable"
    else:
        code = "backend_unreachable"
    return BackendError(backend, failure.message, code=code, details=details)


def _json(backend: MLBackend, path: str, body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeError):
        raise _bad_reply(backend, path, _("it is not JSON")) from None


def _bad_reply(backend: MLBackend, path: str, why: str) -> BackendError:
    return BackendError(
        backend,
        _("its answer to %(path)s is not what the ML-backend protocol says (%(why)s).")
        % {"path": path, "why": why},
        code="backend_reply",
        details={"path": path},
    )


# ---------------------------------------------------------------------------- check


@dataclass(frozen=True)
class Health:
    """What ``check`` found: ``ok``, the model version the backend reported, the problem."""

    ok: bool
    model_version: str = ""
    problem: BackendError | None = None


def check(
    backend: MLBackend,
    user: User | None = None,
    *,
    project: Project | None = None,
    timeout: float | None = None,
) -> Health:
    """Ask ``backend`` for ``/health``, then (given a ``project``) ``/setup`` with the project's
    labeling config; keep the outcome on the row (``health``, ``health_message``,
    ``checked_at``, ``model_version``). Never raises for the backend's failures: they are the
    answer (``Health.problem``). ``timeout``: seconds a request, DEFECTLAB_FETCH_TIMEOUT by
    default."""
    if user is not None:
        require(user, backend.organization_id, MANAGE)
    if project is not None and project.organization_id != backend.organization_id:
        raise Invalid(_("No such project in this organization."))
    try:
        status = _get(backend, "/health", timeout)
        if not isinstance(status, dict) or str(status.get("status", "")).upper() != "UP":
            raise _bad_reply(backend, "/health", _("its status is not “UP”"))
        version = backend.model_version
        if project is not None:
            version = setup(backend, project, timeout=timeout)
    except BackendError as problem:
        _note_health(backend, BackendHealth.DOWN, problem.message)
        return Health(False, backend.model_version, problem)
    _note_health(backend, BackendHealth.UP, "", model_version=version)
    return Health(True, version)


def setup(backend: MLBackend, project: Project, *, timeout: float | None = None) -> str:
    """``/setup`` for ``project``: the model version the backend answers (BackendError)."""
    body: dict[str, Any] = {
        "project": project_key(project),
        "schema": project_config(project),
        "hostname": media_base(backend),
        "access_token": "",
        "extra_params": {},
        "model_version": backend.model_version or None,
    }
    reply = _post(backend, "/setup", body, timeout, MAX_SMALL_REPLY)
    if not isinstance(reply, dict):
        raise _bad_reply(backend, "/setup", _("it is not a JSON object"))
    version = reply.get("model_version")
    return "" if version is None else str(version)[:200]


def _note_health(
    backend: MLBackend, health: str, message: str, *, model_version: str | None = None
) -> None:
    backend.health, backend.health_message = health, message
    backend.checked_at = timezone.now()
    fields = ["health", "health_message", "checked_at"]
    if model_version is not None:
        backend.model_version = model_version
        fields.append("model_version")
    MLBackend.objects.filter(pk=backend.pk).update(
        **{name: getattr(backend, name) for name in fields}
    )


# ---------------------------------------------------------------------------- predict


@dataclass
class Predicted:
    """``/predict``'s answer read: shape dicts per task (in the order asked), the model
    version the backend named, and the regions left out by reason (``unknown_label``,
    ``unsupported``: a kind of region the project does not draw, ``invalid``)."""

    shapes: list[list[dict[str, Any]]]
    model_version: str = ""
    skipped: Counter[str] = field(default_factory=Counter)


def predict(
    backend: MLBackend, project: Project, tasks: Sequence[Task], *, timeout: float | None = None
) -> list[list[dict[str, Any]]]:
    """Pre-labels for ``tasks`` of ``project`` from ``backend``: per task, its prediction's
    shapes as dicts (``Shape.to_dict()``, ``label`` a label id of the project, ``score`` when
    the backend gave one). BackendError for any failure. ``backend.model_version`` is updated
    to what the backend named."""
    return predict_tasks(backend, project, tasks, timeout=timeout).shapes


def predict_tasks(
    backend: MLBackend, project: Project, tasks: Sequence[Task], *, timeout: float | None = None
) -> Predicted:
    """``predict`` with what it left out and the model version (see ``Predicted``)."""
    if not tasks:
        return Predicted([], backend.model_version)
    base = media_base(backend)
    body = {
        "tasks": [
            {"id": task.pk, "data": {"image": base + signed_url(task.pk, "image")}}
            for task in tasks
        ],
        "label_config": project_config(project),
        "project": project_key(project),
        "model_version": backend.model_version or None,
        "params": {"login": None, "password": None, "context": None},
    }
    reply = _post(
        backend,
        "/predict",
        body,
        timeout if timeout is not None else PREDICT_TIMEOUT,
        MAX_REPLY_BYTES,
    )
    entries = reply.get("results", reply.get("predictions")) if isinstance(reply, dict) else reply
    if not isinstance(entries, list):
        raise _bad_reply(backend, "/predict", _("it has no list of results"))
    if len(entries) != len(tasks):
        raise _bad_reply(
            backend,
            "/predict",
            _("%(answered)s results for %(asked)s tasks")
            % {"answered": len(entries), "asked": len(tasks)},
        )
    reader = _Reader(project)
    predicted = Predicted(
        [], str(reply.get("model_version") or "") if isinstance(reply, dict) else ""
    )
    for task, entry in zip(tasks, entries, strict=True):
        if isinstance(entry, list):  # several predictions for the task: the first
            entry = entry[0] if entry else None
        if entry is None:
            predicted.shapes.append([])
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("result") or [], list):
            raise _bad_reply(backend, "/predict", _("a result is not a prediction object"))
        predicted.shapes.append(reader.shapes(task, entry, predicted.skipped))
        if not predicted.model_version and entry.get("model_version"):
            predicted.model_version = str(entry["model_version"])
    predicted.model_version = predicted.model_version[:200]
    if predicted.model_version and predicted.model_version != backend.model_version:
        backend.model_version = predicted.model_version
        MLBackend.objects.filter(pk=backend.pk).update(model_version=backend.model_version)
    if predicted.skipped:
        log.info(
            "backend regions skipped",
            extra={"backend": backend.pk, "skipped": dict(predicted.skipped)},
        )
    return predicted


class _Reader:
    """Regions of one project's predictions → shape dicts, one region at a time (a region that
    cannot be read is left out, not the task)."""

    def __init__(self, project: Project) -> None:
        self.labels = dict(project.labels.values_list("name", "pk"))
        self.kinds = {ShapeType(kind) for kind in project.shape_types if kind in _ALL_KINDS}

    def shapes(
        self, task: Task, entry: dict[str, Any], skipped: Counter[str]
    ) -> list[dict[str, Any]]:
        found = []
        score = entry.get("score")
        for region in entry.get("result") or []:
            kind = region.get("type") if isinstance(region, dict) else None
            value = region.get("value") if isinstance(region, dict) else None
            if kind not in _KIND_OF or not isinstance(value, dict):
                skipped["unsupported"] += 1
                continue
            if not set(_KIND_OF[kind]) & self.kinds:
                skipped["unsupported"] += 1
                continue
            names = value.get(kind)
            name = names[0] if isinstance(names, list) and names else None
            if not isinstance(name, str) or name not in self.labels:
                skipped["unknown_label"] += 1
                continue
            shape = self._read(task, region, score)
            if shape is None:
                skipped["invalid"] += 1
            elif shape.type not in self.kinds:
                skipped["unsupported"] += 1
            else:
                found.append(replace(shape, label=self.labels[name]).to_dict())
        return found

    def _read(self, task: Task, region: dict[str, Any], score: object) -> Any:
        region = dict(region)
        size = None
        if task.width and task.height:
            # Percent is of the image: our size of it wins over the one the backend read.
            region.pop("original_width", None)
            region.pop("original_height", None)
            width, height = task.width, task.height

            def size() -> tuple[int, int]:
                return width, height

        reader = RegionReader(Names(), Names(), Counter(), None)
        prediction = {"result": [region]} | ({"score": score} if score is not None else {})
        try:
            read = reader.read({"predictions": [prediction]}, f"task {task.pk}", size)
        except (DatasetError, ValueError):  # ShapeError is a ValueError
            return None
        return read.predictions[0] if read.predictions else None

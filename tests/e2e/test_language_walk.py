"""A walk over every page and every error page in Chromium, as a person whose browser asks for
Chinese (zh-CN): no English word of ours on any of them.

A word is any run of Latin letters in the visible text or in what a screen reader or a tooltip
says (placeholders, titles, aria-labels, alt texts, button values). Allowed are the proper names
and technical names a Chinese interface keeps as they are (file formats, DefectLab, S3, key
names…), and what the people using it typed (names, e-mails, file and class names)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from defectlab.inference.backends import create_backend
from defectlab.inference.models import DetectionModel, ModelAlias, ModelVersion, VersionState
from defectlab.ingest.services import add_allowed_network
from defectlab.jobs.models import Job, JobState
from defectlab.labeling import workflow
from defectlab.labeling.tasks import PredictionRow, insert_predictions
from defectlab.serving.keys import create_key, revoke_key
from defectlab.tenancy.models import Role
from defectlab.tenancy.services import create_invite
from tests.conftest import annotate, box
from tests.e2e.pages import log_in, open_workspace, tenant_with_images
from tests.insight.reports import evaluated

# Names a Chinese interface keeps in Latin letters.
PROPER = {
    "DefectLab", "API", "URL", "URLs", "HTTP", "HTTPS", "http", "https", "S3", "MinIO", "AWS",
    "JSON", "JSONL", "CSV", "ZIP", "zip", "YOLO", "COCO", "VOC", "Pascal", "CVAT", "XML", "Label",
    "Studio", "PNG", "JPEG", "JPG", "TIFF", "BMP", "WebP", "GIF", "Ctrl", "Shift", "Alt", "Enter",
    "Esc", "Tab", "Space", "Backspace", "Delete", "Del", "PageUp", "PageDown", "IP", "IPv4",
    "IPv6", "ID", "SSE", "KMS", "AES", "AES256", "DNS", "TLS", "MB", "GB", "KB", "px", "OK", "NG", "English",
    "train", "val", "test", "seg", "min", "max", "id", "Bearer", "Token", "ONNX", "SDK", "CLI",
    "Swagger", "OpenAPI", "localhost", "us", "east", "Webhook", "HMAC", "SHA256", "POST", "MES",
    "IR", "IoU", "YOLOv5", "YOLOv8", "YOLOv10", "YOLO11", "YOLO26", "Authorization", "Basic",
    "SAM", "UTC", "mAP", "mAP50", "AP50", "F1",
}  # fmt: skip
WORD = re.compile(r"[A-Za-z][A-Za-z0-9']*")

COLLECT = """() => {
  const parts = [document.body.innerText];
  for (const el of document.querySelectorAll('[placeholder],[title],[aria-label],img[alt]')) {
    for (const name of ['placeholder', 'title', 'aria-label', 'alt']) {
      const value = el.getAttribute(name);
      if (value && el.closest('[hidden]') === null) parts.push(value);
    }
  }
  for (const el of document.querySelectorAll('input[type=submit],input[type=button]')) {
    parts.push(el.value);
  }
  return parts.join('\\n');
}"""


def english_words(page: Any, allowed: set[str]) -> list[str]:
    text = page.evaluate(COLLECT)
    text = re.sub(r"\S+@\S+", " ", text)  # e-mail addresses
    text = re.sub(r"https?://\S+|/\S+", " ", text)  # addresses and paths
    # Host names, file names, settings and network examples (minio.plant.local, data.yaml,
    # aws:kms, fc00::/7, DEFECTLAB_FETCH_ALLOWLIST) and colours (#1e88e5).
    text = re.sub(r"\S*[.:_]\S*|#[0-9a-fA-F]{3,8}\b", " ", text)
    text = re.sub(r"\bv\d+\b", " ", text)  # version tags (v1, v12), kept as they are
    text = re.sub(r"\b[0-9a-f]{32,}\b", " ", text)  # digests (a model file's SHA-256)
    words = {word for word in WORD.findall(text) if word not in allowed}
    return sorted(word for word in words if len(word) > 1)  # a key name or A–Z is no word


def registered_model(organization: Any) -> DetectionModel:
    """A model with a ready version (with an alias) and a failed one, as the registry keeps them."""
    detector = DetectionModel.objects.create(organization=organization, name="Surface")
    common = {
        "organization": organization,
        "model": detector,
        "sha256": "ab" * 32,
        "size": 12_345,
        "ir_version": 8,
        "opset": 17,
        "input_height": 640,
        "input_width": 640,
        "layout": "yolov8",
        "names": ["crack", "pit"],
        "author": "Acme QA",
        "license": "AGPL-3.0",
        "conf": 0.25,
        "iou": 0.7,
        "max_det": 300,
    }
    ready = ModelVersion.objects.create(
        number=1, state=VersionState.READY, file_key="org/1/models/1/v1.onnx", **common
    )
    ModelVersion.objects.create(
        number=2,
        state=VersionState.FAILED,
        file_key="org/1/models/1/v2.onnx",
        error_code="out_of_memory",
        error="模型运行时所需内存超过了 768 MB 的上限。",
        **{**common, "sha256": "cd" * 32},
    )
    ModelAlias.objects.create(
        organization=organization, model=detector, name="production", version=ready
    )
    return detector


def decide_proposals(tenant: Any, version: ModelVersion) -> None:
    """A task submitted with the version's proposals kept, changed and left undecided, so the
    model page shows its acceptance table."""
    task = tenant.tasks[2]
    shapes = [
        {**box(tenant.label, 10 + 20 * i, 10, 25 + 20 * i, 25), "score": 0.9} for i in range(3)
    ]
    (prediction,) = insert_predictions(
        [
            PredictionRow(
                task.pk,
                task.organization_id,
                "Surface",
                "1",
                shapes,
                source=f"version:{version.pk}",
            )
        ]
    )
    workflow.save_annotation(
        task,
        tenant.user(Role.ANNOTATOR),
        base_version=None,
        shapes=[box(tenant.label)],
        submit=True,
        proposals=[
            {"prediction": prediction, "index": 0, "fate": "accepted"},
            {"prediction": prediction, "index": 1, "fate": "changed"},
        ],
    )


def test_every_page_and_error_page_speaks_chinese(
    browser: Any, browser_context_args: dict[str, Any]
) -> None:
    tenant = tenant_with_images("Acme", tasks=3)
    owner = tenant.user(Role.OWNER)
    labeling, reviewing = tenant.tasks[0], tenant.tasks[1]
    workflow.add_prediction(
        labeling,
        model_name="detector",
        model_version="7",
        shapes=[box(tenant.label, 30, 30, 90, 90)],
    )
    annotate(tenant, reviewing)
    add_allowed_network(tenant.organization, owner, "10.20.0.0/24", "line 3 camera")
    job = Job.objects.create(
        organization=tenant.organization,
        project=tenant.project,
        kind="export",
        state=JobState.FAILED,
        error="",
        started_by=owner,
    )
    _invite, token = create_invite(owner, tenant.organization, Role.ANNOTATOR, "")
    detector = registered_model(tenant.organization)
    decide_proposals(tenant, detector.versions.get(number=1))
    preannotated = Job.objects.create(
        organization=tenant.organization,
        project=tenant.project,
        kind="preannotate",
        state=JobState.SUCCEEDED,
        params={"model": detector.pk, "number": 1, "alias": "production", "tile": True},
        result={
            "model": detector.name,
            "version": 1,
            "alias": "production",
            "tasks": 3,
            "predictions": 2,
            "shapes": 5,
            "decided_kept": 1,
            "failed": 1,
            "errors": [{"task": labeling.pk, "error": "无法读取该任务的图像地址。"}],
        },
        total=3,
        done=3,
        failed=1,
        started_by=owner,
    )
    # A sensitivity preview that ran (its page draws the boxes and counts them per class).
    previewed = tenant.tasks[0]
    Job.objects.create(
        organization=tenant.organization,
        project=tenant.project,
        kind="sensitivity_preview",
        state=JobState.SUCCEEDED,
        params={
            "model": detector.pk,
            "version": detector.versions.get(number=1).pk,
            "number": 1,
            "alias": "production",
        },
        result={
            "model": detector.pk,
            "version": 1,
            "alias": "production",
            "layout": "yolov8",
            "nms": True,
            "max_det": 300,
            "floor": 0.01,
            "names": ["crack", "pit"],
            "images": [
                {
                    "task": previewed.pk,
                    "width": previewed.width,
                    "height": previewed.height,
                    "boxes": [[2, 2, 20, 20], [4, 4, 30, 30]],
                    "scores": [0.9, 0.4],
                    "classes": [0, 1],
                }
            ],
        },
        total=1,
        done=1,
        started_by=owner,
    )
    backend = create_backend(
        tenant.organization, owner, name="SAM", url="http://127.0.0.1:9", auth="Token x"
    )
    revoke_key(
        create_key(tenant.organization, owner, "line 3 camera", ["detect", "models"])[0], owner
    )
    create_key(tenant.organization, owner, "line 3 camera", signed_only=True)
    # Two evaluations of the detector (a report, a label error), and their comparison.
    first = evaluated(tenant.project, detector.versions.get(number=1), tenant.tasks[0])
    second = evaluated(tenant.project, detector.versions.get(number=1), tenant.tasks[0])
    allowed = PROPER | {
        word
        for typed in [
            tenant.organization.name,
            tenant.project.name,
            owner.name,
            *(label.name for label in tenant.project.labels.all()),
            *(
                str(value)
                for label in tenant.project.labels.all()
                for attribute in label.attributes
                for value in [attribute["name"], *attribute["options"]]
            ),
            *(member.name for member in tenant.members.values()),
            *(task.file_name for task in tenant.tasks),
            "detector",
            "line 3 camera",
            detector.name,
            "production",
            "staging",
            "Acme QA",
            "AGPL-3.0",
            "crack",
            "pit",
            "loopback",  # the name of the rule that refused an address, kept as it is
            "detect",  # the scopes of a detection service key, as the API names them
            "models",
        ]
        for word in WORD.findall(typed or "")
    }

    context = browser.new_context(**{**browser_context_args, "locale": "zh-CN"})
    page = context.new_page()
    found: dict[str, list[str]] = {}

    def visit(url: str, *, ready: str | None = None) -> None:
        page.goto(url)
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        if ready:
            page.wait_for_selector(ready)
        words = english_words(page, allowed)
        if words:
            found[url] = words

    # Signed out: the log-in page, an invite, and what refuses a person before they sign in.
    visit("/login/")
    visit(f"/invite/{token}/")
    visit("/no-such-page/")
    for _attempt in range(12):  # past the log-in throttle: the "too many attempts" page
        page.goto("/login/")
        page.fill("input[name=email]", "somebody@acme.test")  # throttled by address
        page.fill("input[name=password]", "wrong-password")
        page.click("form.stack button[type=submit]")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    words = english_words(page, allowed)
    if words:
        found["/login/ (too many attempts)"] = words

    context.clear_cookies()
    log_in(page, owner.email)
    organization, project = tenant.organization.pk, tenant.project.pk
    for url in [
        "/",
        f"/o/{organization}/",
        f"/o/{organization}/members/",
        f"/o/{organization}/jobs/",
        f"/o/{organization}/network/",
        f"/o/{organization}/webhooks/",
        f"/o/{organization}/models/",
        f"/models/{detector.pk}/",
        f"/o/{organization}/backends/",
        f"/o/{organization}/keys/",
        f"/o/{organization}/usage/",
        f"/o/{organization}/projects/new/",
        f"/jobs/{job.pk}/",
        f"/jobs/{preannotated.pk}/",
        f"/projects/{project}/preannotate/",
        f"/projects/{project}/evaluations/",
        f"/evaluations/{first.pk}/",
        f"/projects/{project}/evaluations/compare/?a={first.pk}&b={second.pk}",
        f"/projects/{project}/",
        f"/projects/{project}/settings/",
        f"/projects/{project}/data/",
        f"/projects/{project}/statistics/",
        f"/projects/{project}/storages/",
        "/account/",
        "/no-such-page/",
        f"/projects/{project + 1000}/",  # another organization's or nobody's: 404
    ]:
        visit(url)
    visit(f"/models/{detector.pk}/sensitivity/", ready="#preview-images[data-drawn='2']")
    # A backend's check, refused (loopback): the problem, its rule and where it is lifted.
    page.goto(f"/o/{organization}/backends/")
    with page.expect_navigation():
        page.click(f"#backend-{backend.pk} button[value=check]")
    page.wait_for_selector("#check-result")
    words = english_words(page, allowed)
    if words:
        found["a backend's check"] = words
    open_workspace(page, f"/tasks/{labeling.pk}/annotate/")
    visit(f"/tasks/{labeling.pk}/annotate/", ready=".dl-btn-submit")
    page.keyboard.press("?")  # the shortcut help
    words = english_words(page, allowed)
    if words:
        found["annotate: help"] = words
    page.keyboard.press("Escape")
    open_workspace(page, f"/tasks/{reviewing.pk}/review/")
    words = english_words(page, allowed)
    if words:
        found["review"] = words
    # A form sent from a page that has expired meanwhile (its CSRF token is stale).
    page.goto(f"/projects/{project}/settings/")
    context.clear_cookies()
    with page.expect_navigation():
        page.evaluate("() => document.querySelector('form[method=post] [type=submit]').click()")
    words = english_words(page, allowed)
    if words:
        found["a stale form"] = words
    context.close()
    assert not found, f"English words on Chinese pages: {found}"

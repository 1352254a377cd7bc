"""The model's sensitivity page, through Django's client in English and Chinese: the preview
started from its form runs as a job (followed by polling, then the page whole again), its
candidates handed to the page's script with signed image links; managers save and reset the
values (audited), others see no save button and their posts change nothing; another
organization's model or preview is 404."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from defectlab.inference import registry, sensitivity
from defectlab.inference.models import DetectionModel
from defectlab.jobs.models import Job, JobState
from defectlab.labeling.models import Project
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant, signed_in
from tests.inference.test_preannotation import PANELS

pytestmark = pytest.mark.django_db

TEXTS = {
    "en": ["Sensitivity of Demo detector", "Confidence", "Overlap (IoU)", "Save as our defaults",
           "Preview"],
    "zh-hans": ["Demo detector 的灵敏度", "置信度", "重叠度（IoU）", "保存为我们的默认值", "预览"],
}  # fmt: skip


def preview_data(html: str) -> dict[str, Any]:
    found = re.search(r'<script id="preview-data" type="application/json">(.*?)</script>', html)
    assert found, "the page hands the preview to its script"
    return json.loads(found.group(1))  # type: ignore[no-any-return]


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_preview_from_the_page_then_save_and_reset(
    tenant: Tenant, panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any, language: str,
) -> None:  # fmt: skip
    client = signed_in(manager, language)
    url = f"/models/{demo_model.pk}/sensitivity/"
    page = client.get(url).content.decode()
    assert 'id="no-preview"' in page and 'src="/static/defectlab/sensitivity.js"' in page
    for text in TEXTS[language]:
        assert text in page, text
    assert 'value="alias:production" selected' in page
    assert f'<option value="{panels.pk}"' in page
    # The sliders start at the version's own values.
    assert 'id="conf" name="conf" min="0.01" max="0.99" step="0.01" value="0.25"' in page
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(url, {"action": "preview", "run": "alias:production",
                                   "project": panels.pk})  # fmt: skip
    job = Job.objects.get(kind=sensitivity.KIND)
    assert answer.status_code == 302 and answer["Location"] == f"{url}?job={job.pk}"
    waiting = client.get(answer["Location"]).content.decode()
    assert 'id="preview-progress" hx-get=' in waiting
    drain()
    # The poll notices the end and asks for the whole page.
    assert client.get(answer["Location"], HTTP_HX_REQUEST="true")["HX-Refresh"] == "true"
    page = client.get(answer["Location"]).content.decode()
    data = preview_data(page)
    assert len(data["images"]) == PANELS == page.count('class="preview-image"')
    assert data["names"] == ["scratch", "dent", "stain"] and data["nms"] is True
    assert all(image["url"].startswith("/media/") for image in data["images"])
    assert client.get(data["images"][0]["url"]).status_code == 200
    # Saved: the sliders start there, and the page says so.
    answer = client.post(url, {"action": "save", "conf": "0.55", "iou": "0.4", "job": job.pk})
    assert answer["Location"] == f"{url}?job={job.pk}"
    demo_model.refresh_from_db()
    assert (demo_model.conf, demo_model.iou) == (0.55, 0.4)
    page = client.get(answer["Location"]).content.decode()
    assert 'value="0.55"' in page and 'value="0.40"' in page and 'id="reset-sensitivity"' in page
    model_page = client.get(f"/models/{demo_model.pk}/").content.decode()
    assert re.search(r'id="model-sensitivity-saved">[^<]*0\.55 · IoU 0\.4<', model_page)
    refused = client.post(url, {"action": "save", "conf": "1", "iou": "0.4"}, follow=True)
    assert 'class="message error"' in refused.content.decode()
    client.post(url, {"action": "reset", "job": job.pk})
    demo_model.refresh_from_db()
    assert (demo_model.conf, demo_model.iou) == (None, None)
    actions = AuditEvent.objects.filter(action=AuditAction.MODEL_SENSITIVITY_CHANGED)
    assert actions.count() == 2


def test_readers_see_the_page_without_saving(
    tenant: Tenant, panels: Project, demo_model: DetectionModel
) -> None:
    url = f"/models/{demo_model.pk}/sensitivity/"
    annotator = signed_in(tenant.user(Role.ANNOTATOR))
    page = annotator.get(url).content.decode()
    assert 'id="save-sensitivity"' not in page and 'id="start-preview"' not in page
    annotator.post(url, {"action": "save", "conf": "0.5"})
    annotator.post(url, {"action": "preview", "run": "version:1", "project": panels.pk})
    demo_model.refresh_from_db()
    assert demo_model.conf is None and not Job.objects.filter(kind=sensitivity.KIND).exists()
    reviewer = signed_in(tenant.user(Role.REVIEWER)).get(url).content.decode()
    assert 'id="start-preview"' in reviewer and 'id="save-sensitivity"' not in reviewer
    # The model's page links here.
    assert f'href="{url}"' in annotator.get(f"/models/{demo_model.pk}/").content.decode()


def test_another_organizations_model_or_preview_is_404(
    tenant: Tenant, other_tenant: Tenant, panels: Project, manager: Any,
    demo_model: DetectionModel,
) -> None:  # fmt: skip
    registry.set_sensitivity(demo_model, manager, conf=0.5)
    outsider = signed_in(other_tenant.user(Role.OWNER))
    url = f"/models/{demo_model.pk}/sensitivity/"
    assert outsider.get(url).status_code == 404
    assert outsider.post(url, {"action": "reset"}).status_code == 404
    demo_model.refresh_from_db()
    assert demo_model.conf == 0.5
    # A preview job of another model (or of another organization) is not this page's.
    other = Job.objects.create(
        organization=tenant.organization, kind=sensitivity.KIND, params={"model": 0},
        state=JobState.SUCCEEDED,
    )  # fmt: skip
    client = signed_in(manager)
    assert client.get(f"{url}?job={other.pk}").status_code == 404
    theirs = Job.objects.create(
        organization=other_tenant.organization, kind=sensitivity.KIND,
        params={"model": demo_model.pk}, state=JobState.SUCCEEDED,
    )  # fmt: skip
    assert client.get(f"{url}?job={theirs.pk}").status_code == 404


def test_a_failed_preview_says_why(
    tenant: Tenant, panels: Project, manager: Any, demo_model: DetectionModel
) -> None:
    job = Job.objects.create(
        organization=tenant.organization, project=panels, kind=sensitivity.KIND,
        params={"model": demo_model.pk, "number": 1}, state=JobState.FAILED,
        error="The model version was deleted.",
    )  # fmt: skip
    page = signed_in(manager).get(f"/models/{demo_model.pk}/sensitivity/").content.decode()
    assert 'id="preview-error"' in page and "The model version was deleted." in page
    assert f'href="/jobs/{job.pk}/"' in page

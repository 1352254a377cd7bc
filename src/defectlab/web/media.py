"""Serving images and thumbnails to whoever holds a valid signed URL."""

from __future__ import annotations

import time
from functools import partial

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from defectlab.errors import DefectLabError, NotFound, error_response
from defectlab.labeling.models import Task
from defectlab.labeling.sizes import learn_size_from
from defectlab.media.objects import serve_reference
from defectlab.media.references import ImageRef
from defectlab.media.services import read_grant, remote_variant, variant_bytes


@require_safe  # GET and HEAD (which answers the same headers, without a body)
def media(request: HttpRequest, token: str) -> HttpResponseBase:
    grant = read_grant(token)
    task = (
        Task.objects.filter(pk=grant.task_id)
        .only("image", "organization_id", "width", "height")
        .first()
        if grant
        else None
    )
    ref = ImageRef.parse(task.image) if task else None
    if grant is None or task is None or ref is None:
        return error_response(NotFound(_("This image link has expired or is not valid.")))
    # The first time the image passes through us, its size is learned if unknown.
    seen = partial(learn_size_from, task)
    try:
        if ref.kind == "storage":
            # A redirect to a presigned URL, the bytes streamed through (proxy mode), or a
            # rendered copy, depending on the connection and the format.
            return serve_reference(request, ref, task.organization_id, grant, seen)
        if ref.stored:
            data, content_type = variant_bytes(ref.location, grant.variant)
        else:
            data, content_type = remote_variant(
                task.pk, task.organization_id, ref.location, grant.variant, seen=seen
            )
    except DefectLabError as failure:
        # A reference the policy refuses or that cannot be fetched: say which rule, and why.
        return error_response(failure)
    response = HttpResponse(data, content_type=content_type)
    response["Cache-Control"] = f"private, max-age={max(0, grant.expires - int(time.time()))}"
    response["Content-Disposition"] = "inline"
    return response

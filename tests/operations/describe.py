"""What an installation holds, as one JSON document: the rows of the tables people care about
(every field, by id) and every stored file's SHA-256. The backup tests compare a source with
its restored copy through it; run as a script (``python -m tests.operations.describe``) it
describes the installation its ``DEFECTLAB_*`` environment names, and with ``probe`` then makes
one more organization and project there (the ids must follow the restored ones)."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

TABLES = [
    "tenancy.user",
    "tenancy.organization",
    "tenancy.membership",
    "tenancy.apitoken",
    "tenancy.auditevent",
    "labeling.project",
    "labeling.label",
    "labeling.task",
    "labeling.tasklabel",
    "labeling.annotation",
    "labeling.annotationversion",
    "labeling.prediction",
    "labeling.review",
    "inference.detectionmodel",
    "inference.modelversion",
    "inference.modelalias",
    "hooks.webhook",
    "serving.organizationkey",
    "jobs.job",
    "contenttypes.contenttype",
]


def precisely(value: Any) -> str:
    """Times to the microsecond (Django's JSON encoder keeps milliseconds only), and the rest
    as text."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def describe() -> dict[str, Any]:
    from django.apps import apps
    from django.conf import settings
    from django.core import serializers

    from defectlab.hooks.models import Webhook
    from defectlab.media.secrets import decrypt_secret

    document: dict[str, Any] = {}
    for label in TABLES:
        rows = serializers.serialize("python", apps.get_model(label)._base_manager.order_by("pk"))
        document[label] = json.loads(json.dumps(rows, default=precisely, sort_keys=True))
    document["webhook secrets"] = [
        decrypt_secret(hook.secret) for hook in Webhook.objects.order_by("pk")
    ]
    root = Path(settings.STORAGE_DIR)
    document["files"] = {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
    return document


def probe() -> dict[str, int]:
    from defectlab.labeling import services
    from defectlab.tenancy.models import User
    from defectlab.tenancy.services import create_organization

    owner = User.objects.create_user("probe@after.test", "a-long-password-1")
    organization = create_organization("After the restore", owner)
    project = services.create_project(organization, owner, name="New", labels=[{"name": "a"}])
    return {"organization": organization.pk, "project": project.pk}


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "defectlab.settings")
    import django

    django.setup()
    result: dict[str, Any] = describe()
    if sys.argv[1:] == ["probe"]:
        result["probe"] = probe()
    json.dump(result, sys.stdout)

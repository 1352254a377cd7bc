"""Importing tasks from a list of image URLs, as a job: every URL is downloaded through the
guarded fetcher, checked as an image and stored; each URL keeps its own result, so one bad
address does not sink the import and a retry retries only the failures.

Idempotent by construction: a URL's task is created in the same transaction that marks its row
done, so a worker killed at any point leaves each URL either done (with exactly one task) or not
(with none), and the next run picks up the rows that are not done.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from defectlab.errors import DefectLabError, Invalid
from defectlab.ingest.fetcher import fetch
from defectlab.ingest.services import allowlist_for
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.models import Job
from defectlab.jobs.runner import Progress
from defectlab.jobs.services import start_job
from defectlab.labeling.models import Project
from defectlab.labeling.services import create_uploaded_tasks
from defectlab.params import split_url
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.services import record
from defectlab.transfer.models import ImportState, UrlImportItem

KIND = "url_import"
MAX_URLS = 100_000
MAX_URL_LENGTH = 2048


# ---------------------------------------------------------------------------- reading lists


def urls_from_file(name: str, data: bytes) -> list[str]:
    """The URLs in an uploaded list: .txt (one a line, # comments), .csv (a column named url or
    image, else the first), or .json (a list of strings or of objects with "url" / "image")."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(_("%(file)s is not UTF-8 text.") % {"file": name}) from None
    suffix = PurePosixPath(name.lower()).suffix
    if suffix == ".json":
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as error:
            raise Invalid(
                _("%(file)s is not valid JSON (line %(line)s: %(problem)s).")
                % {"file": name, "line": error.lineno, "problem": error.msg}
            ) from None
        return urls_from_entries(entries)
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return []
        header = [cell.strip().lower() for cell in rows[0]]
        column = next((header.index(key) for key in ("url", "image") if key in header), None)
        body = rows[1:] if column is not None else rows
        column = column or 0
        return [row[column].strip() for row in body if len(row) > column and row[column].strip()]
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def urls_from_entries(entries: Any) -> list[str]:
    """URLs from a JSON value: a list of strings, or of objects with "url" or "image"."""
    if not isinstance(entries, list):
        raise Invalid(_("Send a JSON list of image addresses."))
    urls = []
    for index, entry in enumerate(entries):
        value = entry.get("url") or entry.get("image") if isinstance(entry, dict) else entry
        if not isinstance(value, str) or not value.strip():
            raise Invalid(
                _("Entry %(row)s: expected an address, or an object with “url”.")
                % {"row": index + 1},
                details={"row": index + 1},
            )
        urls.append(value.strip())
    return urls


def check_list(urls: Sequence[str]) -> None:
    """Refuse a list that cannot be imported at all (empty, too long, not web addresses).
    Addresses that fail later (refused by the policy, not an image) fail one by one."""
    if not urls:
        raise Invalid(_("The list holds no addresses."), code="empty")
    if len(urls) > MAX_URLS:
        raise Invalid(
            _("One import takes at most %(limit)s addresses; this list has %(count)s.")
            % {"limit": MAX_URLS, "count": len(urls)}
        )
    for index, url in enumerate(urls):
        parts = split_url(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL_LENGTH:
            raise Invalid(
                _("Line %(row)s: “%(url)s” is not an http:// or https:// address.")
                % {"row": index + 1, "url": url[:200]},
                details={"row": index + 1},
            )


# ---------------------------------------------------------------------------- the job


def start_url_import(project: Project, urls: Sequence[str], user: User | None) -> Job:
    """Record the URLs and start the job that fetches them (the message leaves on commit), in
    the audit trail as ``user``'s."""
    check_list(urls)
    with transaction.atomic():
        job = start_job(
            project.organization,
            KIND,
            params={"count": len(urls)},
            user=user,
            project=project,
        )
        job.total = len(urls)
        job.save(update_fields=["total"])
        UrlImportItem.objects.bulk_create(
            [
                UrlImportItem(job=job, organization=project.organization, index=index, url=url)
                for index, url in enumerate(urls)
            ],
            batch_size=1000,
        )
        record(
            None,
            AuditAction.TASKS_URL_IMPORT_STARTED,
            organization=project.organization_id,
            target=project,
            actor=user,
            data={"count": len(urls), "job": job.pk},
        )
    return job


def run_url_import(job: Job, progress: Progress) -> dict[str, Any]:
    project = Project.objects.get(pk=job.project_id or 0)
    items = UrlImportItem.objects.filter(job=job)
    progress.total(items.count())
    # What earlier runs finished stays finished; failures are tried again.
    progress.at(items.filter(state=ImportState.DONE).count())
    allowlist = allowlist_for(job.organization_id)
    limit = settings.MAX_UPLOAD_MB * 1024 * 1024
    pending = items.exclude(state=ImportState.DONE).order_by("index")
    for item in pending.iterator(chunk_size=200):
        try:
            fetched = fetch(item.url, allowlist=allowlist, max_bytes=limit)
            image = checked_image(_file_name(fetched.final_url, item.index), fetched.body)
        except DefectLabError as failure:
            details = failure.details if isinstance(failure.details, dict) else {}
            UrlImportItem.objects.filter(pk=item.pk).update(
                state=ImportState.FAILED,
                error=failure.message[:1000],
                rule=str(details.get("rule", failure.code))[:32],
            )
            progress.step(failed=1)
            continue
        with transaction.atomic():
            (task,) = create_uploaded_tasks(project, [image])
            UrlImportItem.objects.filter(pk=item.pk).update(
                state=ImportState.DONE, task=task, error="", rule=""
            )
        progress.step()
    counts = {
        state: items.filter(state=state).count() for state in (ImportState.DONE, ImportState.FAILED)
    }
    progress.at(
        counts[ImportState.DONE] + counts[ImportState.FAILED], failed=counts[ImportState.FAILED]
    )
    return {"imported": counts[ImportState.DONE], "failed": counts[ImportState.FAILED]}


def _file_name(url: str, index: int) -> str:
    """A readable task name from the URL's last path segment (or the row number)."""
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    return name[-200:] if name else f"image-{index + 1}"

"""Fetching the images of an export's tasks kept by reference, with retries.

Each image is fetched before its task is written, so a task whose
image cannot be had is left out whole (no label file without its image). A failure that may pass
(no connection, a timeout, a server error) is tried again after a short, growing pause, up to
``DEFECTLAB_JOB_MAX_ATTEMPTS`` attempts in all; a refusal by the URL policy, or a 404, is not.
Once a host that has not answered in this export failed every attempt, its next images get one
attempt each, so an export of many images from a host that is down does not wait for each of
them in turn.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import IO, TypeVar

from django.conf import settings
from django.utils.translation import gettext as _

from defectlab.errors import DefectLabError
from defectlab.images import image_size
from defectlab.ingest.services import may_pass
from defectlab.labeling.models import Task
from defectlab.labeling.sizes import note_size, size_known
from defectlab.media.references import ImageRef

T = TypeVar("T")
ImageOpener = Callable[[], IO[bytes]]

RETRY_PAUSE = 0.5  # seconds before the second attempt; doubled each time
MAX_PAUSE = 4.0


class MissingImage(Exception):
    """The image of a task kept by reference could not be had; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExportFetcher:
    """Fetches the images of one export's tasks kept by reference (see the module docstring)."""

    def __init__(self) -> None:
        self.down: set[str] = set()  # hosts (or storages) that failed every attempt
        self.up: set[str] = set()  # those that answered once: one failing image is not all

    def prepare(
        self, task: Task, ref: ImageRef | None, *, include_image: bool
    ) -> ImageOpener | None:
        """What the export needs of ``task``'s image (kept by reference ``ref``): its size when
        unknown (learned and stored here, shapes fitted), and when ``include_image``, an opener
        of its bytes. Raises MissingImage when either cannot be had."""
        need_size = not size_known(task)
        if not include_image and not need_size:
            return None
        if ref is None:
            raise MissingImage(_("Its address is no http(s) address or storage object."))
        organization_id = task.organization_id
        opener: ImageOpener | None = None
        size: tuple[int, int] | None = None
        if ref.kind == "url" and include_image:  # one fetch gives the bytes and the size
            data = self._retrying(ref, lambda: ref.read(organization_id))
            size = image_size(data) if need_size else None
            opener = lambda: io.BytesIO(data)  # noqa: E731
        else:
            if need_size:
                size = self._retrying(ref, lambda: ref.size(organization_id))
            if include_image:
                source = self._retrying(ref, lambda: ref.open(organization_id))
                opener = lambda: source  # noqa: E731 - opened here, read by the writer
        if need_size:
            if size is None:
                raise MissingImage(_("Its size cannot be read: this file is no image we know."))
            note_size(task, size)
        return opener

    def _retrying(self, ref: ImageRef, attempt: Callable[[], T]) -> T:
        place = ref.place
        attempts = 1 if place in self.down else settings.JOB_MAX_ATTEMPTS
        for number in range(1, attempts + 1):
            try:
                result = attempt()
            except (DefectLabError, OSError) as error:
                if number < attempts and _may_pass(error):
                    time.sleep(min(RETRY_PAUSE * 2 ** (number - 1), MAX_PAUSE))
                    continue
                if _may_pass(error) and place not in self.up:
                    self.down.add(place)
                raise MissingImage(_reason(error)) from error
            self.up.add(place)
            self.down.discard(place)
            return result
        raise AssertionError("unreachable")  # pragma: no cover - attempts >= 1


def _may_pass(error: BaseException) -> bool:
    if isinstance(error, OSError):  # a storage connection's read (not a missing object)
        return not isinstance(error, FileNotFoundError)
    return may_pass(error)


def _reason(error: BaseException) -> str:
    if isinstance(error, DefectLabError):
        return error.message
    if isinstance(error, FileNotFoundError):
        return _("This file is no longer in storage.")
    return str(error) or _("The image could not be read.")

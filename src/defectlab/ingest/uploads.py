"""Images arriving in a request: single files and zip archives, each one truly decoded.

Nothing here writes anywhere; it turns uploads into checked images or a clear error naming the
file (or zip entry) at fault, so the caller can store all of them or none."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.utils.translation import gettext as _

from defectlab.errors import Invalid, TooLarge
from defectlab.images import ImageError, ImageInfo, inspect_image, is_image_name
from defectlab.zipsafety import (
    is_encrypted,
    is_junk,
    overcompressed,
    overcompressed_archive,
    points_outside,
)

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class IncomingImage:
    name: str
    data: bytes
    info: ImageInfo


def image_too_large(name: str) -> TooLarge:
    """The refusal of an image file above ``MAX_UPLOAD_MB`` (also while it streams in)."""
    return TooLarge(
        _("%(name)s is larger than the %(limit)s MB limit.")
        % {"name": name, "limit": settings.MAX_UPLOAD_MB},
        details={"file": name, "limit_mb": settings.MAX_UPLOAD_MB},
    )


def archive_too_large(name: str) -> TooLarge:
    """The refusal of a zip archive above ``MAX_ARCHIVE_MB`` (also while it streams in)."""
    return TooLarge(
        _("%(archive)s is larger than %(limit)s MB.")
        % {"archive": name, "limit": settings.MAX_ARCHIVE_MB},
        details={"file": name, "limit_mb": settings.MAX_ARCHIVE_MB},
    )


def checked_image(name: str, data: bytes) -> IncomingImage:
    if len(data) > settings.MAX_UPLOAD_MB * MB:
        raise image_too_large(name)
    try:
        info = inspect_image(data, name=name, max_pixels=settings.MAX_IMAGE_PIXELS)
    except ImageError as error:
        raise Invalid(str(error), code=error.code, details={"file": name}) from None
    return IncomingImage(name=name, data=data, info=info)


def images_from_uploads(files: Iterable[tuple[str, IO[bytes]]]) -> Iterator[IncomingImage]:
    """Each uploaded ``(name, file)``: an image, or a zip archive of images."""
    for name, file in files:
        if name.lower().endswith(".zip") or zipfile.is_zipfile(file):
            file.seek(0)
            yield from images_from_zip(name, file)
        else:
            file.seek(0)
            yield checked_image(name, file.read(settings.MAX_UPLOAD_MB * MB + 1))


def images_from_zip(archive_name: str, file: IO[bytes]) -> Iterator[IncomingImage]:
    file.seek(0, 2)
    if file.tell() > settings.MAX_ARCHIVE_MB * MB:
        raise archive_too_large(archive_name)
    file.seek(0)
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError):
        raise Invalid(_("%(name)s is not a valid zip archive.") % {"name": archive_name}) from None
    for entry in _checked_entries(archive_name, archive):
        try:
            # Read at most one byte past the limit: the sizes in a zip's directory can lie.
            with archive.open(entry) as member:
                data = member.read(settings.MAX_UPLOAD_MB * MB + 1)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError):
            raise _refused(
                _("“%(entry)s” in %(archive)s is damaged."), archive_name, entry
            ) from None
        yield checked_image(entry.filename, data)


def _checked_entries(archive_name: str, archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The entries to read, once every one has passed the checks that need no data (the rules of
    ``defectlab.zipsafety``, the limits, image names): one bad entry refuses the whole archive."""
    entries = archive.infolist()
    for entry in entries:
        if points_outside(entry.filename):
            raise _refused(
                _(
                    "%(archive)s contains “%(entry)s”, a path that points outside the archive; nothing was imported."
                ),
                archive_name,
                entry,
                "unsafe_path",
            )
    wanted = [entry for entry in entries if not entry.is_dir() and not is_junk(entry.filename)]
    if len(wanted) > settings.MAX_ARCHIVE_FILES:
        raise TooLarge(
            _("%(archive)s holds %(count)s files; the limit is %(limit)s.")
            % {"archive": archive_name, "count": len(wanted), "limit": settings.MAX_ARCHIVE_FILES}
        )
    if sum(entry.file_size for entry in wanted) > settings.MAX_ARCHIVE_MB * MB:
        raise TooLarge(
            _("%(archive)s unpacks to more than %(limit)s MB.")
            % {"archive": archive_name, "limit": settings.MAX_ARCHIVE_MB}
        )
    for entry in wanted:
        if not is_image_name(entry.filename):
            raise _refused(
                _(
                    "“%(entry)s” in %(archive)s is not an image file (JPEG, PNG, BMP or TIFF); nothing was imported."
                ),
                archive_name,
                entry,
                "unsupported_format",
            )
        if is_encrypted(entry):
            raise _refused(_("“%(entry)s” in %(archive)s is encrypted."), archive_name, entry)
        if entry.file_size > settings.MAX_UPLOAD_MB * MB:  # as declared; reads are capped too
            raise image_too_large(entry.filename)
        if overcompressed(entry):
            raise _refused(
                _(
                    "“%(entry)s” in %(archive)s is compressed suspiciously well (a zip bomb?); nothing was imported."
                ),
                archive_name,
                entry,
                "zip_bomb",
            )
    if overcompressed_archive(wanted):
        raise Invalid(
            _("%(archive)s is compressed suspiciously well (a zip bomb?); nothing was imported.")
            % {"archive": archive_name},
            code="zip_bomb",
        )
    return wanted


def _refused(
    message: str, archive_name: str, entry: zipfile.ZipInfo, code: str | None = None
) -> Invalid:
    """The refusal of an archive for one of its entries; ``message`` names both."""
    return Invalid(message % {"archive": archive_name, "entry": entry.filename}, code=code)

"""Zip archives in and out: a streaming zip writer for exports, and a guarded reader of zip
archives, folders or single files for imports.

The writer never holds an image in memory: each one is copied in chunks into its member, and
already-compressed formats are stored rather than deflated. It also works on output that cannot
seek (an HTTP response, an upload stream). The reader refuses, before any data is read, entries
that would escape the archive, symlinks, encrypted entries and archives that unpack to more than
the limits allow; afterwards zipfile itself never inflates a member past its declared size.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.utils.translation import gettext as _

from defectlab.datasets.model import DatasetError, ImageOpener
from defectlab.images import is_image_name
from defectlab.zipsafety import (
    MAX_RATIO,
    is_encrypted,
    is_junk,
    is_symlink,
    overcompressed,
    overcompressed_archive,
    points_outside,
)

CHUNK = 1 << 20
MB = 1 << 20
# Already compressed: deflating them again costs CPU and saves nothing.
STORED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".zip"})
# zlib's level for the one large annotation file of a format: level 1 deflates JSON about 2.5
# times as fast as the default 6, into an archive about 15 % larger (Label Studio JSON of 10k
# tasks: 2.8 MB instead of 2.5 MB, 0.1 s instead of 0.35 s; bench/README.md).
TEXT_LEVEL = 1
# Per-image annotation files smaller than this are stored, not deflated (`write_small`), in an
# archive with the images: a YOLO label file is a few hundred bytes, which deflating shrinks by a
# few dozen, while zlib's set-up for each member costs about 30 us (0.3 s of CPU in a 10k export
# of 3 GB; bench/README.md).
STORE_TEXT_BELOW = 1024
# Files an archive may hold besides its images and one annotation file per image.
EXTRA_FILES = 1000


@dataclass(frozen=True, slots=True)
class Limits:
    """What an import may hold; the caller passes its settings in.

    The count limit is on images, the thing a person counts: an exported dataset has one
    annotation file per image in some formats (YOLO, VOC) and one for all of them in others, so
    the files besides images may number as many as the images plus `EXTRA_FILES` (data.yaml,
    split lists, ...). `max_entries`, when given, caps every file instead. Sizes and the
    compression ratio (`max_ratio`, member by member and for the archive as a whole) guard the
    rest."""

    max_images: int = 100_000
    max_entries: int | None = None
    max_member_bytes: int = 2048 * MB
    max_total_bytes: int = 64 * 1024 * MB
    # Annotation files (JSON, XML, text) are parsed in memory, so they get a tighter cap.
    max_text_bytes: int = 512 * MB
    # A deflated member this many times smaller than its content is a bomb, not a dataset.
    max_ratio: int = MAX_RATIO
    max_image_pixels: int | None = None

    @property
    def entry_limit(self) -> int:
        if self.max_entries is not None:
            return self.max_entries
        return 2 * self.max_images + EXTRA_FILES


def unsafe_name(name: str) -> bool:
    """Whether a member name could point outside the archive (``zipsafety.points_outside``) or
    be read differently on another system: a dataset's files refer to each other by name, so
    backslashes (separators on Windows) and ``.`` parts are refused too."""
    return (
        points_outside(name)
        or "\\" in name
        or any(part == "." for part in name.rstrip("/").split("/"))
    )


def check_member_name(name: str) -> str:
    """Return `name` if it is a safe relative member path, else raise DatasetError."""
    if unsafe_name(name) or "//" in name or name.endswith("/"):
        raise DatasetError(_("This file name is not a safe relative path."), where=name)
    return name


def stem(name: str) -> str:
    """The member name without its suffix. (pathlib interns every path part it parses, which
    grows memory with each item of a large export, so hot export paths use posixpath.)"""
    return posixpath.splitext(name)[0]


class _CountingWriter(io.RawIOBase):
    """Write-only pass-through that counts bytes; it has no seek, so zipfile streams
    (sizes go in data descriptors after each member instead of being patched in)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.out.write(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


def _unreadable(name: str) -> DatasetError:
    return DatasetError(_("The image could not be read from storage."), where=name)


class ZipSink:
    """The export archive. Member names are checked and must be unique."""

    def __init__(self, out: IO[bytes]) -> None:
        seekable = False
        with contextlib.suppress(AttributeError, OSError):
            seekable = out.seekable()
        self._counter: _CountingWriter | None = None
        self._start = 0
        if seekable:
            self._start = out.tell()
            target: IO[bytes] = out
        else:
            self._counter = _CountingWriter(out)
            target = self._counter  # type: ignore[assignment]
        self._out = out
        self._zip = zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        # Every member gets the export's start time: one shared tuple, not one per member.
        self._now = time.localtime()[:6]

    def _info(self, name: str, *, compress: bool) -> zipfile.ZipInfo:
        check_member_name(name)
        # zipfile's own index of written members (it keeps one record a member for the central
        # directory anyway) refuses duplicates; a second set of names would double that.
        if name in self._zip.NameToInfo:
            raise DatasetError(_("Two items would be written to this same file."), where=name)
        info = zipfile.ZipInfo(name, date_time=self._now)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        return info

    def write_text(self, name: str, text: str) -> None:
        self._zip.writestr(self._info(name, compress=True), text.encode("utf-8"))

    def write_small(self, name: str, text: str) -> None:
        """A text member of which an export writes one per image: stored as it is below
        STORE_TEXT_BELOW bytes, deflated above. Readers see the same content either way."""
        data = text.encode("utf-8")
        self._zip.writestr(self._info(name, compress=len(data) >= STORE_TEXT_BELOW), data)

    def copy_image(self, name: str, opener: ImageOpener) -> int:
        """Copy an image into a new member in chunks; returns the bytes copied. Read failures
        name the member; write failures (the output) propagate as they are."""
        compress = posixpath.splitext(name)[1].lower() not in STORED_SUFFIXES
        try:
            source = opener()
        except OSError as error:
            raise _unreadable(name) from error
        total = 0
        with (
            source,
            self._zip.open(self._info(name, compress=compress), "w", force_zip64=True) as dst,
        ):
            while True:
                try:
                    chunk = source.read(CHUNK)
                except OSError as error:
                    raise _unreadable(name) from error
                if not chunk:
                    return total
                dst.write(chunk)
                total += len(chunk)

    def write_parts(self, name: str, parts: list[str | Spool]) -> None:
        """One deflated member made of literal text and spooled fragments, in order: the one
        large annotation file of a format (COCO, Label Studio JSON, CVAT XML), deflated at
        TEXT_LEVEL."""
        info = self._info(name, compress=True)
        info._compresslevel = TEXT_LEVEL  # type: ignore[attr-defined]
        with self._zip.open(info, "w", force_zip64=True) as member:
            for part in parts:
                if isinstance(part, Spool):
                    part.copy_into(member)
                else:
                    member.write(part.encode("utf-8"))

    def abort(self) -> None:
        """Close after a failed export so nothing writes to `out` later (zipfile would from
        its finaliser); what was written is a partial archive for the caller to discard."""
        with contextlib.suppress(Exception):
            self._zip.close()

    def close(self) -> int:
        """Finish the archive (central directory) and return its size in bytes."""
        self._zip.close()
        if self._counter is not None:
            return self._counter.count
        return self._out.tell() - self._start


class Spool:
    """Text written now and copied into a member later, kept on disk past 256 KB. It lets one
    JSON or XML member hold every item while the images stream into the archive first."""

    def __init__(self) -> None:
        # Closed by copy_into or close, which the exporters call in a finally block.
        # Past 256 KB on the data volume (FILE_UPLOAD_TEMP_DIR), not a small /tmp.
        self._file = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=256 * 1024, dir=settings.FILE_UPLOAD_TEMP_DIR
        )
        self.count = 0

    def add(self, text: str, *, separator: str = "") -> None:
        if self.count and separator:
            self._file.write(separator.encode("utf-8"))
        self._file.write(text.encode("utf-8"))
        self.count += 1

    def extend(self, texts: list[str], *, separator: str = "") -> None:
        """`add` for each of `texts`, in one write."""
        if not texts:
            return
        joined = separator.join(texts)
        if self.count and separator:
            joined = separator + joined
        self._file.write(joined.encode("utf-8"))
        self.count += len(texts)

    def copy_into(self, member: IO[bytes]) -> None:
        self._file.seek(0)
        while chunk := self._file.read(CHUNK):
            member.write(chunk)
        self._file.close()

    def close(self) -> None:
        self._file.close()


class Source:
    """A read-only tree of files (zip archive, folder or one file) with `/`-separated names,
    relative to the dataset's root (see `root_at`)."""

    def __init__(self, sizes: dict[str, int], limits: Limits) -> None:
        self.limits = limits
        wanted = {name: size for name, size in sizes.items() if not is_junk(name)}
        images = sum(1 for name in wanted if is_image_name(name))
        if images > limits.max_images:
            raise DatasetError(
                _("The archive holds %(count)s images; the limit is %(limit)s.")
                % {"count": images, "limit": limits.max_images}
            )
        if len(wanted) > limits.entry_limit:
            raise DatasetError(
                _("The archive holds %(count)s files; the limit is %(limit)s.")
                % {"count": len(wanted), "limit": limits.entry_limit}
            )
        for name, size in wanted.items():
            if size > limits.max_member_bytes:
                raise DatasetError(_("This file is larger than the import limit."), where=name)
        if sum(wanted.values()) > limits.max_total_bytes:
            raise DatasetError(_("The archive unpacks to more than the import limit."))
        self._prefix = ""
        self._sizes = wanted

    def root_at(self, found: Callable[[Iterable[str]], bool]) -> None:
        """Look inside the archive's only top folder when the dataset is not at the top
        (`found` tells whether a set of names holds the format's marker files)."""
        if found(self._sizes):
            return
        prefix = _common_folder(self._sizes)
        inner = {name[len(prefix) :]: size for name, size in self._sizes.items()}
        if prefix and found(inner):
            self._prefix, self._sizes = prefix, inner

    def names(self) -> list[str]:
        return sorted(self._sizes)

    def __contains__(self, name: object) -> bool:
        return name in self._sizes

    def size(self, name: str) -> int:
        return self._sizes[name]

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        """The whole content of an annotation file, within the text limit."""
        if self._sizes[name] > self.limits.max_text_bytes:
            raise DatasetError(_("This annotation file is too large to import."), where=name)
        with self.open(name) as file:
            data = file.read(self.limits.max_text_bytes + 1)
        if len(data) > self.limits.max_text_bytes:
            raise DatasetError(_("This annotation file is too large to import."), where=name)
        return data

    def opener(self, name: str) -> ImageOpener:
        return lambda: self.open(name)

    def close(self) -> None:
        pass


def _common_folder(sizes: dict[str, int]) -> str:
    firsts = {name.split("/", 1)[0] for name in sizes}
    if len(firsts) == 1 and all("/" in name for name in sizes):
        return firsts.pop() + "/"
    return ""


class ZipSource(Source):
    def __init__(self, path: Path, limits: Limits) -> None:
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as error:
            raise DatasetError(_("This is not a readable zip archive."), where=path.name) from error
        try:
            self._infos = self._check(limits)
            super().__init__({name: info.file_size for name, info in self._infos.items()}, limits)
        except BaseException:
            self._zip.close()
            raise

    def _check(self, limits: Limits) -> dict[str, zipfile.ZipInfo]:
        infos: dict[str, zipfile.ZipInfo] = {}
        # Every entry is checked before any is read: one bad entry refuses the whole archive.
        for info in self._zip.infolist():
            name = info.filename
            if unsafe_name(name):
                raise DatasetError(
                    _("This entry's path points outside the archive; nothing was imported."),
                    where=name,
                )
            if info.is_dir():
                continue
            if is_symlink(info):
                raise DatasetError(_("Symbolic links are not accepted in archives."), where=name)
            if is_encrypted(info):
                raise DatasetError(_("This entry is encrypted."), where=name)
            if name in infos:
                raise DatasetError(_("The archive holds this file twice."), where=name)
            if overcompressed(info, limits.max_ratio):
                raise DatasetError(
                    _("This entry is compressed suspiciously well (a zip bomb?)."), where=name
                )
            infos[name] = info
        if overcompressed_archive(infos.values(), limits.max_ratio):
            raise DatasetError(
                _(
                    "The archive is compressed suspiciously well (a zip bomb?); nothing was imported."
                )
            )
        return infos

    def open(self, name: str) -> IO[bytes]:
        try:
            return self._zip.open(self._infos[self._prefix + name])
        except (zipfile.BadZipFile, OSError, NotImplementedError) as error:
            raise DatasetError(_("This entry is damaged."), where=name) from error

    def read(self, name: str) -> bytes:
        try:
            return super().read(name)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise DatasetError(_("This entry is damaged."), where=name) from error

    def close(self) -> None:
        self._zip.close()


class FolderSource(Source):
    def __init__(self, root: Path, limits: Limits) -> None:
        self._root = root
        sizes: dict[str, int] = {}
        for name, path in _walk(root):
            sizes[name] = path.stat().st_size
        super().__init__(sizes, limits)

    def open(self, name: str) -> IO[bytes]:
        path = self._root / (self._prefix + name)
        # O_NOFOLLOW: a file swapped for a symlink after the walk is still refused.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        try:
            return os.fdopen(os.open(path, flags), "rb")
        except OSError as error:
            raise DatasetError(_("This file could not be read."), where=name) from error


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        for entry in (*dirs, *files):
            path = base / entry
            if path.is_symlink():
                name = path.relative_to(root).as_posix()
                raise DatasetError(_("Symbolic links are not accepted in archives."), where=name)
        for entry in files:
            path = base / entry
            # Only regular files: opening a FIFO or a device would block or read forever.
            if stat.S_ISREG(path.lstat().st_mode):
                yield path.relative_to(root).as_posix(), path


class FileSource(FolderSource):
    """A single annotation file given on its own (a Label Studio or COCO JSON)."""

    def __init__(self, path: Path, limits: Limits) -> None:
        if path.is_symlink():
            raise DatasetError(_("Symbolic links are not accepted in archives."), where=path.name)
        self._root = path.parent
        self._prefix = ""
        Source.__init__(self, {path.name: path.stat().st_size}, limits)


def open_source(path: str | os.PathLike[str], limits: Limits | None = None) -> Source:
    limits = limits or Limits()
    target = Path(path)
    if target.is_dir():
        return FolderSource(target, limits)
    if not target.is_file():
        raise DatasetError(_("There is no file or folder here."), where=str(path))
    if zipfile.is_zipfile(target):
        return ZipSource(target, limits)
    return FileSource(target, limits)

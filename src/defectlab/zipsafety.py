"""What makes a zip entry unsafe to read, for every reader of zip archives people send us (image
uploads in ``ingest.uploads``, dataset imports in ``datasets.archive``).

Plain rules on ``zipfile.ZipInfo`` and member names, no Django: each reader raises its own
error, in its own words, when one of them says no. Every entry is checked before any is read.
"""

from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Iterable

MB = 1 << 20
# A deflated member this many times smaller than its content is a bomb, not a dataset or a
# batch of photos (a plain black 16-bit TIFF deflates ~1000:1; real images far less).
MAX_RATIO = 250
_JUNK = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})
_DRIVE = re.compile(r"^[A-Za-z]:")
_SEPARATORS = re.compile(r"[\\/]")


def points_outside(name: str) -> bool:
    """Whether a member name would point outside the archive if extracted, on any system
    (backslashes are separators on Windows, so ``..\\x`` counts too)."""
    return (
        not name
        or name.startswith(("/", "\\"))
        or "\x00" in name
        or bool(_DRIVE.match(name))
        or ".." in _SEPARATORS.split(name)
    )


def is_junk(name: str) -> bool:
    """Files an operating system leaves in archives it makes (macOS resource forks, Finder and
    Explorer caches): skipped, never refused."""
    return any(part in _JUNK or part.startswith("._") for part in name.split("/"))


def is_encrypted(info: zipfile.ZipInfo) -> bool:
    return bool(info.flag_bits & 0x1)


def is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def overcompressed(info: zipfile.ZipInfo, max_ratio: int = MAX_RATIO) -> bool:
    """A member above 1 MB whose content is more than ``max_ratio`` times its packed size."""
    return info.file_size > MB and info.file_size > info.compress_size * max_ratio


def overcompressed_archive(infos: Iterable[zipfile.ZipInfo], max_ratio: int = MAX_RATIO) -> bool:
    """The same for the members together: small members escape the check one by one, and
    thousands of them are a bomb too."""
    unpacked = packed = 0
    for info in infos:
        unpacked += info.file_size
        packed += info.compress_size
    return unpacked > MB and unpacked > packed * max_ratio

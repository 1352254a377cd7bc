"""The backup archive: one tar file (gzip-compressed when its name ends in ``.gz``), written and
read as a stream, never whole in memory.

Its members, in this order:

- ``db/<app>.<model>.jsonl`` — the rows of each table, one JSON object a line (Django's
  serialized form: portable between SQLite and PostgreSQL), in the order they are loaded;
- ``files/<key>`` — every stored file under its storage key (images, thumbnails, model files);
- ``members.jsonl`` — every member above, in order: ``{"name", "size", "sha256"}`` a line;
- ``manifest.json`` — the format, the app version, the database vendor, the migration state,
  the tables with their row counts, the SHA-256 of ``members.jsonl``, the storage keys the rows
  name whose files were deleted while the backup ran (``files.missing``), an HMAC-SHA256 of the
  manifest keyed from the installation's secret key (``hmac``: who can write the backup share
  but does not know the key cannot forge rows and reseal), and a checksum of the manifest.

`verify` reads the archive once and refuses it unless every member is a plain file with a safe
name, no name twice and none both a file and a folder (``files/a`` beside ``files/a/b``),
listed in ``members.jsonl`` in the same order with the same size and SHA-256, and the manifest
is well formed and whole. Nothing is written before it has passed. (The HMAC is checked by
`restore`, which knows the keys.)"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.utils.translation import gettext as _

from defectlab.errors import Invalid
from defectlab.zipsafety import points_outside

FORMAT = "defectlab-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MEMBERS = "members.jsonl"
CHUNK = 1024 * 1024
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


class ArchiveRefused(Invalid):
    """An archive that cannot be restored: corrupt, incomplete, or from another version."""

    code = "archive_refused"


def canonical(document: dict[str, Any]) -> str:
    """The checksum of a manifest: SHA-256 over its JSON with sorted keys, the checksum left out."""
    body = {key: value for key, value in document.items() if key != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def signature(document: dict[str, Any], secret_key: str) -> str:
    """The manifest's HMAC-SHA256 (checksum and HMAC left out), keyed by a key derived from
    ``secret_key`` for this use alone. The manifest holds the SHA-256 of ``members.jsonl``,
    which holds every member's: the HMAC vouches for every byte of the archive."""
    key = hmac.new(secret_key.encode(), b"defectlab backup manifest hmac", hashlib.sha256)
    body = {name: value for name, value in document.items() if name not in ("checksum", "hmac")}
    data = json.dumps(body, sort_keys=True).encode()
    return hmac.new(key.digest(), data, hashlib.sha256).hexdigest()


def signed_by(document: dict[str, Any], secret_keys: list[str]) -> bool:
    found = document.get("hmac")
    return (
        isinstance(found, str)
        and found.isascii()
        and any(hmac.compare_digest(found, signature(document, key)) for key in secret_keys)
    )


class HashingReader(io.RawIOBase):
    """Reads through ``source``, counting and hashing what passes."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.source.read(len(buffer))
        buffer[: len(data)] = data
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


def safe_name(name: str) -> bool:
    """A member name we write: not pointing outside (``zipsafety``), and stricter — no ``.``
    or empty parts, no backslash at all, under ``db/`` or ``files/`` but for the listings."""
    parts = name.split("/")
    return (
        not points_outside(name)
        and all(part not in ("", ".") for part in parts)
        and "\\" not in name
        and (name in (MANIFEST, MEMBERS) or (parts[0] in ("db", "files") and len(parts) > 1))
    )


class Writer:
    """Adds members to a tar stream, listing each with its size and SHA-256."""

    def __init__(self, path: Path, work: Path, *, compress: bool = False) -> None:
        # Only its owner may read it: password hashes and encrypted credentials are inside.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # also when the file was there already
        self.file = os.fdopen(descriptor, "wb")
        pax = tarfile.PAX_FORMAT
        if compress:
            self.tar = tarfile.open(fileobj=self.file, mode="w|gz", format=pax)  # noqa: SIM115
        else:
            self.tar = tarfile.open(fileobj=self.file, mode="w|", format=pax)  # noqa: SIM115
        self.listing = open(work / MEMBERS, "w+", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def add(self, name: str, source: IO[bytes], size: int, mtime: float = 0) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, int(mtime), 0o644
        reader = HashingReader(source)
        self.tar.addfile(info, io.BufferedReader(reader, CHUNK))
        if reader.size != size:
            raise OSError(f"{name} changed while it was being read")
        entry = {"name": name, "size": size, "sha256": reader.digest.hexdigest()}
        self.listing.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.count += 1

    def add_path(self, name: str, path: Path) -> None:
        with open(path, "rb") as source:
            self.add(name, source, path.stat().st_size)

    def finish(self, manifest: dict[str, Any], secret_key: str) -> None:
        self.listing.flush()
        self.listing.seek(0)
        size = Path(self.listing.name).stat().st_size
        with open(self.listing.name, "rb") as listing:
            reader = HashingReader(listing)
            info = tarfile.TarInfo(MEMBERS)
            info.size, info.mode = size, 0o644
            self.tar.addfile(info, io.BufferedReader(reader, CHUNK))
        manifest = {
            **manifest,
            "members": {"count": self.count, "sha256": reader.digest.hexdigest()},
        }
        manifest["hmac"] = signature(manifest, secret_key)
        manifest["checksum"] = canonical(manifest)
        data = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(data), 0o644
        self.tar.addfile(info, io.BytesIO(data))
        self.close()

    def close(self) -> None:
        self.listing.close()
        self.tar.close()
        self.file.close()


def open_stream(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r|*")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ArchiveRefused(
            _("%(path)s is not a DefectLab backup (not a tar archive: %(error)s).")
            % {"path": path, "error": error}
        ) from None


def members(path: Path) -> Iterator[tuple[tarfile.TarInfo, IO[bytes]]]:
    """The archive's members in order, each with a stream of its bytes; a damaged or
    truncated archive raises `ArchiveRefused`."""
    tar = open_stream(path)
    try:
        for info in tar:
            if not info.isreg():
                raise ArchiveRefused(
                    _("The archive holds %(name)s, which is not a plain file.")
                    % {"name": info.name}
                )
            if not safe_name(info.name):
                raise ArchiveRefused(
                    _("The archive holds a member with an unexpected name: %(name)s.")
                    % {"name": info.name}
                )
            stream = tar.extractfile(info)
            assert stream is not None  # a regular file always has one
            yield info, io.BufferedReader(_Member(stream), CHUNK)
    except DAMAGE as error:
        raise damaged(error) from None
    finally:
        tar.close()


DAMAGE = (tarfile.TarError, OSError, EOFError, zlib.error)  # what a damaged archive raises


def damaged(error: BaseException) -> ArchiveRefused:
    return ArchiveRefused(
        _("The archive is damaged or cut short (%(error)s): make the backup again.")
        % {"error": str(error) or type(error).__name__}
    )


class _Member(io.RawIOBase):
    """A member's bytes as its reader takes them: an archive cut short inside a member (or
    damaged there) is refused as one cut short between members is, not a traceback."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._stream.read(len(buffer))
        except DAMAGE as error:
            raise damaged(error) from None
        buffer[: len(data)] = data
        return len(data)


@dataclass
class Verified:
    manifest: dict[str, Any]
    member_count: int
    listing: Path  # the members as verified, one JSON object a line, in the archive's order


def verify(path: Path, work: Path) -> Verified:
    """Read the whole archive once; answer its manifest when every check holds. The verified
    list of members is left in ``work``: writing checks each member against it again."""
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as seen,
        open(work / MEMBERS, "w+b") as listing,
        Names(work / "names.sqlite3") as names,
    ):
        listing_hash, manifest_bytes, count = None, None, 0
        for info, stream in members(path):
            names.add(info.name)
            if manifest_bytes is not None:
                raise ArchiveRefused(_("The archive has members after its manifest."))
            if info.name == MANIFEST:
                if info.size > MAX_MANIFEST_BYTES:
                    raise ArchiveRefused(_("The archive's manifest is too large."))
                manifest_bytes = stream.read()
                continue
            if listing_hash is not None:
                raise ArchiveRefused(_("The archive has members after its list of members."))
            reader = HashingReader(stream)
            while chunk := reader.read(CHUNK):
                if info.name == MEMBERS:
                    listing.write(chunk)
            if info.name == MEMBERS:
                listing_hash = reader.digest.hexdigest()
                continue
            entry = {"name": info.name, "size": reader.size, "sha256": reader.digest.hexdigest()}
            seen.write(json.dumps(entry, ensure_ascii=False) + "\n")
            count += 1
        manifest = _manifest(manifest_bytes)
        try:
            _check_listing(manifest, listing_hash, count, seen, listing)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ArchiveRefused(
                _("The archive's list of members is missing or damaged.")
            ) from None
    return Verified(manifest, count, work / MEMBERS)


class Names:
    """The member names seen so far, on disk (an archive may hold millions): a name seen twice,
    or one that is both a file and a folder of others, is refused (writing it would fail
    halfway or overwrite)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE files (name TEXT PRIMARY KEY)")
        self.db.execute("CREATE TABLE folders (name TEXT PRIMARY KEY)")

    def __enter__(self) -> Names:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)

    def add(self, name: str) -> None:
        parts = name.split("/")
        folders = ["/".join(parts[:end]) for end in range(1, len(parts))]
        clash = self.db.execute("SELECT 1 FROM folders WHERE name = ?", (name,)).fetchone() or (
            folders
            and self.db.execute(
                f"SELECT 1 FROM files WHERE name IN ({','.join('?' * len(folders))})", folders
            ).fetchone()
        )
        try:
            self.db.execute("INSERT INTO files VALUES (?)", (name,))
        except sqlite3.IntegrityError:
            clash = True
        if clash:
            raise ArchiveRefused(
                _("The archive holds %(name)s twice, or both as a file and as a folder.")
                % {"name": name}
            )
        self.db.executemany("INSERT OR IGNORE INTO folders VALUES (?)", [(f,) for f in folders])


def _manifest(data: bytes | None) -> dict[str, Any]:
    if data is None:
        raise ArchiveRefused(_("The archive has no manifest: it is cut short or not a backup."))
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ArchiveRefused(_("The archive's manifest is not valid JSON.")) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveRefused(_("The archive's manifest is not a DefectLab backup manifest."))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArchiveRefused(
            _("The archive is in backup format %(found)s; this version reads format %(ours)s.")
            % {"found": manifest.get("format_version"), "ours": FORMAT_VERSION}
        )
    if manifest.get("checksum") != canonical(manifest):
        raise ArchiveRefused(_("The archive's manifest was changed after it was written."))
    expected = {
        "format_version": int,
        "app_version": str,
        "created_at": str,
        "database": dict,
        "migrations": dict,
        "tables": list,
        "files": dict,
        "members": dict,
        "secret_key_check": str,
    }
    if any(not isinstance(manifest.get(key), kind) for key, kind in expected.items()) or not (
        isinstance(manifest["database"].get("vendor"), str)
    ):
        raise ArchiveRefused(_("The archive's manifest is not a DefectLab backup manifest."))
    return manifest


def _check_listing(
    manifest: dict[str, Any],
    listing_hash: str | None,
    count: int,
    seen: IO[str],
    listing: IO[bytes],
) -> None:
    """The member list in the archive against the members as read, line by line."""
    listed = manifest.get("members") or {}
    if listing_hash is None or listing_hash != listed.get("sha256"):
        raise ArchiveRefused(_("The archive's list of members is missing or damaged."))
    if listed.get("count") != count:
        raise ArchiveRefused(
            _("The archive holds %(found)s members; its manifest lists %(listed)s.")
            % {"found": count, "listed": listed.get("count")}
        )
    seen.seek(0)
    listing.seek(0)
    for line in listing:
        expected, actual = json.loads(line), seen.readline()
        got = json.loads(actual) if actual else None
        if got == expected:
            continue
        if got is None or got.get("name") != expected.get("name"):
            raise ArchiveRefused(
                _("The archive is missing %(name)s, or holds a member it does not list.")
                % {"name": expected.get("name")}
            )
        raise ArchiveRefused(
            _("%(name)s in the archive is damaged: its SHA-256 does not match.")
            % {"name": expected.get("name")}
        )
    if seen.readline():
        raise ArchiveRefused(_("The archive holds a member its list does not name."))

"""Image classification folders (the ImageNet / torchvision `ImageFolder` layout).

    <tag>/<file>    each image once, in the folder of its first tag (`_untagged` when it has none)
    labels.csv      file,tags,split: every image's path, ALL its tags joined by ";", its split

Folder trainers see one class per image; labels.csv keeps multi-tag items whole. Shapes are not
carried (they are counted as skipped). Import reads labels.csv, or without it the folder names.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from django.utils.translation import gettext as _

from defectlab.datasets.archive import Limits, Source, Spool
from defectlab.datasets.common import Names, Writer, at_line, image_size, make_header
from defectlab.datasets.model import SPLITS, DatasetError, DatasetItem, ImportedDataset
from defectlab.images import is_image_name

CSV = "labels.csv"
UNTAGGED = "_untagged"
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')


def folder_name(tag: str) -> str:
    """A tag as a folder name every file system accepts."""
    name = _UNSAFE.sub("_", tag).strip()
    return "_" + name if not name or name.startswith(".") else name


def _row(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def export(writer: Writer, items: Iterable[DatasetItem]) -> None:
    rows = Spool()
    try:
        for item in writer.each(items):
            for tag in item.tags:
                if ";" in tag:
                    raise DatasetError(
                        _("The tag “%(tag)s” contains “;”, which labels.csv uses between tags.")
                        % {"tag": tag},
                        where=item.file_name,
                    )
            folder = folder_name(item.tags[0]) if item.tags else UNTAGGED
            path = f"{folder}/{item.file_name}"
            writer.image(path, item)
            writer.stats.skipped_shapes += len(item.shapes)
            rows.add(_row([path, ";".join(item.tags), item.split or ""]))
        writer.sink.write_parts(CSV, [_row(["file", "tags", "split"]), rows])
    finally:
        rows.close()


def load(source: Source, limits: Limits) -> ImportedDataset:
    source.root_at(lambda names: CSV in names)
    tags = Names()
    rows = _read_csv(source) if CSV in source else _from_folders(source)
    items = []
    for path, raw_tags, split, where in rows:
        item_tags = []
        for raw in raw_tags:
            tag = tags.names[tags.add(raw, where)]
            if tag not in item_tags:
                item_tags.append(tag)
        found = path in source
        width = height = 0
        if found:
            width, height = image_size(source.opener(path), path, limits.max_image_pixels)
        parts = PurePosixPath(path).parts
        items.append(
            DatasetItem(
                key=path,
                file_name=PurePosixPath(*parts[1:]).as_posix() if len(parts) > 1 else path,
                width=width,
                height=height,
                tags=item_tags,
                split=split,
                image=source.opener(path) if found else None,
                image_ref=None if found else path,
            )
        )
    return ImportedDataset(make_header(Names(), tags), items, source=source)


def _read_csv(source: Source) -> list[tuple[str, list[str], str | None, str]]:
    text = source.read(CSV).decode("utf-8-sig", "replace")
    reader = csv.reader(io.StringIO(text))
    header = [name.strip().lower() for name in next(reader, [])]
    if "file" not in header:
        raise DatasetError(_("The first row must name the columns: file,tags,split."), where=CSV)
    rows = []
    for values in reader:
        where = at_line(CSV, reader.line_num)
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            raise DatasetError(
                _("This row has %(count)s values; the first row names %(expected)s columns.")
                % {"count": len(values), "expected": len(header)},
                where=where,
            )
        row = dict(zip(header, values, strict=True))
        path = row["file"].strip()
        if not path:
            raise DatasetError(_("The file column is empty."), where=where)
        split = row.get("split", "").strip() or None
        if split is not None and split not in SPLITS:
            raise DatasetError(_("The split must be train, val or test (or empty)."), where=where)
        raw_tags = [tag for tag in row.get("tags", "").split(";") if tag.strip()]
        rows.append((path, raw_tags, split, where))
    return rows


def _from_folders(source: Source) -> list[tuple[str, list[str], str | None, str]]:
    rows: list[tuple[str, list[str], str | None, str]] = []
    for name in source.names():
        parts = PurePosixPath(name).parts
        if len(parts) < 2 or not is_image_name(name):
            continue
        rows.append((name, [] if parts[0] == UNTAGGED else [parts[0]], None, name))
    if not rows:
        raise DatasetError(_("No labels.csv and no images in tag folders were found."))
    return rows

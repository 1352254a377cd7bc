"""Fields of the settings pages, turned into the structures the services take.

Lists typed as text are read by ``defectlab.textlists`` (ASCII and Chinese punctuation alike).
A class's attributes come from the structured editor on the settings page as ``attr-<n>-name``,
``attr-<n>-option`` (one per option chip), ``attr-<n>-pending`` (option text typed but not yet
made a chip) and ``attr-<n>-default``; what was posted is kept as ``AttributeRow``s so a refused
form can be shown again exactly as typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from defectlab.errors import DefectLabError
from defectlab.labeling.models import Label
from defectlab.textlists import has_name_separator, split_items, split_named_list

_COLOR = re.compile(r"#[0-9a-fA-F]{6}$")
_ROW = re.compile(r"^attr-(\d+)-name$")


@dataclass
class AttributeRow:
    """One attribute in the editor, as typed (not yet checked)."""

    name: str = ""
    options: list[str] = field(default_factory=list)
    pending: str = ""
    default: str = ""
    error: str = ""

    def is_blank(self) -> bool:
        return not (self.name.strip() or self.options or self.pending.strip())

    def to_attribute(self) -> dict[str, Any]:
        """The service's structure: pending text splits into options, and a name typed the old
        way (``严重程度：轻微，一般``) with no options is read as a name and its options."""
        name = self.name
        options = list(dict.fromkeys([*self.options, *split_items(self.pending)]))
        if not options and has_name_separator(name):
            name, options = split_named_list(name)
        return {"name": name, "options": options, "default": self.default}


def attribute_rows(data: QueryDict) -> list[AttributeRow]:
    """The editor's rows in the order shown, blank ones included (the page shows them again)."""
    numbers = sorted(int(match.group(1)) for key in data if (match := _ROW.match(key)))
    return [
        AttributeRow(
            name=data.get(f"attr-{n}-name", ""),
            options=[option for option in data.getlist(f"attr-{n}-option") if option.strip()],
            pending=data.get(f"attr-{n}-pending", ""),
            default=data.get(f"attr-{n}-default", ""),
        )
        for n in numbers
    ]


def posted_attributes(data: QueryDict) -> list[dict[str, Any]]:
    """The attributes a label form sent: the editor's rows, or the older one-a-line text."""
    if "attributes" in data:
        return parse_attributes(data.get("attributes", ""))
    return [row.to_attribute() for row in attribute_rows(data) if not row.is_blank()]


def rows_of(attributes: list[dict[str, Any]]) -> list[AttributeRow]:
    return [
        AttributeRow(attribute["name"], list(attribute["options"]), "", attribute["default"])
        for attribute in attributes
    ]


def label_row(
    label: Label | None, data: QueryDict | None = None, refusal: DefectLabError | None = None
) -> dict[str, Any]:
    """A class row of the settings page: the label as stored, or (after a refusal) exactly what
    was posted for it, with the error beside the field or the attribute it is about."""
    row: dict[str, Any] = {"pk": label.pk if label else None, "error_field": "", "error": ""}
    if data is None:
        stored = (label.name, label.color, label.hotkey) if label else ("", "#e53935", "")
        row |= dict(zip(("name", "color", "hotkey"), stored, strict=True))
        row["attributes"] = rows_of(label.attributes) if label else []
    else:
        row |= {key: data.get(key, "") for key in ("name", "color", "hotkey")}
        if "attributes" in data:
            row["attributes"] = rows_of(parse_attributes(data.get("attributes", "")))
        else:
            row["attributes"] = attribute_rows(data)
    if refusal is not None:
        _place_error(row, refusal)
    if not row["attributes"] or not row["attributes"][-1].is_blank():
        row["attributes"].append(AttributeRow())
    return row


def _place_error(row: dict[str, Any], refusal: DefectLabError) -> None:
    details = refusal.details if isinstance(refusal.details, dict) else {}
    row["error_field"] = details.get("field") or ""
    index = details.get("attribute")
    filled = [attribute for attribute in row["attributes"] if not attribute.is_blank()]
    if row["error_field"] == "attributes" and isinstance(index, int) and index < len(filled):
        filled[index].error = refusal.message
    else:
        row["error"] = refusal.message


def parse_attributes(text: str) -> list[dict[str, Any]]:
    """``severity: minor, major`` or ``严重程度：轻微，一般`` a line → [{"name", "options",
    "default"}] (the first option is the default)."""
    attributes = []
    for line in text.splitlines():
        name, values = split_named_list(line)
        if name or values:
            attributes.append(
                {"name": name, "options": values, "default": values[0] if values else ""}
            )
    return attributes


def parse_tags(text: str) -> list[dict[str, str]]:
    """``OK #2e7d32`` a line or between commas (the colour is optional) → [{"name", "color"}]."""
    tags = []
    for item in split_items(text):
        words = item.split()
        if len(words) > 1 and _COLOR.match(words[-1]):
            tags.append({"name": " ".join(words[:-1]), "color": words[-1]})
        else:
            tags.append({"name": " ".join(words), "color": "#757575"})
    return tags


def format_tags(tags: list[dict[str, str]]) -> str:
    return "\n".join(f"{tag['name']} {tag['color']}" for tag in tags)

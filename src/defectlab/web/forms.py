"""Plain-text fields of the settings pages, turned into the structures the services take."""

from __future__ import annotations

import re
from typing import Any

_COLOR = re.compile(r"#[0-9a-fA-F]{6}$")
_OPTION_SEPARATOR = re.compile("[,，、]")


def parse_attributes(text: str) -> list[dict[str, Any]]:
    """``severity: minor, major, critical`` a line → [{"name", "options", "default"}]. Full-width
    ``：`` and ``，`` or ``、`` (what a Chinese keyboard types) separate too."""
    attributes = []
    for line in text.splitlines():
        name, _sep, options = line.replace("：", ":").partition(":")
        values = [value.strip() for value in _OPTION_SEPARATOR.split(options) if value.strip()]
        if name.strip() or values:
            attributes.append(
                {"name": name.strip(), "options": values, "default": values[0] if values else ""}
            )
    return attributes


def format_attributes(attributes: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{attribute['name']}: {', '.join(attribute['options'])}" for attribute in attributes
    )


def parse_tags(text: str) -> list[dict[str, str]]:
    """``OK #2e7d32`` a line (the colour is optional) → [{"name", "color"}]."""
    tags = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if len(words) > 1 and _COLOR.match(words[-1]):
            tags.append({"name": " ".join(words[:-1]), "color": words[-1]})
        else:
            tags.append({"name": " ".join(words), "color": "#757575"})
    return tags


def format_tags(tags: list[dict[str, str]]) -> str:
    return "\n".join(f"{tag['name']} {tag['color']}" for tag in tags)

"""A class's attributes (e.g. severity: minor, major, critical), checked the one way the API, the
pages and the project import all store them.

An attribute is ``{"name", "options", "default"}``: a shape of the class carries one of the
options (the default until someone picks another). Names and options are trimmed, a repeated
option is kept once, and a refusal names the attribute (``details["attribute"]``, its index) so a
page can show the error beside it.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from defectlab.errors import Invalid


def clean_label_attributes(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise Invalid(_("Attributes must be a list."), details={"field": "attributes"})
    cleaned = [_clean_attribute(index, item) for index, item in enumerate(value)]
    names = [attribute["name"] for attribute in cleaned]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise Invalid(
                _("Attribute names must be unique."),
                details={"field": "attributes", "attribute": index},
            )
    return cleaned


def _clean_attribute(index: int, item: Any) -> dict[str, Any]:
    where = {"field": "attributes", "attribute": index}
    options = item.get("options") if isinstance(item, dict) else None
    name = item.get("name") if isinstance(item, dict) else None
    if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
        options = []
    options = list(dict.fromkeys(option.strip() for option in options if option.strip()))
    if not isinstance(name, str) or not name.strip() or not options:
        raise Invalid(
            _("Each attribute needs a name and a non-empty list of options."), details=where
        )
    default = item.get("default") or options[0]
    if not isinstance(default, str) or default.strip() not in options:
        raise Invalid(
            _("The default of attribute %(name)s must be one of its options.") % {"name": name},
            details=where,
        )
    return {"name": name.strip(), "options": options, "default": default.strip()}

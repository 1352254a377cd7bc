"""Lists that people type as text, read the same way wherever a page parses them.

Inspectors type with a Chinese input method as often as with an English one, so every separator
has both forms: a list splits at ``,`` ``，`` ``、`` ``;`` ``；`` (and at line breaks), and a
name is set off from its list by ``:`` or ``：``. Items are trimmed, empty items dropped, and a
repeated item kept once, in the order first typed.
"""

from __future__ import annotations

import re

LIST_SEPARATORS = ",，、;；\n\r"
NAME_SEPARATORS = ":："
_SPLIT = re.compile(f"[{re.escape(LIST_SEPARATORS)}]")
_NAME = re.compile(f"[{re.escape(NAME_SEPARATORS)}]")


def split_items(text: str) -> list[str]:
    """``轻微，一般, 严重、轻微`` → ``["轻微", "一般", "严重"]``."""
    return list(dict.fromkeys(item.strip() for item in _SPLIT.split(text) if item.strip()))


def split_named_list(text: str) -> tuple[str, list[str]]:
    """``严重程度：轻微，一般`` → ``("严重程度", ["轻微", "一般"])``; no colon: all of it is the
    name."""
    match = _NAME.search(text)
    if match is None:
        return text.strip(), []
    return text[: match.start()].strip(), split_items(text[match.end() :])


def has_name_separator(text: str) -> bool:
    return _NAME.search(text) is not None

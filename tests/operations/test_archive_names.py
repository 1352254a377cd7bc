"""The member names a backup archive may hold (operations.archive.safe_name): what zipsafety
refuses for every archive, and the archive's own stricter rules."""

from __future__ import annotations

import pytest

from defectlab.operations.archive import MANIFEST, MEMBERS, safe_name


@pytest.mark.parametrize(
    "name",
    [MANIFEST, MEMBERS, "db/labeling_task.jsonl", "files/org-1/a b/划痕.png", "files/x..y.png"],
)
def test_names_a_backup_writes_pass(name: str) -> None:
    assert safe_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/etc/passwd",
        "\\\\server\\share",
        "C:/windows/x",
        "files/../../etc/passwd",
        "files/..",
        "files/a\\..\\..\\x",
        "files/a\\b.png",
        "files/a\x00.png",
        "files//a.png",
        "files/./a.png",
        "files/",
        "files",
        "other/a.png",
        "db",
    ],
)
def test_names_pointing_outside_or_elsewhere_are_refused(name: str) -> None:
    assert not safe_name(name)

"""The project's tally as stored, and as counted again from the per-task counters: the two
must be equal after any sequence of operations."""

from __future__ import annotations

from defectlab.labeling.counters import tally_of
from defectlab.labeling.models import Tally, TallySlice

Key = tuple[str, str, str, str]  # slice, status, part, key


def stored_tally(project_id: int) -> dict[Key, int]:
    """Both tables: the slice of all tasks (``Tally``) and the others (``TallySlice``)."""
    found = {
        ("", status, part, key): n
        for status, part, key, n in Tally.objects.filter(project_id=project_id).values_list(
            "status", "part", "key", "count"
        )
    }
    sliced = TallySlice.objects.filter(project_id=project_id)
    for slice_, status, part, key, n in sliced.values_list(
        "slice", "status", "part", "key", "count"
    ):
        found[(slice_, status, part, key)] = n
    return {key: n for key, n in found.items() if n}


def recounted_tally(project_id: int) -> dict[Key, int]:
    return {key: n for key, n in tally_of(project_id).items() if n}

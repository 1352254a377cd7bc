"""The project's tally as stored, and as counted again from the per-task counters: the two
must be equal after any sequence of operations."""

from __future__ import annotations

from defectlab.labeling.counters import tally_of
from defectlab.labeling.models import Tally

Key = tuple[str, str, str, str]  # slice, status, part, key


def stored_tally(project_id: int) -> dict[Key, int]:
    rows = Tally.objects.filter(project_id=project_id)
    found = rows.values_list("slice", "status", "part", "key", "count")
    return {(slice_, status, part, key): n for slice_, status, part, key, n in found if n}


def recounted_tally(project_id: int) -> dict[Key, int]:
    return {key: n for key, n in tally_of(project_id).items() if n}
